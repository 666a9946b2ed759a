//! Segment commands: list, get and delete (create and update:
//! [`crate::edit`]).

use serde_json::{Map, Value, json};
use vexil_proto::convert::segment_from_pb;
use vexil_proto::vexil::v1 as pb;

use crate::connection::Connection;
use crate::failure::{Failure, Kind};
use crate::flags::{KillArgs, NameArgs};
use crate::output::{self, Output};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SegmentsCommand {
    /// Every segment, ordered by name.
    List(ListSegmentsArgs),
    /// One segment, every field.
    Get(NameArgs),
    /// Create a segment from a file of its fields (JSON or YAML), with a
    /// reason.
    Create(crate::edit::SegmentEditArgs),
    /// Replace a segment's fields with a file's, with a reason.
    Update(crate::edit::SegmentEditArgs),
    /// Delete a segment no flag or segment uses, with a reason.
    Delete(KillArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListSegmentsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

pub async fn segments(command: SegmentsCommand) -> Result<(), Failure> {
    match command {
        SegmentsCommand::List(args) => {
            let mut segments = args
                .connection
                .flags()
                .await?
                .list_segments(pb::ListSegmentsRequest {})
                .await?
                .into_inner()
                .segments;
            segments.sort_by(|a, b| a.name.cmp(&b.name));
            match args.output {
                format @ (Output::Json | Output::Yaml) => output::data(
                    format,
                    &Value::Array(
                        segments
                            .into_iter()
                            .map(segment_json)
                            .collect::<Result<_, _>>()?,
                    ),
                ),
                Output::Table => output::table(
                    &["NAME", "INCLUDED", "EXCLUDED", "RULES", "REVISION"],
                    &segments
                        .iter()
                        .map(|segment| {
                            vec![
                                segment.name.clone(),
                                segment.included.len().to_string(),
                                segment.excluded.len().to_string(),
                                segment.rules.len().to_string(),
                                segment.revision.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(())
        }
        SegmentsCommand::Get(args) => {
            let segment = args
                .connection
                .flags()
                .await?
                .get_segment(pb::GetSegmentRequest { name: args.name })
                .await?
                .into_inner();
            print_segment(segment, args.output)
        }
        SegmentsCommand::Create(args) => crate::edit::create_segment(args).await,
        SegmentsCommand::Update(args) => crate::edit::update_segment(args).await,
        SegmentsCommand::Delete(args) => {
            let deleted = args
                .change
                .connection
                .flags()
                .await?
                .delete_segment(pb::DeleteSegmentRequest {
                    name: args.name.clone(),
                    reason: args.change.reason,
                    expected_revision: args.change.expected_revision,
                })
                .await?
                .into_inner();
            match args.change.output {
                format @ (Output::Json | Output::Yaml) => output::data(
                    format,
                    &json!({"name": args.name, "revision": deleted.revision}),
                ),
                Output::Table => println!(
                    "deleted segment {} at revision {}",
                    args.name, deleted.revision
                ),
            }
            Ok(())
        }
    }
}

/// A segment as JSON: its name, its fields and its revision.
fn segment_json(segment: pb::Segment) -> Result<Value, Failure> {
    let revision = segment.revision;
    let (name, spec) = segment_from_pb(segment).map_err(|err| {
        Failure::new(
            Kind::Other,
            format!("the server's answer cannot be read: {err}"),
        )
    })?;
    let mut object = Map::new();
    object.insert("name".into(), json!(name));
    if let Ok(Value::Object(fields)) = serde_json::to_value(&spec) {
        object.extend(fields);
    }
    object.insert("revision".into(), json!(revision));
    Ok(Value::Object(object))
}

pub(crate) fn print_segment(segment: pb::Segment, format: Output) -> Result<(), Failure> {
    let value = segment_json(segment)?;
    match format {
        Output::Json | Output::Yaml => output::data(format, &value),
        Output::Table => output::table(
            &["FIELD", "VALUE"],
            &value
                .as_object()
                .into_iter()
                .flatten()
                .map(|(field, value)| vec![field.clone(), crate::flags::cell(value)])
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}
