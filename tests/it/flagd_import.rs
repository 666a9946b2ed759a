//! Migration from flagd: `vexil import --format flagd` on flagd-testbed's
//! evaluator flags, then flagd-testbed's `fractional` and `sem_ver`
//! scenarios through the real server's Evaluate (value and variant); and
//! for 1,000 random targeting keys per fractional flag, the variant
//! flagd's daemon serves, computed by an independent reimplementation of
//! its `fractional` (core/pkg/evaluator/fractional.go: murmur3 over the
//! bucketing value, `(hash × total weight) >> 32`, cumulative walk).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vexil::grpc::pb;
use vexil_proto::google::protobuf::{Struct, Value as PbValue, value::Kind};

use crate::cli::{vexil, write_file};
use crate::common::{Backend, Random, TestApp, TestDatabase, TestDir};

crate::backend_tests!(
    flagd_testbed_scenarios_pass_through_import_and_evaluate,
    fractional_splits_serve_what_flagd_serves
);

const TESTKIT: &str = include_str!("../flagd-testbed/testkit-flags.json");

/// Flags of the testbed Vexil refuses to import, with the node named in
/// the refusal. Most are the testbed's deliberate error cases (flagd
/// itself falls back to the default); the rest are outside the subset.
const REFUSED: [(&str, &str); 14] = [
    ("ends-with-wrong-args-flag", "/targeting/ends_with"),
    ("starts-with-wrong-args-flag", "/targeting/starts_with"),
    ("semver-invalid-operator-flag", "/targeting/sem_ver/1"),
    ("semver-wrong-args-flag", "/targeting/sem_ver"),
    ("ref-to-nonexistent-evaluator-flag", "/targeting/if/0"),
    // A computed variant name or weight, or fractional as a condition.
    ("fractional-nested-if-flag", "/targeting/fractional/1/0"),
    ("fractional-nested-var-flag", "/targeting/fractional/1/0"),
    ("fractional-nested-weight-flag", "/targeting/fractional/1/1"),
    ("fractional-as-condition-flag", "/targeting/if/0/fractional"),
    (
        "fractional-as-condition-false-flag",
        "/targeting/if/0/fractional",
    ),
    // No default variant: flagd's "code default" has no Vexil equivalent.
    ("no-default-flag-null-targeting-variant", "/defaultVariant"),
    (
        "no-default-flag-undefined-targeting-variant",
        "/defaultVariant",
    ),
    ("null-default-flag", "/defaultVariant"),
    ("undefined-default-flag", "/defaultVariant"),
];

/// Rows where Vexil answers differently, and why (docs/cli.md, "Moving
/// from flagd"): `(flag, context value)`.
const DIFFERENT: [(&str, &str, &str); 6] = [
    (
        "semver-v-prefix-flag",
        "V1.0.0",
        "Vexil's versions take a lowercase v only",
    ),
    (
        "semver-partial-version-flag",
        "Integer 1",
        "Vexil compares versions given as strings, not numbers",
    ),
    (
        "semver-partial-version-flag",
        "Float 1",
        "Vexil compares versions given as strings, not numbers",
    ),
    (
        "semver-partial-version-flag",
        "Float 1.2",
        "Vexil compares versions given as strings, not numbers",
    ),
    (
        "semver-numeric-context-flag",
        "Float 1.2",
        "Vexil compares versions given as strings, not numbers",
    ),
    (
        "semver-numeric-context-flag",
        "Integer 2",
        "Vexil compares versions given as strings, not numbers",
    ),
];

