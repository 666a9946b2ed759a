//! `/metrics` (VEXIL_METRICS_LISTEN) parses with a real Prometheus text
//! parser and carries the documented series with the values the calls made
//! imply.

use std::collections::HashMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use vexil::grpc::pb;

use crate::common::{Backend, TestApp, TestDatabase, http, unique};

crate::backend_tests!(metrics_endpoint_reports_the_documented_series);

fn value(sample: &prometheus_parse::Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
        Value::Summary(_) => f64::NAN,
    }
}

/// The samples of `metric` whose labels include `labels`.
fn find<'a>(
    scrape: &'a Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a prometheus_parse::Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn one(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(scrape, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    value(found[0])
}

async fn scrape(app: &TestApp) -> Scrape {
    let address = app.prometheus.expect("a /metrics listener");
    let reply = http::request(address, "GET", "/metrics", &[], "").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.header("content-type")
    );
    let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    assert!(
        text.contains("feature_flag_evaluation_duration_seconds_bucket{le=\"+Inf\"}"),
        "the histogram ends with a +Inf bucket:\n{text}"
    );
    parse_as_openmetrics(&text);
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("Prometheus text")
}

/// Parses `text` with the Prometheus project's own OpenMetrics parser
/// (Python's `prometheus_client`), which refuses a whole scrape for one
/// malformed family (a histogram without `+Inf`, say), as Prometheus does.
fn parse_as_openmetrics(text: &str) {
    const PARSE: &str = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        families = list(text_string_to_metric_families(sys.stdin.read()))\n\
        print(len(families))";
    let child = std::process::Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => return missing_parser(&format!("python3: {err}")),
    };
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write the scrape");
    let output = child.wait_with_output().expect("python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        return missing_parser("pip install prometheus-client");
    }
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the scrape: {stderr}\n{text}"
    );
}

fn missing_parser(what: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("the OpenMetrics parser is needed when CI=true: {what}");
    }
    let notice = format!("skipped: the OpenMetrics parse of /metrics ({what})\n");
    std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes()).ok();
}

async fn metrics_endpoint_reports_the_documented_series(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_prometheus(crate::common::config(&db.url)).await;
    let prefix = unique("prom-");
    let flag = format!("{prefix}.rollout");
    app.create_flag(pb::Flag {
        name: flag.clone(),
        enabled: true,
        percentage: 50.0,
        ..pb::Flag::default()
    })
    .await;
    let mut expected: HashMap<(String, bool), u64> = HashMap::new();
    for user in 0..200 {
        let (enabled, reason) = app.evaluate(&flag, &format!("u{user}"), "prod").await;
        let reason = reason
            .as_str_name()
            .trim_start_matches("REASON_")
            .to_string();
        *expected.entry((reason, enabled)).or_default() += 1;
    }
    let missing = app
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: format!("{prefix}.missing"),
        })
        .await;
    assert_eq!(missing.expect_err("missing").code(), tonic::Code::NotFound);
    let _watch = app.watch(&[], None).await;

    let scrape = scrape(&app).await;
    for ((reason, enabled), count) in &expected {
        let got = one(
            &scrape,
            "feature_flag_evaluations_total",
            &[
                ("feature_flag_key", flag.as_str()),
                ("feature_flag_result_reason", reason.as_str()),
                ("feature_flag_result_value", &enabled.to_string()),
            ],
        );
        assert_eq!(got, *count as f64, "{reason} {enabled}");
    }
    // By variant: a boolean flag serves on or off.
    for (variant, enabled) in [("on", true), ("off", false)] {
        let served: u64 = expected
            .iter()
            .filter(|((_, on), _)| *on == enabled)
            .map(|(_, count)| count)
            .sum();
        let got = one(
            &scrape,
            "feature_flag_variant_evaluations_total",
            &[
                ("feature_flag_key", flag.as_str()),
                ("feature_flag_variant", variant),
            ],
        );
        assert_eq!(got, served as f64, "{variant}");
    }
    assert!(
        one(
            &scrape,
            "feature_flag_evaluation_duration_seconds_count",
            &[]
        ) >= 10.0
    );
    // gRPC calls (process-wide: other tests' servers count too).
    assert!(
        one(
            &scrape,
            "rpc_server_call_duration_seconds_count",
            &[
                ("rpc_service", "vexil.v1.EvaluationService"),
                ("rpc_method", "Evaluate"),
                ("rpc_grpc_status_code", "0"),
            ],
        ) >= 200.0
    );
    assert!(
        one(
            &scrape,
            "rpc_server_call_duration_seconds_count",
            &[("rpc_method", "GetFlag"), ("rpc_grpc_status_code", "5")],
        ) >= 1.0
    );
    assert_eq!(one(&scrape, "vexil_cache_flags", &[]), 1.0);
    assert!(one(&scrape, "vexil_cache_revision", &[]) >= 1.0);
    assert_eq!(one(&scrape, "vexil_bus_connected", &[]), 1.0);
    assert_eq!(one(&scrape, "vexil_bus_lag_revisions", &[]), 0.0);
    assert!(one(&scrape, "vexil_watch_subscribers", &[]) >= 1.0);
    assert_eq!(one(&scrape, "vexil_metrics_flush_failures_total", &[]), 0.0);
    for documented in [
        "vexil_bus_reconnects_total",
        "vexil_bus_lagged_total",
        "vexil_catch_ups_total",
    ] {
        assert!(
            scrape
                .docs
                .contains_key(documented.trim_end_matches("_total"))
                || !find(&scrape, documented, &[]).is_empty(),
            "{documented} is documented"
        );
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
    db.remove().await;
}
