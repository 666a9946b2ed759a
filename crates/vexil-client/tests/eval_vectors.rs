//! The shared evaluation vectors (`docs/eval-vectors`), answered by the
//! client's local copy: each file's state is loaded as a bootstrap file
//! (the server is unreachable), and every case at the files' default time
//! gets its value, variant and reason from the client's own evaluation.

use std::time::Duration;

use serde_json::{Value as Json, json};
use vexil_client::{Client, Value};

const VECTOR_TIME: &str = "2026-06-01T00:00:00Z";

fn value_json(value: Option<&Value>) -> Json {
    value.map_or(Json::Null, Value::to_json)
}

/// The state's flags or segments with the bookkeeping a stored one has.
fn stored(items: &Json) -> Vec<Json> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let mut item = item.clone();
            item["revision"] = json!(1);
            item["created_at"] = json!("2026-01-01T00:00:00Z");
            item["updated_at"] = json!("2026-01-01T00:00:00Z");
            item["created_by"] = json!("vectors");
            item["updated_by"] = json!("vectors");
            item
        })
        .collect()
}

async fn client_for(state: &Json, path: &std::path::Path) -> Client {
    let file = json!({
        "format": "vexil-bootstrap/1",
        "revision": 1,
        "written_at": chrono::Utc::now(),
        "flags": stored(&state["flags"]),
        "segments": stored(&state["segments"]),
    });
    std::fs::write(path, serde_json::to_vec(&file).expect("json")).expect("write");
    Client::builder()
        // Nothing listens here: the copy is the bootstrap file's.
        .endpoints(["http://127.0.0.1:9"])
        .connect_timeout(Duration::from_millis(100))
        .ready_timeout(Duration::from_millis(200))
        .bootstrap_file(path, None)
        .build()
        .connect()
        .await
        .expect("started from the bootstrap file")
}

#[tokio::test]
async fn every_vector_gets_its_expected_answer_locally() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/eval-vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let scratch = std::env::temp_dir().join(format!("vexil-test-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut checked = 0;
    for path in files {
        let document: Json =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let bootstrap = scratch.join(path.file_name().expect("a name"));
        let client = client_for(&document["state"], &bootstrap).await;
        for case in document["tests"].as_array().expect("tests") {
            if case["context"]["at"] != VECTOR_TIME {
                continue;
            }
            let context = &case["context"];
            let attributes = context["attributes"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let flag = case["flag"].as_str().expect("flag");
            let user = context["user_id"].as_str().expect("user");
            let environment = context["environment"].as_str().expect("environment");
            let (variant, value) =
                client.with_value(flag, user, environment, &attributes, |variant, value| {
                    (variant.map(str::to_owned), value_json(value))
                });
            let evaluation = client.evaluate_in(flag, user, environment, &attributes);
            let what = format!("{}: {}", path.display(), case["description"]);
            let expected = &case["expected"];
            assert_eq!(evaluation.reason.name(), expected["reason"], "{what}");
            assert_eq!(variant.as_deref(), expected["variant"].as_str(), "{what}");
            assert_eq!(value, expected["value"], "{what}");
            checked += 1;
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    assert!(checked >= 300, "only {checked} cases checked");
}
