//! Read-only views of a flag: why a user gets their answer (`explain`) and
//! how it has been evaluated (`metrics`).

use serde_json::{Map, Value, json};
use vexil_proto::convert::struct_to_pb;
use vexil_proto::vexil::v1 as pb;

use crate::connection::Connection;
use crate::failure::{Failure, Kind};
use crate::output::{self, Output};

#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    pub name: String,
    /// The user (the targeting key).
    #[arg(long, default_value = "")]
    pub user: String,
    #[arg(long, default_value = "")]
    pub environment: String,
    /// A context attribute, `key=value` (repeatable). The value is read as
    /// JSON when it is JSON (`seats=25`, `beta=true`, `tags=["a","b"]`),
    /// else as a string (`plan=enterprise`).
    #[arg(long = "context", value_parser = parse_attribute)]
    pub context: Vec<(String, Value)>,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    pub name: String,
    /// Hours back from now (the server's default when 0).
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    #[arg(long)]
    pub environment: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

fn parse_attribute(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected key=value"))?;
    if key.is_empty() {
        return Err(format!("{text:?}: the key is empty"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

pub async fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let context: Map<String, Value> = args.context.iter().cloned().collect();
    let answer = args
        .connection
        .flags()
        .await?
        .explain_evaluation(pb::ExplainEvaluationRequest {
            flag_name: args.name.clone(),
            user_id: args.user.clone(),
            environment: args.environment.clone(),
            at: None,
            context: (!context.is_empty()).then(|| struct_to_pb(&context)),
        })
        .await?
        .into_inner();
    let reason = pb::Reason::try_from(answer.reason)
        .map(|reason| {
            reason
                .as_str_name()
                .trim_start_matches("REASON_")
                .to_owned()
        })
        .unwrap_or_default();
    let value = answer
        .value
        .as_ref()
        .and_then(|value| value.value.as_ref())
        .map(|value| {
            use pb::typed_value::Value as Typed;
            match value {
                Typed::BoolValue(on) => json!(on),
                Typed::StringValue(text) => json!(text),
                Typed::IntValue(number) => json!(number),
                Typed::FloatValue(number) => json!(number),
                Typed::ObjectValue(object) => {
                    vexil_proto::convert::struct_from_pb("value", object.clone())
                        .map(Value::Object)
                        .unwrap_or(Value::Null)
                }
            }
        });
    let steps: Vec<(String, bool, String)> = answer
        .steps
        .iter()
        .map(|step| {
            let rule = pb::EvaluationRule::try_from(step.rule)
                .map(|rule| {
                    rule.as_str_name()
                        .trim_start_matches("EVALUATION_RULE_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            (rule, step.decided, step.detail.clone())
        })
        .collect();
    match args.output {
        format @ (Output::Json | Output::Yaml) => output::data(
            format,
            &json!({
                "flag": answer.flag_name, "enabled": answer.enabled, "reason": reason,
                "variant": answer.variant, "value": value, "revision": answer.revision,
                "rule_index": answer.rule_index,
                "steps": steps.iter().map(|(rule, decided, detail)|
                    json!({"rule": rule, "decided": decided, "detail": detail})).collect::<Vec<_>>(),
                "clauses": answer.clauses.iter().map(|clause| json!({
                    "rule": clause.rule_index, "clause": clause.clause_index,
                    "attribute": clause.attribute, "seen": clause.seen, "matched": clause.matched,
                })).collect::<Vec<_>>(),
            }),
        ),
        Output::Table => {
            println!(
                "{}: {} ({reason}){}",
                answer.flag_name,
                value.map_or_else(|| answer.enabled.to_string(), |value| value.to_string()),
                if answer.variant.is_empty() {
                    String::new()
                } else {
                    format!(", variant {}", answer.variant)
                }
            );
            output::table(
                &["STEP", "DECIDED", "WHY"],
                &steps
                    .into_iter()
                    .map(|(rule, decided, detail)| {
                        vec![
                            rule,
                            if decided { "yes".into() } else { String::new() },
                            detail,
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            if !answer.clauses.is_empty() {
                println!();
                output::table(
                    &["RULE", "CLAUSE", "ATTRIBUTE", "SEEN", "MATCHED"],
                    &answer
                        .clauses
                        .iter()
                        .map(|clause| {
                            vec![
                                clause.rule_index.to_string(),
                                clause.clause_index.to_string(),
                                clause.attribute.clone(),
                                clause.seen.clone().unwrap_or_else(|| "-".into()),
                                clause.matched.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    Ok(())
}

pub async fn metrics(args: MetricsArgs) -> Result<(), Failure> {
    let answer = args
        .connection
        .flags()
        .await?
        .get_metrics(pb::GetMetricsRequest {
            flag_name: args.name.clone(),
            hours: args.hours,
            environment: args.environment.clone(),
        })
        .await?
        .into_inner();
    if !answer.flag_exists
        && answer
            .totals
            .as_ref()
            .is_none_or(|totals| totals.evaluations == 0)
    {
        return Err(Failure::new(
            Kind::NotFound,
            format!("no flag named {:?}, and no evaluations of one", args.name),
        ));
    }
    let stats = |stats: Option<&pb::EvaluationStats>| {
        let stats = stats.cloned().unwrap_or_default();
        let latency = stats.latency.unwrap_or_default();
        json!({
            "evaluations": stats.evaluations, "enabled": stats.enabled, "disabled": stats.disabled,
            "distinct_users": stats.distinct_users,
            "variants": stats.variants.iter().map(|v| (v.variant.clone(), json!(v.count))).collect::<Map<_, _>>(),
            "p50_ns": latency.p50_ns, "p99_ns": latency.p99_ns,
        })
    };
    let hours: Vec<(String, Value)> = answer
        .hours
        .iter()
        .map(|hour| {
            let at = hour
                .hour
                .and_then(|at| vexil_proto::convert::timestamp_from_pb("hour", at).ok())
                .map(|at| at.format("%Y-%m-%d %H:00").to_string())
                .unwrap_or_default();
            (at, stats(hour.stats.as_ref()))
        })
        .collect();
    let totals = stats(answer.totals.as_ref());
    match args.output {
        format @ (Output::Json | Output::Yaml) => output::data(
            format,
            &json!({
                "flag": answer.flag_name, "totals": totals,
                "hours": hours.iter().map(|(at, stats)| json!({"hour": at, "stats": stats})).collect::<Vec<_>>(),
            }),
        ),
        Output::Table => {
            let row = |label: &str, stats: &Value| {
                vec![
                    label.to_owned(),
                    stats["evaluations"].to_string(),
                    stats["enabled"].to_string(),
                    stats["disabled"].to_string(),
                    stats["distinct_users"].to_string(),
                    stats["variants"]
                        .as_object()
                        .map(|variants| {
                            variants
                                .iter()
                                .map(|(name, count)| format!("{name}={count}"))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default(),
                ]
            };
            // Hours without evaluations are left out of the table.
            let mut rows: Vec<Vec<String>> = hours
                .iter()
                .filter(|(_, stats)| stats["evaluations"].as_u64().unwrap_or_default() > 0)
                .map(|(at, stats)| row(at, stats))
                .collect();
            rows.push(row("total", &totals));
            output::table(
                &["HOUR", "EVALUATIONS", "ON", "OFF", "USERS", "VARIANTS"],
                &rows,
            );
        }
    }
    Ok(())
}
