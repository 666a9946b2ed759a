//! The shared evaluation vectors (`docs/eval-vectors/*.json`): every case's
//! value, variant and reason, as the engine answers it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use vexil_engine::{
    Attributes, Catalog, EvalContext, Flag, FlagName, FlagSpec, Gathered, Segment, SegmentSpec,
    Stamp, evaluate,
};

#[derive(Deserialize)]
struct Document {
    state: State,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
struct State {
    flags: Vec<serde_json::Value>,
    segments: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Case {
    description: String,
    flag: String,
    context: Context,
    expected: Expected,
}

#[derive(Deserialize)]
struct Context {
    user_id: String,
    environment: String,
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
    at: DateTime<Utc>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Expected {
    value: serde_json::Value,
    variant: Option<String>,
    reason: String,
}

#[derive(Default)]
struct Store {
    flags: HashMap<String, Arc<Flag>>,
    segments: HashMap<String, Arc<Segment>>,
}

impl Catalog for Store {
    fn flag(&self, name: &str) -> Option<Arc<Flag>> {
        self.flags.get(name).cloned()
    }
    fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.segments.get(name).cloned()
    }
}

fn name_of(value: &serde_json::Value) -> FlagName {
    let name = value["name"].as_str().expect("a name").to_string();
    FlagName::parse("name", name).expect("a valid name")
}

fn load(state: State) -> Store {
    let mut store = Store::default();
    for value in state.flags {
        let name = name_of(&value);
        let spec: FlagSpec = serde_json::from_value(value).expect("a flag");
        spec.validate("flag")
            .unwrap_or_else(|err| panic!("flag {name} is invalid: {err}"));
        let stamp = Stamp {
            revision: 1,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            created_by: "vectors".into(),
            updated_by: "vectors".into(),
        };
        store
            .flags
            .insert(name.to_string(), Arc::new(Flag::new(name, spec, stamp)));
    }
    for value in state.segments {
        let name = name_of(&value);
        let spec: SegmentSpec = serde_json::from_value(value).expect("a segment");
        spec.validate("segment")
            .unwrap_or_else(|err| panic!("segment {name} is invalid: {err}"));
        store.segments.insert(
            name.to_string(),
            Arc::new(Segment::new(name, spec, 1, DateTime::UNIX_EPOCH)),
        );
    }
    store
}

/// The answer with the context read in place, or `gathered` first (as
/// the server does once per request).
fn answer(store: &Store, case: &Case, gathered: bool) -> Expected {
    let flag = store.flags.get(&case.flag).map(Arc::as_ref);
    let evaluate_with = |attributes: &dyn Attributes| {
        let ctx = EvalContext {
            user_id: &case.context.user_id,
            environment: &case.context.environment,
            attributes,
            catalog: store,
        };
        evaluate(flag, &ctx, case.context.at)
    };
    let evaluation = if gathered {
        Gathered::gather(&case.context.attributes, |attributes| {
            evaluate_with(attributes)
        })
    } else {
        evaluate_with(&case.context.attributes)
    };
    let variant = flag.zip(evaluation.variant).and_then(|(f, v)| f.variant(v));
    Expected {
        value: variant.map_or(serde_json::Value::Null, |v| v.value.to_json()),
        variant: variant.map(|v| v.name.clone()),
        reason: evaluation.reason.name().to_string(),
    }
}

#[test]
fn every_vector_gets_its_expected_answer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/eval-vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the vectors directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut cases = 0;
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("a vector file");
        let document: Document =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let store = load(document.state);
        for case in &document.tests {
            cases += 1;
            for gathered in [false, true] {
                let got = answer(&store, case, gathered);
                if got != case.expected {
                    failures.push(format!(
                        "{} / {} ({}, context {}): expected {:?}, got {:?}",
                        path.file_name().unwrap_or_default().to_string_lossy(),
                        case.description,
                        case.flag,
                        if gathered { "gathered" } else { "in place" },
                        case.expected,
                        got
                    ));
                }
            }
        }
    }
    assert!(
        files.len() >= 13 && cases >= 300,
        "{cases} cases in {} files",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
