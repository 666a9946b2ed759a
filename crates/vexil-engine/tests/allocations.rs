//! Evaluation allocates nothing: boolean flags with today's fields, typed
//! flags with rules of every operator, splits, segments and prerequisites,
//! counted by a global allocator wrapper around each call.

use std::alloc::System;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use vexil_engine::{
    Attributes, Catalog, EvalContext, Flag, FlagName, FlagSpec, Gathered, Segment, SegmentSpec,
    Stamp, evaluate,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

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

fn stamp() -> Stamp {
    Stamp {
        revision: 1,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
        created_by: String::new(),
        updated_by: String::new(),
    }
}

fn flag(json: serde_json::Value) -> Arc<Flag> {
    let name = FlagName::parse(
        "name",
        json["name"].as_str().unwrap_or_default().to_string(),
    )
    .expect("name");
    let spec: FlagSpec = serde_json::from_value(json).expect("spec");
    spec.validate("flag").expect("valid");
    Arc::new(Flag::new(name, spec, stamp()))
}

#[test]
fn evaluation_allocates_nothing() {
    let segment_spec: SegmentSpec = serde_json::from_value(serde_json::json!({
        "included": ["alice"],
        "rules": [{"clauses": [{"attribute": "country", "op": "in", "values": ["DE", "AT"]}]}]
    }))
    .expect("segment");
    let segment = Segment::new(
        FlagName::parse("name", "dach".to_string()).expect("name"),
        segment_spec,
        1,
        DateTime::UNIX_EPOCH,
    );
    let flags = [
        flag(
            serde_json::json!({"name": "legacy", "enabled": true, "percentage": 42.5,
            "whitelist": ["w"], "blacklist": ["b"], "environment_overrides": {"staging": true}}),
        ),
        flag(serde_json::json!({"name": "prereq", "enabled": true, "percentage": 100.0})),
        flag(serde_json::json!({
            "name": "typed", "enabled": true, "type": "string",
            "variants": [{"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}},
                         {"name": "c", "value": {"string": "C"}}],
            "prerequisites": [{"flag": "prereq"}],
            "targets": [{"variant": "a", "user_ids": ["t1"]}],
            "rules": [
                {"clauses": [
                    {"attribute": "plan", "op": "in", "values": ["enterprise", "team"], "case_insensitive": true},
                    {"attribute": "email", "op": "ends_with", "values": ["@corp.com"]},
                    {"attribute": "agent", "op": "contains", "values": ["mobile"], "case_insensitive": true},
                    {"attribute": "seats", "op": "gte", "values": [10]},
                    {"attribute": "version", "op": "semver_gte", "values": ["2.3.0"]},
                    {"attribute": "signup", "op": "after", "values": ["2020-01-01T00:00:00Z"]},
                    {"attribute": "email", "op": "matches", "values": ["^[a-z]+@"]},
                    {"attribute": "beta", "op": "exists", "negate": true},
                    {"attribute": "", "op": "in_segment", "values": ["dach"]}
                ], "serve": {"variant": "b"}}
            ],
            "fallthrough": {"split": {"weights": [{"variant": "a", "weight": 3334},
                {"variant": "b", "weight": 3333}, {"variant": "c", "weight": 3333}]}}
        })),
    ];
    let store = Store {
        flags: flags
            .iter()
            .map(|f| (f.name.to_string(), f.clone()))
            .collect(),
        segments: [("dach".to_string(), Arc::new(segment))].into(),
    };
    let attributes = serde_json::json!({
        "plan": "Enterprise", "email": "ann@corp.com", "agent": "Foo Mobile", "seats": 12,
        "version": "2.10.1-rc.1", "signup": "2024-05-01T00:00:00Z", "country": ["FR", "DE"],
    });
    let attributes = attributes.as_object().expect("an object").clone();
    let now: DateTime<Utc> = DateTime::UNIX_EPOCH + chrono::TimeDelta::days(20_000);
    // Read in place, and gathered (inside the counted region: gathering
    // allocates nothing either).
    for (flag, gathered) in flags.iter().flat_map(|flag| [(flag, false), (flag, true)]) {
        for user in ["alice", "bob", "", "t1", "w"] {
            let answer_for = |attributes: &dyn Attributes| {
                let ctx = EvalContext {
                    user_id: user,
                    environment: "production",
                    attributes,
                    catalog: &store,
                };
                evaluate(Some(flag), &ctx, now)
            };
            let answer = || {
                if gathered {
                    Gathered::gather(&attributes, |gathered| answer_for(gathered))
                } else {
                    answer_for(&attributes)
                }
            };
            // Warm up once (the regex engine fills its per-thread cache).
            let _ = answer();
            let region = Region::new(GLOBAL);
            let answer = answer();
            let stats = region.change();
            if flag.name.as_str() == "typed" && user == "bob" {
                assert_eq!(
                    answer.reason,
                    vexil_engine::Reason::RuleMatch,
                    "every clause was checked"
                );
            }
            assert_eq!(
                (stats.allocations, stats.reallocations),
                (0, 0),
                "{} for {user:?} ({answer:?}) allocated",
                flag.name
            );
        }
    }
}
