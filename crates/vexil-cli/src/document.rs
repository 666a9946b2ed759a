//! The export document: every flag and segment as the operator defines
//! them (no revisions, times or actors), under a versioned schema, with
//! a stable order (objects' keys sorted, flags and segments by name), so
//! two exports of the same state are byte-identical and a diff in Git
//! shows only what changed.

use serde_json::{Map, Value, json};
use vexil_engine::{FlagName, FlagSpec, SegmentSpec};

use crate::failure::{Failure, Kind};

/// The schema this version writes and reads (`docs/export-schema.json`).
pub const SCHEMA: &str = "vexil.flags/v1";

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Syntax {
    Json,
    Yaml,
}

/// Flags and segments by name, in name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub flags: Vec<(String, FlagSpec)>,
    pub segments: Vec<(String, SegmentSpec)>,
}

impl Document {
    /// The document as text: indented JSON and a final newline, or YAML.
    pub fn to_text(&self, syntax: Syntax) -> String {
        let mut text = Vec::new();
        // Writing into memory cannot fail.
        let _ = self.write(syntax, &mut text);
        String::from_utf8(text).unwrap_or_default()
    }

    /// Writes the document entry by entry, so that memory holds one
    /// entry's text at a time, not the whole document's tree: the same
    /// bytes as serializing it whole (keys sorted: flags, schema,
    /// segments), which a unit test checks.
    pub fn write(&self, syntax: Syntax, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let flags = self.flags.iter().map(|(name, spec)| entry(name, spec));
        let segments = self.segments.iter().map(|(name, spec)| entry(name, spec));
        match syntax {
            Syntax::Json => {
                out.write_all(b"{\n  \"flags\": ")?;
                json_array(out, flags)?;
                write!(out, ",\n  \"schema\": \"{SCHEMA}\",\n  \"segments\": ")?;
                json_array(out, segments)?;
                out.write_all(b"\n}\n")
            }
            Syntax::Yaml => {
                out.write_all(b"flags:")?;
                yaml_sequence(out, flags)?;
                writeln!(out, "schema: {SCHEMA}")?;
                out.write_all(b"segments:")?;
                yaml_sequence(out, segments)
            }
        }
    }

    /// Reads a document, checking every flag and segment as the server
    /// would; all errors at once, each naming where in the file it is
    /// (`flags[3].rules[0].clauses[1].values`).
    pub fn parse(text: &str) -> Result<Self, Failure> {
        let invalid = |message: String| Failure::new(Kind::Invalid, message);
        let value =
            crate::output::parse_data(text).map_err(|err| invalid(format!("the file is {err}")))?;
        let Value::Object(mut object) = value else {
            return Err(invalid("the file must hold an object".into()));
        };
        match object.get("schema").and_then(Value::as_str) {
            Some(SCHEMA) => {}
            other => {
                return Err(invalid(format!(
                    "schema: expected {SCHEMA:?}, found {}",
                    other.map_or("none".to_owned(), |s| format!("{s:?}"))
                )));
            }
        }
        let mut errors = Vec::new();
        let flags = entries(
            &mut object,
            "flags",
            &FLAG_FIELDS_LEFT_OUT_WHEN_EMPTY,
            &mut errors,
            |at, spec: &FlagSpec| spec.validate(at),
        );
        let segments = entries(
            &mut object,
            "segments",
            &[],
            &mut errors,
            |at, spec: &SegmentSpec| spec.validate(at),
        );
        if let Some(unknown) = object
            .keys()
            .find(|key| !["schema", "flags", "segments"].contains(&key.as_str()))
        {
            errors.push(format!("{unknown}: unknown key"));
        }
        if !errors.is_empty() {
            return Err(invalid(format!(
                "{} error(s), nothing applied:\n  {}",
                errors.len(),
                errors.join("\n  ")
            )));
        }
        let mut document = Self { flags, segments };
        document.sort();
        Ok(document)
    }

    pub fn sort(&mut self) {
        self.flags.sort_by(|a, b| a.0.cmp(&b.0));
        self.segments.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// One flag or segment as the document holds it: its name and the fields
/// not at their empty default (reading fills those in), so a file holds
/// what was set.
fn entry(name: &str, spec: &impl serde::Serialize) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), json!(name));
    if let Ok(Value::Object(fields)) = serde_json::to_value(spec) {
        object.extend(fields.into_iter().filter(|(_, value)| !is_empty(value)));
    }
    Value::Object(object)
}

/// A JSON array of `items` at the document's second level, as
/// `to_string_pretty` indents it (each item's lines 4 spaces in).
fn json_array(
    out: &mut dyn std::io::Write,
    items: impl Iterator<Item = Value>,
) -> std::io::Result<()> {
    let mut first = true;
    for item in items {
        out.write_all(if first { b"[\n" } else { b",\n" })?;
        first = false;
        let text = serde_json::to_string_pretty(&item).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                out.write_all(b"\n")?;
            }
            write!(out, "    {line}")?;
        }
    }
    out.write_all(if first { b"[]" } else { b"\n  ]" })
}

