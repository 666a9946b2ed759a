//! `vexil import FILE`: make the server match a document. The plan comes
//! first (create, update with a field-level diff, delete only with
//! `--prune`); each change is one audited call with a reason and, for
//! changes to what exists, the revision the plan was made at, so a
//! concurrent edit aborts that one change instead of being overwritten.

use std::io::Read;

use serde_json::Value;
use vexil_engine::{FlagSpec, SegmentSpec};
use vexil_proto::vexil::v1 as pb;

use crate::connection::{Connection, Flags};
use crate::document::Document;
use crate::failure::{Failure, Kind};
use crate::output;
use crate::state::{State, flag_pb, normalized_flag, normalized_segment, segment_pb};

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The document (`vexil export`'s format); `-` for standard input.
    /// With `--format flagd`, one or more flagd flag-definition files.
    #[arg(required = true)]
    pub files: Vec<String>,
    /// `vexil` (`vexil export`'s document) or `flagd` (flagd's flag
    /// definitions, targeting translated into rules).
    #[arg(long, value_enum, default_value_t = Format::Vexil)]
    pub format: Format,
    /// Print the plan and change nothing; exit 7 when it has changes
    /// (a drift check for CI).
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete flags and segments the file does not hold.
    #[arg(long)]
    pub prune: bool,
    /// Why, for the audit trail (default: the file's name and its Git
    /// commit, when it has one).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Vexil,
    Flagd,
}

/// How far the apply is: a bar on a terminal; otherwise (a CI log) a
/// line per batch of [`Progress::BATCH`] changes, for large plans.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
}

impl Progress {
    const BATCH: usize = 1000;

    fn new(total: usize) -> Self {
        use std::io::IsTerminal;
        let bar = (std::io::stderr().is_terminal() && total > 1).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} changes, {per_sec}, {eta} left",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0,
        }
    }

    /// One more change is being applied.
    fn step(&mut self) {
        let done = self.done;
        match &self.bar {
            Some(bar) => bar.set_position(done as u64),
            None if done > 0 && done.is_multiple_of(Self::BATCH) => {
                println!("… {done} of {} change(s) applied", self.total);
            }
            None => {}
        }
        self.done = done + 1;
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// How long one change waits, in all, for the server's rate limit.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// One change the import makes.
enum Step {
    CreateSegment(String, SegmentSpec),
    UpdateSegment(String, SegmentSpec, u64, Vec<String>),
    CreateFlag(String, FlagSpec),
    UpdateFlag(String, FlagSpec, u64, Vec<String>),
    DeleteFlag(String, u64),
    DeleteSegment(String, u64),
}

impl Step {
    fn describe(&self) -> String {
        let diff = |changes: &[String]| format!("\n      {}", changes.join("\n      "));
        match self {
            Self::CreateSegment(name, _) => format!("+ segment {name}"),
            Self::UpdateSegment(name, _, _, changes) => {
                format!("~ segment {name}{}", diff(changes))
            }
            Self::CreateFlag(name, _) => format!("+ flag {name}"),
            Self::UpdateFlag(name, _, _, changes) => format!("~ flag {name}{}", diff(changes)),
            Self::DeleteFlag(name, _) => format!("- flag {name}"),
            Self::DeleteSegment(name, _) => format!("- segment {name}"),
        }
    }
}

pub async fn import(args: ImportArgs) -> Result<(), Failure> {
    let wanted = match (args.format, args.files.as_slice()) {
        (Format::Vexil, [file]) => Document::parse(&read(file)?)?,
        (Format::Vexil, _) => {
            return Err(Failure::new(
                Kind::Invalid,
                "a Vexil document is one file (flagd's definitions may be several)",
            ));
        }
        (Format::Flagd, files) => {
            let texts = files
                .iter()
                .map(|file| Ok((file.clone(), read(file)?)))
                .collect::<Result<Vec<_>, Failure>>()?;
            crate::flagd::read(&texts)?
        }
    };
    let mut client = args.connection.flags().await?;
    let state = State::fetch(&mut client).await?;
    let (steps, kept) = plan(&wanted, &state, args.prune)?;
    for step in &steps {
        println!("{}", step.describe());
    }
    if kept > 0 {
        println!("({kept} on the server but not in the file: kept; --prune deletes them)");
    }
    println!(
        "plan: {} change(s){}",
        steps.len(),
        if args.dry_run {
            " (dry run: nothing applied)"
        } else {
            ""
        }
    );
    if args.dry_run {
        return if steps.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(
                Kind::Drift,
                "the server differs from the file",
            ))
        };
    }
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| default_reason(&args.files));
    let mut aborted = Vec::new();
    let mut applied = 0;
    let mut progress = Progress::new(steps.len());
    for step in steps {
        progress.step();
        // The server's management rate limit paces a large import: wait as
        // long as it asks (up to a minute per change), then go on.
        let mut waited = std::time::Duration::ZERO;
        let outcome = loop {
            match apply(&mut client, &step, &reason).await {
                Err(Failure {
                    retry_after: Some(pause),
                    ..
                }) if waited < PATIENCE => {
                    tokio::time::sleep(pause).await;
                    waited += pause;
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(()) => applied += 1,
            Err(failure) if failure.kind == Kind::Conflict => {
                eprintln!(
                    "aborted: {}: {failure}",
                    step.describe().lines().next().unwrap_or_default()
                );
                aborted.push(failure);
            }
            Err(failure) => {
                return Err(Failure::new(
                    failure.kind,
                    format!(
                        "{applied} change(s) applied, then {}: {failure}",
                        step.describe()
                    ),
                ));
            }
        }
    }
    progress.finish();
    println!("applied {applied} change(s)");
    if aborted.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Kind::Conflict,
            format!(
                "{} change(s) aborted: changed on the server since the plan",
                aborted.len()
            ),
        ))
    }
}

