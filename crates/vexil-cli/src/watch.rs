//! `vexil watch`: every flag and segment change as it happens, a line each
//! (a JSON object per line with `--output json`, a YAML document per
//! change with `--output yaml`).

use serde_json::json;
use vexil_proto::vexil::v1 as pb;

use crate::connection::Connection;
use crate::failure::{Failure, Kind};
use crate::output::Output;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Only these flags (repeatable); every flag without.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Print the current state first (each flag and segment as a line).
    #[arg(long)]
    pub snapshot: bool,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// Follows the server's Watch stream until it ends (exit 6: the server
/// went away) or the user stops it.
pub async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let mut stream = args
        .connection
        .evaluation()
        .await?
        .watch(pb::WatchRequest {
            flag_names: args.names.clone(),
            since_revision: None,
            engine: vexil_engine::ENGINE,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(pb::watch_response::Event::Snapshot(snapshot)) if args.snapshot => {
                for segment in snapshot.segments {
                    print_line(
                        args.output,
                        snapshot.revision,
                        "segment",
                        &segment.name,
                        "present",
                    );
                }
                for flag in snapshot.flags {
                    let state = if flag.enabled { "on" } else { "killed" };
                    print_line(args.output, flag.revision, "flag", &flag.name, state);
                }
            }
            Some(pb::watch_response::Event::Change(change)) => {
                let state = match (change.kind(), change.flag.as_ref()) {
                    (pb::ChangeKind::Deleted, _) => "deleted",
                    (_, Some(flag)) if !flag.enabled => "killed",
                    _ => "changed",
                };
                print_line(
                    args.output,
                    change.revision,
                    "flag",
                    &change.flag_name,
                    state,
                );
            }
            Some(pb::watch_response::Event::SegmentChange(change)) => {
                let state = if change.kind() == pb::ChangeKind::Deleted {
                    "deleted"
                } else {
                    "changed"
                };
                print_line(
                    args.output,
                    change.revision,
                    "segment",
                    &change.segment_name,
                    state,
                );
            }
            _ => {}
        }
    }
    Err(Failure::new(
        Kind::Unreachable,
        "the server ended the stream",
    ))
}

fn print_line(format: Output, revision: u64, kind: &str, name: &str, state: &str) {
    let line = json!({"revision": revision, "kind": kind, "name": name, "change": state});
    match format {
        Output::Json => println!("{line}"),
        Output::Yaml => print!("---\n{}", crate::output::yaml(&line)),
        Output::Table => println!("{revision}\t{kind}\t{name}\t{state}"),
    }
}