/// A YAML block sequence of `items` under a top-level key (` []` when
/// empty), each item's lines after its `- ` indented by two spaces.
fn yaml_sequence(
    out: &mut dyn std::io::Write,
    items: impl Iterator<Item = Value>,
) -> std::io::Result<()> {
    let mut first = true;
    for item in items {
        if first {
            out.write_all(b"\n")?;
            first = false;
        }
        let text = crate::output::yaml(&item);
        for (i, line) in text.lines().enumerate() {
            let prefix = if i == 0 {
                "- "
            } else if line.is_empty() {
                ""
            } else {
                "  "
            };
            writeln!(out, "{prefix}{line}")?;
        }
    }
    if first {
        out.write_all(b" []\n")?;
    }
    Ok(())
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The flag's fields the engine writes only when set (every other field
/// is in its default's JSON).
pub(crate) const FLAG_FIELDS_LEFT_OUT_WHEN_EMPTY: [&str; 6] = [
    "variants",
    "off_variant",
    "targets",
    "rules",
    "fallthrough",
    "prerequisites",
];

/// The named entries of `object[key]` (an array), each parsed into `T` and
/// checked by `validate`; errors are collected with their location. A
/// field `T` does not have is an error (a misspelt field must not be
/// silently dropped).
fn entries<T: serde::de::DeserializeOwned + serde::Serialize + Default>(
    object: &mut Map<String, Value>,
    key: &str,
    also_known: &[&str],
    errors: &mut Vec<String>,
    validate: impl Fn(&str, &T) -> Result<(), vexil_engine::ValidationError>,
) -> Vec<(String, T)> {
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(Value::Object(fields)) => fields.into_iter().map(|(field, _)| field).collect(),
        _ => Vec::new(),
    };
    let is_known = |field: &str| known.iter().any(|k| k == field) || also_known.contains(&field);
    let items = match object.remove(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(format!("{key}: must be an array"));
            return Vec::new();
        }
    };
    let mut parsed: Vec<(String, T)> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("{key}[{index}]");
        let Value::Object(mut fields) = item else {
            errors.push(format!("{at}: must be an object"));
            continue;
        };
        let name = match fields.remove("name") {
            Some(Value::String(name)) => name,
            _ => {
                errors.push(format!("{at}.name: required, a string"));
                continue;
            }
        };
        if let Err(err) = FlagName::parse(&format!("{at}.name"), name.clone()) {
            errors.push(err.to_string());
            continue;
        }
        if parsed.iter().any(|(seen, _)| *seen == name) {
            errors.push(format!("{at}.name: {name:?} appears twice"));
            continue;
        }
        let unknown: Vec<&String> = fields.keys().filter(|field| !is_known(field)).collect();
        if !unknown.is_empty() {
            for field in unknown {
                errors.push(format!("{at}.{field}: unknown field ({name})"));
            }
            continue;
        }
        let spec: T = match serde_json::from_value(Value::Object(fields)) {
            Ok(spec) => spec,
            Err(err) => {
                errors.push(format!("{at} ({name}): {err}"));
                continue;
            }
        };
        if let Err(err) = validate(&at, &spec) {
            errors.push(format!("{err} ({name})"));
            continue;
        }
        parsed.push((name, spec));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: &str = include_str!("../../../docs/export-schema.json");

    fn flag() -> FlagSpec {
        serde_json::from_value(json!({
            "description": "d", "enabled": true, "percentage": 5.0, "whitelist": ["a"],
            "blacklist": ["b"], "environments": ["production"],
            "environment_overrides": {"staging": true}, "starts_at": "2026-01-01T00:00:00Z",
            "expires_at": "2027-01-01T00:00:00Z", "tags": ["t"], "metadata": {"k": 1},
            "group": "g", "type": "string",
            "variants": [{"name": "a", "value": {"string": "A"}, "description": "first"}],
            "off_variant": "a", "targets": [{"variant": "a", "user_ids": ["u"]}],
            "rules": [{"id": "r", "clauses": [{"attribute": "plan", "op": "in", "values": ["x"]}],
                       "serve": {"variant": "a"}}],
            "fallthrough": {"variant": "a"},
            "prerequisites": [{"flag": "other", "variants": ["on"]}]
        }))
        .expect("a spec")
    }

    /// A misspelt field is refused with its place, not dropped.
    #[test]
    fn unknown_fields_are_refused_with_their_place() {
        let text = json!({"schema": SCHEMA, "flags": [
            {"name": "a", "enabled": true},
            {"name": "b", "enabeld": true},
        ], "segments": [{"name": "s", "include": ["u"]}]})
        .to_string();
        let failure = Document::parse(&text).expect_err("refused");
        assert!(
            failure
                .message
                .contains("flags[1].enabeld: unknown field (b)"),
            "{}",
            failure.message
        );
        assert!(
            failure
                .message
                .contains("segments[0].include: unknown field (s)"),
            "{}",
            failure.message
        );
        // Every field a full flag is written with is known.
        let full = Document {
            flags: vec![("f".into(), flag())],
            segments: vec![],
        };
        let written: Value = serde_json::from_str(&full.to_text(Syntax::Json)).expect("JSON");
        let mut errors = Vec::new();
        let mut object = written.as_object().cloned().expect("an object");
        let _ = entries(
            &mut object,
            "flags",
            &FLAG_FIELDS_LEFT_OUT_WHEN_EMPTY,
            &mut errors,
            |_, _: &FlagSpec| Ok(()),
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// The published JSON Schema names the version written and every field
    /// a flag and a segment are written with.
    #[test]
    fn the_published_schema_describes_what_is_written() {
        let schema: Value = serde_json::from_str(PUBLISHED).expect("the schema is JSON");
        assert_eq!(schema["properties"]["schema"]["const"], SCHEMA);
        let document = Document {
            flags: vec![("f".into(), flag())],
            segments: vec![("s".into(), SegmentSpec::default())],
        };
        let written: Value = serde_json::from_str(&document.to_text(Syntax::Json)).expect("JSON");
        for (kind, key) in [("flag", "flags"), ("segment", "segments")] {
            let properties = schema["$defs"][kind]["properties"]
                .as_object()
                .expect("properties");
            let fields = written[key][0].as_object().expect("an entry");
            for field in fields.keys() {
                assert!(
                    properties.contains_key(field),
                    "{kind}.{field} is not in the schema"
                );
            }
        }
        let all = serde_json::to_value(flag()).expect("JSON");
        let properties = schema["$defs"]["flag"]["properties"]
            .as_object()
            .expect("flag");
        for field in all.as_object().expect("an object").keys() {
            assert!(
                properties.contains_key(field),
                "flag.{field} is not in the schema"
            );
        }
    }

    /// Reading what was written gives back the same document, and writing
    /// it again the same bytes.
    #[test]
    fn documents_round_trip_byte_for_byte() {
        // Valid as a typed flag: without the boolean-only fields.
        let typed = FlagSpec {
            percentage: 0.0,
            whitelist: Default::default(),
            blacklist: Default::default(),
            environment_overrides: Default::default(),
            ..flag()
        };
        let document = Document {
            flags: vec![("f".into(), typed), ("a".into(), FlagSpec::default())],
            segments: vec![("s".into(), SegmentSpec::default())],
        };
        let mut sorted = document.clone();
        sorted.sort();
        let text = document.to_text(Syntax::Json);
        let read = Document::parse(&text).expect("valid");
        assert_eq!(read, sorted);
        assert_eq!(read.to_text(Syntax::Json), sorted.to_text(Syntax::Json));
        // YAML reads back to the same document, and writes the same text.
        let yaml = sorted.to_text(Syntax::Yaml);
        assert!(yaml.starts_with("flags:"), "{yaml}");
        let read = Document::parse(&yaml).expect("valid YAML");
        assert_eq!(read, sorted);
        assert_eq!(read.to_text(Syntax::Yaml), yaml);
    }

    /// Written entry by entry, the document is the same bytes as the
    /// whole document serialized at once, in JSON and in YAML: empty
    /// lists, multi-line and quoted strings, non-ASCII text.
    #[test]
    fn written_entry_by_entry_as_serialized_whole() {
        let whole = |document: &Document, syntax: Syntax| {
            let value = json!({
                "schema": SCHEMA,
                "flags": document.flags.iter().map(|(n, s)| entry(n, s)).collect::<Vec<_>>(),
                "segments": document.segments.iter().map(|(n, s)| entry(n, s)).collect::<Vec<_>>(),
            });
            match syntax {
                Syntax::Json => serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
                Syntax::Yaml => crate::output::yaml(&value),
            }
        };
        let mut described = FlagSpec {
            description: "two lines:\n\nthe second after a blank, \"quoted\" — ünïcode: yes".into(),
            ..FlagSpec::default()
        };
        described.tags = vec!["on".into(), "1.0".into()];
        let documents = [
            Document::default(),
            Document {
                flags: vec![("a".into(), FlagSpec::default()), ("b".into(), described)],
                segments: Vec::new(),
            },
            Document {
                flags: vec![("a".into(), flag())],
                segments: vec![
                    ("s".into(), SegmentSpec::default()),
                    ("t".into(), SegmentSpec::default()),
                ],
            },
        ];
        for document in &documents {
            for syntax in [Syntax::Json, Syntax::Yaml] {
                assert_eq!(
                    document.to_text(syntax),
                    whole(document, syntax),
                    "{syntax:?}"
                );
            }
        }
    }
}