/// Imports the testbed's flags (without those Vexil refuses) into `app`,
/// after checking that importing all of them is refused naming exactly
/// `REFUSED`, and applies nothing.
async fn import_testkit(app: &TestApp, files: &TestDir) -> Value {
    let all = write_file(files, "testkit-flags.json", TESTKIT);
    let refused = vexil(app.address, None, &["import", "--format", "flagd", &all]).await;
    assert_eq!(refused.code, 2, "{} {}", refused.stdout, refused.stderr);
    for (flag, node) in REFUSED {
        let pointer = format!("/flags/{flag}{node}:");
        assert!(
            refused.stderr.contains(&pointer),
            "{pointer} in {}",
            refused.stderr
        );
    }
    assert!(
        refused
            .stderr
            .contains(&format!("{} error(s), nothing applied", REFUSED.len())),
        "{}",
        refused.stderr
    );
    assert_eq!(app.total_flags().await, 0);

    let mut testkit: Value = serde_json::from_str(TESTKIT).expect("the testkit is JSON");
    let flags = testkit["flags"].as_object_mut().expect("flags");
    for (flag, _) in REFUSED {
        flags
            .remove(flag)
            .expect("a refused flag is in the testkit");
    }
    let importable = write_file(files, "importable.json", &testkit.to_string());
    let imported = vexil(
        app.address,
        None,
        &["import", "--format", "flagd", &importable],
    )
    .await;
    assert_eq!(imported.code, 0, "{} {}", imported.stdout, imported.stderr);
    // Idempotent: the same files again plan nothing.
    let again = vexil(
        app.address,
        None,
        &["import", "--format", "flagd", "--dry-run", &importable],
    )
    .await;
    assert_eq!(again.code, 0, "{} {}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("plan: 0 change(s)"),
        "{}",
        again.stdout
    );
    testkit
}

async fn flagd_testbed_scenarios_pass_through_import_and_evaluate(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let files = TestDir::create();
    let testkit = import_testkit(&app, &files).await;

    let mut checked = 0;
    let mut different = 0;
    for feature in [
        include_str!("../flagd-testbed/fractional.feature"),
        include_str!("../flagd-testbed/semver.feature"),
    ] {
        for case in cases(feature) {
            if REFUSED.iter().any(|(flag, _)| *flag == case.flag) {
                continue;
            }
            if DIFFERENT
                .iter()
                .any(|(flag, value, _)| *flag == case.flag && *value == case.described)
            {
                different += 1;
                continue;
            }
            let answer = app
                .evaluation
                .clone()
                .evaluate(pb::EvaluateRequest {
                    flag_name: case.flag.clone(),
                    user_id: case.user.clone(),
                    environment: String::new(),
                    context: Some(case.context.clone()),
                })
                .await
                .expect("evaluate")
                .into_inner();
            let served = match answer.value.and_then(|value| value.value) {
                Some(pb::typed_value::Value::StringValue(text)) => text,
                None => case.fallback.clone(),
                other => panic!("{}: a string, not {other:?}", case.flag),
            };
            assert_eq!(served, case.expected, "{case:?}");
            // The variant is flagd's name for the value served.
            let variants = testkit["flags"][&case.flag]["variants"]
                .as_object()
                .expect("variants");
            let named: Vec<&String> = variants
                .iter()
                .filter(|(_, value)| **value == json!(case.expected))
                .map(|(name, _)| name)
                .collect();
            if let [name] = named.as_slice() {
                assert_eq!(&answer.variant, *name, "{case:?}");
            }
            checked += 1;
        }
    }
    // 24 fractional rows (v2) and 23 sem_ver rows: the parser saw them all.
    assert_eq!(checked, 47, "scenario rows run");
    assert_eq!(different, DIFFERENT.len(), "a known difference went unseen");
    app.stop().await;
    db.remove().await;
}

/// One row of a scenario: the flag, the context, what flagd answers.
#[derive(Debug)]
struct Case {
    flag: String,
    fallback: String,
    user: String,
    context: Struct,
    expected: String,
    /// The context's value as `DIFFERENT` names it: `V1.0.0`, `Float 1.2`.
    described: String,
}

