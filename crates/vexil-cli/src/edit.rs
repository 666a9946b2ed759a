//! `vexil flags create|update NAME`: a flag's fields from a file (JSON or
//! YAML, one flag as `vexil export` writes it) and from options, which
//! win. An update changes only the fields it names (the update mask), so
//! a script can set one field without reading the others first.
//! `vexil segments create|update NAME --from FILE`: a segment's fields
//! from a file (an update replaces them all, as the API does).

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use vexil_engine::{FlagSpec, SegmentSpec};
use vexil_proto::vexil::v1 as pb;

use crate::document::FLAG_FIELDS_LEFT_OUT_WHEN_EMPTY;
use crate::failure::{Failure, Kind};
use crate::flags::{ChangeArgs, print_flag};
use crate::output::parse_data;

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
    #[command(flatten)]
    pub change: ChangeArgs,
}

pub async fn create(args: EditArgs) -> Result<(), Failure> {
    if args.change.expected_revision.is_some() {
        return Err(invalid("--expected-revision: a new flag has no revision"));
    }
    let (_, spec) = fields(&args)?;
    // A whole flag: checked here as the server will, every error at once.
    spec.validate("flag")
        .map_err(|err| invalid(&err.to_string()))?;
    let created = args
        .change
        .connection
        .flags()
        .await?
        .create_flag(pb::CreateFlagRequest {
            flag: Some(crate::state::flag_pb(&args.name, &spec)?),
            reason: args.change.reason.clone(),
        })
        .await?
        .into_inner();
    print_flag(created, args.change.output)
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
        .change
        .connection
        .flags()
        .await?
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(crate::state::flag_pb(&args.name, &spec)?),
            update_mask: Some(prost_types::FieldMask {
                paths: fields.keys().cloned().collect(),
            }),
            reason: args.change.reason.clone(),
            expected_revision: args.change.expected_revision,
        })
        .await?
        .into_inner();
    print_flag(updated, args.change.output)
}

#[derive(Debug, Clone, clap::Args)]
pub struct SegmentEditArgs {
    pub name: String,
    /// The segment's fields as JSON or YAML (`-`: standard input):
    /// `description`, `included`, `excluded`, `rules`.
    #[arg(long = "from")]
    pub from: PathBuf,
    #[command(flatten)]
    pub change: ChangeArgs,
}

pub async fn create_segment(args: SegmentEditArgs) -> Result<(), Failure> {
    if args.change.expected_revision.is_some() {
        return Err(invalid(
            "--expected-revision: a new segment has no revision",
        ));
    }
    let segment = segment(&args)?;
    let created = args
        .change
        .connection
        .flags()
        .await?
        .create_segment(pb::CreateSegmentRequest {
            segment: Some(segment),
            reason: args.change.reason.clone(),
        })
        .await?
        .into_inner();
    crate::segments::print_segment(created, args.change.output)
}

pub async fn update_segment(args: SegmentEditArgs) -> Result<(), Failure> {
    let segment = segment(&args)?;
    let updated = args
        .change
        .connection
        .flags()
        .await?
        .update_segment(pb::UpdateSegmentRequest {
            segment: Some(segment),
            reason: args.change.reason.clone(),
            expected_revision: args.change.expected_revision,
        })
        .await?
        .into_inner();
    crate::segments::print_segment(updated, args.change.output)
}

/// The segment the file describes, checked as the server checks one.
fn segment(args: &SegmentEditArgs) -> Result<pb::Segment, Failure> {
    let mut fields = read_object(&args.from)?;
    check_name(&mut fields, &args.name)?;
    let known: Vec<String> = match serde_json::to_value(SegmentSpec::default()) {
        Ok(Value::Object(defaults)) => defaults.into_iter().map(|(field, _)| field).collect(),
        _ => Vec::new(),
    };
    if let Some(unknown) = fields.keys().find(|field| !known.contains(field)) {
        return Err(invalid(&format!("{unknown}: unknown field")));
    }
    let spec: SegmentSpec = serde_json::from_value(Value::Object(fields))
        .map_err(|err| invalid(&format!("segment: {err}")))?;
    spec.validate("segment")
        .map_err(|err| invalid(&err.to_string()))?;
    crate::state::segment_pb(&args.name, &spec)
}

/// A file (`-`: standard input) holding one object, JSON or YAML.
fn read_object(path: &std::path::Path) -> Result<Map<String, Value>, Failure> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|err| invalid(&format!("reading {}: {err}", path.display())))?;
    match parse_data(&text).map_err(|err| invalid(&format!("{}: {err}", path.display())))? {
        Value::Object(fields) => Ok(fields),
        _ => Err(invalid("the file must hold one object of fields")),
    }
}

/// A `name` in the file must be the command's (it is not a field).
fn check_name(fields: &mut Map<String, Value>, name: &str) -> Result<(), Failure> {
    match fields.remove("name") {
        None => Ok(()),
        Some(Value::String(named)) if named == name => Ok(()),
        Some(other) => Err(invalid(&format!(
            "name: the file names {other}, the command {name:?}"
        ))),
    }
}

/// The fields the file and the options name, and the spec they make (the
/// others at their defaults). An update's spec is partial: the server
/// checks the flag it makes.
fn fields(args: &EditArgs) -> Result<(Map<String, Value>, FlagSpec), Failure> {
    let mut fields = match &args.from {
        None => Map::new(),
        Some(path) => read_object(path)?,
    };
    check_name(&mut fields, &args.name)?;
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
