//! `vexil flags create|update NAME`: a flag's fields from a file (JSON or
//! YAML, one flag as `vexil export` writes it) and from options, which
//! win. An update changes only the fields it names (the update mask), so
//! a script can set one field without reading the others first.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use vexil_engine::FlagSpec;
use vexil_proto::vexil::v1 as pb;

use crate::connection::Connection;
use crate::document::FLAG_FIELDS_LEFT_OUT_WHEN_EMPTY;
use crate::failure::{Failure, Kind};
use crate::flags::print_flag;
use crate::output::{Output, parse_data};

#[derive(Debug, Clone, clap::Args)]
pub struct EditArgs {
    pub name: String,
    /// The flag's fields as JSON or YAML (`-`: standard input), e.g.
    /// `{"type": "string", "variants": [...], "fallthrough": {...}}`.
    #[arg(long = "from")]
    pub from: Option<PathBuf>,
    #[arg(long)]
    pub description: Option<String>,
    /// The kill switch: `true` or `false`.
    #[arg(long)]
    pub enabled: Option<bool>,
    /// A boolean flag's rollout, 0 to 100.
    #[arg(long)]
    pub percentage: Option<f64>,
    /// The flag's tags (repeatable; replaces them all).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub group: Option<String>,
    /// boolean, string, int, float or object (fixed at creation).
    #[arg(long = "type")]
    pub flag_type: Option<String>,
    /// Why; recorded in the audit trail.
    #[arg(long)]
    pub reason: String,
    /// Update only if the flag is still at this revision (exit 4
    /// otherwise).
    #[arg(long)]
    pub expected_revision: Option<u64>,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

pub async fn create(args: EditArgs) -> Result<(), Failure> {
    if args.expected_revision.is_some() {
        return Err(invalid("--expected-revision: a new flag has no revision"));
    }
    let (_, spec) = fields(&args)?;
    // A whole flag: checked here as the server will, every error at once.
    spec.validate("flag")
        .map_err(|err| invalid(&err.to_string()))?;
    let created = args
        .connection
        .flags()
        .await?
        .create_flag(pb::CreateFlagRequest {
            flag: Some(crate::state::flag_pb(&args.name, &spec)?),
            reason: args.reason.clone(),
        })
        .await?
        .into_inner();
    print_flag(created, args.output)
}

pub async fn update(args: EditArgs) -> Result<(), Failure> {
    let (fields, spec) = fields(&args)?;
    if fields.contains_key("type") {
        return Err(invalid(
            "type: a flag's type is fixed when it is created (delete it and create it again)",
        ));
    }
    if fields.is_empty() {
        return Err(invalid(
            "nothing to change: give --from FILE or a field option (--enabled, --percentage, …)",
        ));
    }
    let updated = args
        .connection
        .flags()
        .await?
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(crate::state::flag_pb(&args.name, &spec)?),
            update_mask: Some(prost_types::FieldMask {
                paths: fields.keys().cloned().collect(),
            }),
            reason: args.reason.clone(),
            expected_revision: args.expected_revision,
        })
        .await?
        .into_inner();
    print_flag(updated, args.output)
}

/// The fields the file and the options name, and the spec they make (the
/// others at their defaults). An update's spec is partial: the server
/// checks the flag it makes.
fn fields(args: &EditArgs) -> Result<(Map<String, Value>, FlagSpec), Failure> {
    let mut fields = match &args.from {
        None => Map::new(),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(path)
            }
            .map_err(|err| invalid(&format!("reading {}: {err}", path.display())))?;
            match parse_data(&text).map_err(|err| invalid(&format!("{}: {err}", path.display())))? {
                Value::Object(fields) => fields,
                _ => return Err(invalid("the file must hold one flag's fields (an object)")),
            }
        }
    };
    match fields.remove("name") {
        None => {}
        Some(Value::String(name)) if name == args.name => {}
        Some(other) => {
            return Err(invalid(&format!(
                "name: the file names {other}, the command {:?}",
                args.name
            )));
        }
    }
    let options = [
        ("description", args.description.as_ref().map(|d| json!(d))),
        ("enabled", args.enabled.map(|e| json!(e))),
        ("percentage", args.percentage.map(|p| json!(p))),
        ("tags", (!args.tags.is_empty()).then(|| json!(args.tags))),
        ("group", args.group.as_ref().map(|g| json!(g))),
        ("type", args.flag_type.as_ref().map(|t| json!(t))),
    ];
    for (field, value) in options {
        if let Some(value) = value {
            fields.insert(field.to_owned(), value);
        }
    }
    let known: Vec<String> = match serde_json::to_value(FlagSpec::default()) {
        Ok(Value::Object(defaults)) => defaults.into_iter().map(|(field, _)| field).collect(),
        _ => Vec::new(),
    };
    if let Some(unknown) = fields.keys().find(|field| {
        !known.contains(field) && !FLAG_FIELDS_LEFT_OUT_WHEN_EMPTY.contains(&field.as_str())
    }) {
        return Err(invalid(&format!("{unknown}: unknown field")));
    }
    let spec: FlagSpec = serde_json::from_value(Value::Object(fields.clone()))
        .map_err(|err| invalid(&format!("flag: {err}")))?;
    Ok((fields, spec))
}

fn invalid(message: &str) -> Failure {
    Failure::new(Kind::Invalid, message)
}