/// The rows of a feature file's scenarios (Gherkin: `Scenario`, steps,
/// `Examples` tables), leaving out examples of flagd's legacy bucketing.
fn cases(feature: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut steps: Vec<String> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut skip_table = false;
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_owned())
            .collect()
    };
    let lines: Vec<&str> = feature.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('@') {
            tags = line.split_whitespace().map(str::to_owned).collect();
        } else if line.starts_with("Scenario") {
            steps.clear();
            header = None;
            // A scenario without examples is one row.
            let outline = line.starts_with("Scenario Outline");
            if !outline {
                let rest = &lines[i + 1..];
                let end = rest
                    .iter()
                    .position(|l| l.starts_with("Scenario") || l.starts_with('@'))
                    .unwrap_or(rest.len());
                let body: Vec<String> = rest[..end]
                    .iter()
                    .filter(|l| is_step(l))
                    .map(|l| l.to_string())
                    .collect();
                cases.extend(case(&body, &BTreeMap::new()));
            }
            tags.clear();
        } else if is_step(line) {
            steps.push(line.to_string());
        } else if line.starts_with("Examples") {
            skip_table = tags.iter().any(|tag| tag == "@fractional-v1");
            tags.clear();
            header = None;
        } else if line.starts_with('|') {
            let row = cells(line);
            match &header {
                None => header = Some(row),
                Some(_) if skip_table => {}
                Some(names) => {
                    let values: BTreeMap<String, String> = names.iter().cloned().zip(row).collect();
                    cases.extend(case(&steps, &values));
                }
            }
        }
    }
    cases
}

fn is_step(line: &str) -> bool {
    ["Given ", "And ", "When ", "Then "]
        .iter()
        .any(|word| line.starts_with(word))
}