fn read(file: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|read| text = read)
    };
    read.map_err(|err| Failure::new(Kind::Invalid, format!("reading {file}: {err}")))?;
    Ok(text)
}

/// The steps that make the server match `wanted`, and how many of the
/// server's flags and segments the file leaves alone (without `prune`).
fn plan(wanted: &Document, state: &State, prune: bool) -> Result<(Vec<Step>, usize), Failure> {
    let have = &state.document;
    let mut steps = Vec::new();
    let mut kept = 0;
    for (name, spec) in &wanted.segments {
        let spec = normalized_segment(name, spec)?;
        match have.segments.iter().find(|(have, _)| have == name) {
            None => steps.push(Step::CreateSegment(name.clone(), spec)),
            Some((_, current)) if *current != spec => {
                let revision = state
                    .segment_revisions
                    .get(name)
                    .copied()
                    .unwrap_or_default();
                let changes = output::field_changes(
                    &to_json(current),
                    &to_json(&spec),
                    &[],
                    Value::to_string,
                );
                steps.push(Step::UpdateSegment(name.clone(), spec, revision, changes));
            }
            Some(_) => {}
        }
    }
    let mut type_errors = Vec::new();
    for (name, spec) in &wanted.flags {
        let spec = normalized_flag(name, spec)?;
        match have.flags.iter().find(|(have, _)| have == name) {
            None => steps.push(Step::CreateFlag(name.clone(), spec)),
            Some((_, current)) if current.flag_type != spec.flag_type => type_errors.push(format!(
                "flag {name}: type {:?} on the server, {:?} in the file: a flag's type is fixed (delete it first)",
                current.flag_type, spec.flag_type
            )),
            Some((_, current)) if *current != spec => {
                let revision = state.flag_revisions.get(name).copied().unwrap_or_default();
                let changes = output::field_changes(&to_json(current), &to_json(&spec), &[], Value::to_string);
                steps.push(Step::UpdateFlag(name.clone(), spec, revision, changes));
            }
            Some(_) => {}
        }
    }
    if !type_errors.is_empty() {
        return Err(Failure::new(
            Kind::Invalid,
            format!("nothing applied:\n  {}", type_errors.join("\n  ")),
        ));
    }
    for (name, _) in &have.flags {
        if !wanted.flags.iter().any(|(wanted, _)| wanted == name) {
            if prune {
                let revision = state.flag_revisions.get(name).copied().unwrap_or_default();
                steps.push(Step::DeleteFlag(name.clone(), revision));
            } else {
                kept += 1;
            }
        }
    }
    for (name, _) in &have.segments {
        if !wanted.segments.iter().any(|(wanted, _)| wanted == name) {
            if prune {
                let revision = state
                    .segment_revisions
                    .get(name)
                    .copied()
                    .unwrap_or_default();
                steps.push(Step::DeleteSegment(name.clone(), revision));
            } else {
                kept += 1;
            }
        }
    }
    Ok((steps, kept))
}

async fn apply(client: &mut Flags, step: &Step, reason: &str) -> Result<(), Failure> {
    let reason = reason.to_owned();
    match step {
        Step::CreateSegment(name, spec) => {
            client
                .create_segment(pb::CreateSegmentRequest {
                    segment: Some(segment_pb(name, spec)?),
                    reason,
                })
                .await?;
        }
        Step::UpdateSegment(name, spec, revision, _) => {
            client
                .update_segment(pb::UpdateSegmentRequest {
                    segment: Some(segment_pb(name, spec)?),
                    reason,
                    expected_revision: Some(*revision),
                })
                .await?;
        }
        Step::CreateFlag(name, spec) => {
            client
                .create_flag(pb::CreateFlagRequest {
                    flag: Some(flag_pb(name, spec)?),
                    reason,
                })
                .await?;
        }
        Step::UpdateFlag(name, spec, revision, _) => {
            client
                .update_flag(pb::UpdateFlagRequest {
                    flag: Some(flag_pb(name, spec)?),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["*".into()],
                    }),
                    reason,
                    expected_revision: Some(*revision),
                })
                .await?;
        }
        Step::DeleteFlag(name, revision) => {
            client
                .delete_flag(pb::DeleteFlagRequest {
                    name: name.clone(),
                    reason,
                    expected_revision: Some(*revision),
                })
                .await?;
        }
        Step::DeleteSegment(name, revision) => {
            client
                .delete_segment(pb::DeleteSegmentRequest {
                    name: name.clone(),
                    reason,
                    expected_revision: Some(*revision),
                })
                .await?;
        }
    }
    Ok(())
}

fn to_json(spec: &impl serde::Serialize) -> Value {
    serde_json::to_value(spec).unwrap_or_default()
}

/// "vexil import FILE", with the file's Git commit when it has one.
fn default_reason(files: &[String]) -> String {
    let first = files.first().map_or("-", String::as_str);
    if first == "-" {
        return "vexil import (standard input)".into();
    }
    let file = files.join(" ");
    let directory = std::path::Path::new(first)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(directory)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|commit| !commit.is_empty());
    match commit {
        Some(commit) => format!("vexil import {file} (git {commit})"),
        None => format!("vexil import {file}"),
    }
}