/// The quoted strings of a step, in order.
fn quoted(step: &str) -> Vec<String> {
    step.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn case(steps: &[String], values: &BTreeMap<String, String>) -> Option<Case> {
    let mut case = Case {
        flag: String::new(),
        fallback: String::new(),
        user: String::new(),
        context: Struct::default(),
        expected: String::new(),
        described: String::new(),
    };
    let text = |value: &str| PbValue {
        kind: Some(Kind::StringValue(value.into())),
    };
    for step in steps {
        let mut step = step.clone();
        for (name, value) in values {
            step = step.replace(&format!("<{name}>"), value);
        }
        let q = quoted(&step);
        if step.contains("-flag with key") {
            case.flag = q[0].clone();
            case.fallback = q[1].clone();
        } else if step.contains("a nested property with outer key") {
            let inner = Struct {
                fields: [(q[1].clone(), text(&q[2]))].into(),
            };
            case.context.fields.insert(
                q[0].clone(),
                PbValue {
                    kind: Some(Kind::StructValue(inner)),
                },
            );
            case.described = q[2].clone();
        } else if step.contains("a targeting key with value") {
            case.user = q[0].clone();
        } else if step.contains("a context containing a key") {
            let (key, kind, value) = (&q[0], &q[1], &q[2]);
            let converted = match kind.as_str() {
                "String" => text(value),
                "Integer" | "Float" => PbValue {
                    kind: Some(Kind::NumberValue(value.parse().expect("a number"))),
                },
                other => panic!("type {other}"),
            };
            case.context.fields.insert(key.clone(), converted);
            case.described = if kind == "String" {
                value.clone()
            } else {
                format!("{kind} {value}")
            };
        } else if step.contains("resolved details value should be") {
            case.expected = q[0].clone();
        }
    }
    (!case.flag.is_empty() && !case.expected.is_empty()).then_some(case)
}

/// flagd's daemon, reimplemented from its source for this test: the
/// bucketing value hashed with MurmurHash3 (x86, 32 bits, seed 0), scaled
/// to the total weight, and the weights walked in order.
fn flagd_variant(bucketing_value: &str, weights: &[(&str, i64)]) -> Option<String> {
    let weights: Vec<(&str, u64)> = weights
        .iter()
        .map(|(variant, weight)| (*variant, (*weight).max(0) as u64))
        .collect();
    let total: u64 = weights.iter().map(|(_, weight)| weight).sum();
    if total == 0 {
        return None;
    }
    let bucket = (u64::from(murmur3(bucketing_value.as_bytes())) * total) >> 32;
    let mut end = 0;
    for (variant, weight) in weights {
        end += weight;
        if bucket < end {
            return Some(variant.to_owned());
        }
    }
    None
}

/// MurmurHash3 x86 32-bit, seed 0: the reference algorithm, block by block.
fn murmur3(data: &[u8]) -> u32 {
    let (c1, c2) = (0xcc9e_2d51u32, 0x1b87_3593u32);
    let mut h: u32 = 0;
    let blocks = data.len() / 4;
    for i in 0..blocks {
        let mut k = u32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        k = k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = &data[blocks * 4..];
    let mut k: u32 = 0;
    for (i, byte) in tail.iter().enumerate() {
        k |= u32::from(*byte) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A random targeting key: 1 to 40 characters, ASCII and not.
fn random_key(rng: &mut Random) -> String {
    const CHARS: &[char] = &[
        'a', 'b', 'k', 'z', 'A', 'Q', '0', '7', '9', '@', '.', '-', '_', ' ', 'é', 'ß', '中', '🦀',
    ];
    let length = 1 + (rng.next_u64() % 40) as usize;
    (0..length)
        .map(|_| CHARS[(rng.next_u64() % CHARS.len() as u64) as usize])
        .collect()
}

/// How the test computes a fractional flag's bucketing value, as flagd's
/// daemon does for the flag's first argument.
enum Bucketing {
    /// No first argument: the flag key and the targeting key.
    FlagAndTargetingKey,
    /// `{"var": "targetingKey"}`: the targeting key alone.
    TargetingKey,
    /// `{"cat": [prefix, {"var": "user.name"}]}`.
    PrefixAndUserName(&'static str),
}

async fn fractional_splits_serve_what_flagd_serves(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let files = TestDir::create();
    // The testbed's fractional flags, and uneven splits of this test's own.
    let own = json!({
        "flags": {
            "thirds": {"state": "ENABLED", "defaultVariant": "a",
                "variants": {"a": "a", "b": "b", "c": "c"},
                "targeting": {"fractional": [["a", 1], ["b", 1], ["c", 1]]}},
            "uneven": {"state": "ENABLED", "defaultVariant": "a",
                "variants": {"a": 1, "b": 2, "c": 3},
                "targeting": {"fractional": [{"var": "targetingKey"}, ["a", 1], ["b", 2], ["c", 997]]}},
            "large-weights": {"state": "ENABLED", "defaultVariant": "off",
                "variants": {"on": true, "off": false},
                "targeting": {"if": [{"in": [{"var": "plan"}, ["pro", "team"]]},
                    {"fractional": [["on", 1_000_000_007], ["off", 1_000_000_009]]}, "off"]}}
        }
    });
    let own_file = write_file(&files, "own.json", &own.to_string());
    let _testkit = import_testkit(&app, &files).await;
    // Engine 2 clients cannot bucket as flagd does: Watch leaves those
    // flags out for them (typed flags without it stay in).
    let (older, _) = crate::common::watch_engine(&app, 2).await;
    let (current, _) = crate::common::watch_engine(&app, vexil::engine::ENGINE).await;
    let names = |snapshot: &pb::WatchSnapshot| -> Vec<String> {
        snapshot
            .flags
            .iter()
            .map(|flag| flag.name.clone())
            .collect()
    };
    assert!(names(&current).contains(&"fractional-flag".to_string()));
    assert!(!names(&older).contains(&"fractional-flag".to_string()));
    assert!(names(&older).contains(&"equal-greater-lesser-version-flag".to_string()));
    let imported = vexil(
        app.address,
        None,
        &["import", "--format", "flagd", &own_file],
    )
    .await;
    assert_eq!(imported.code, 0, "{} {}", imported.stdout, imported.stderr);

    let quarters = [
        ("clubs", 25),
        ("diamonds", 25),
        ("hearts", 25),
        ("spades", 25),
    ];
    type Weights = Vec<(&'static str, i64)>;
    let flags: Vec<(&str, Bucketing, Weights)> = vec![
        (
            "fractional-flag",
            Bucketing::PrefixAndUserName("fractional-flag"),
            quarters.to_vec(),
        ),
        (
            "fractional-flag-A-shared-seed",
            Bucketing::PrefixAndUserName("shared-seed"),
            quarters.to_vec(),
        ),
        (
            "fractional-flag-shorthand",
            Bucketing::FlagAndTargetingKey,
            vec![("heads", 1), ("tails", 1)],
        ),
        (
            "fractional-hash-edge-flag",
            Bucketing::TargetingKey,
            vec![("lower", 50), ("upper", 50)],
        ),
        (
            "fractional-negative-weight-flag",
            Bucketing::TargetingKey,
            vec![("one", -50), ("two", 100)],
        ),
        (
            "thirds",
            Bucketing::FlagAndTargetingKey,
            vec![("a", 1), ("b", 1), ("c", 1)],
        ),
        (
            "uneven",
            Bucketing::TargetingKey,
            vec![("a", 1), ("b", 2), ("c", 997)],
        ),
        (
            "large-weights",
            Bucketing::FlagAndTargetingKey,
            vec![("on", 1_000_000_007), ("off", 1_000_000_009)],
        ),
    ];
    let mut rng = Random::seeded();
    for (flag, bucketing, weights) in &flags {
        let mut served: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..1000 {
            let key = random_key(&mut rng);
            let mut context = Struct::default();
            let (user, value) = match bucketing {
                Bucketing::FlagAndTargetingKey => (key.clone(), format!("{flag}{key}")),
                Bucketing::TargetingKey => (key.clone(), key.clone()),
                Bucketing::PrefixAndUserName(prefix) => {
                    let user = Struct {
                        fields: [(
                            "name".to_string(),
                            PbValue {
                                kind: Some(Kind::StringValue(key.clone())),
                            },
                        )]
                        .into(),
                    };
                    context.fields.insert(
                        "user".into(),
                        PbValue {
                            kind: Some(Kind::StructValue(user)),
                        },
                    );
                    (String::new(), format!("{prefix}{key}"))
                }
            };
            if *flag == "large-weights" {
                context.fields.insert(
                    "plan".into(),
                    PbValue {
                        kind: Some(Kind::StringValue("team".into())),
                    },
                );
            }
            let expected = flagd_variant(&value, weights).expect("a variant");
            let answer = app
                .evaluation
                .clone()
                .evaluate(pb::EvaluateRequest {
                    flag_name: flag.to_string(),
                    user_id: user,
                    environment: String::new(),
                    context: Some(context),
                })
                .await
                .expect("evaluate")
                .into_inner();
            assert_eq!(answer.variant, expected, "{flag} for {key:?}");
            *served.entry(expected).or_default() += 1;
        }
        // The keys spread: each variant with a tenth of the weight or more
        // is served to someone.
        let total: i64 = weights.iter().map(|(_, weight)| (*weight).max(0)).sum();
        for (variant, weight) in weights {
            if *weight * 10 >= total {
                assert!(served.contains_key(*variant), "{flag}: {served:?}");
            }
        }
    }
    app.stop().await;
    db.remove().await;
}

#[test]
fn the_reimplementation_matches_murmur3_reference_values() {
    assert_eq!(murmur3(b""), 0);
    assert_eq!(murmur3(b"hello"), 0x248b_fa47);
    assert_eq!(
        murmur3(b"The quick brown fox jumps over the lazy dog"),
        0x2e4f_f723
    );
    // flagd-testbed's hash edge keys sit next to a 50/50 boundary.
    for (key, lower) in [("ejOoVL", true), ("6LvT0", false), ("ceQdGm", false)] {
        let served = flagd_variant(key, &[("lower", 50), ("upper", 50)]);
        assert_eq!(served.as_deref() == Some("lower"), lower, "{key}");
    }
}
