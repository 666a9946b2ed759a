//! Flag commands: list, get, delete, kill, unkill, rollout and audit
//! (create and update: [`crate::edit`]).

use prost_types::FieldMask;
use serde_json::{Map, Value, json};
use vexil_proto::convert::{stored_flag_from_pb, timestamp_from_pb};
use vexil_proto::vexil::v1 as pb;

use crate::connection::Connection;
use crate::failure::{Failure, Kind};
use crate::output::{self, Output};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum FlagsCommand {
    /// Every flag (optionally only those with a tag, in a group, or allowed
    /// in an environment), ordered by name.
    List(ListArgs),
    /// One flag, every field.
    Get(NameArgs),
    /// Create a flag from options and/or a file of its fields, with a
    /// reason.
    Create(crate::edit::EditArgs),
    /// Change the fields the options and/or file name (the others stay),
    /// with a reason.
    Update(crate::edit::EditArgs),
    /// Delete a flag, with a reason.
    Delete(KillArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    pub name: String,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// What every audited change takes: why, the revision it expects, the
/// server, and how to print the answer.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    /// Why; recorded in the audit trail.
    #[arg(long)]
    pub reason: String,
    /// Change only if it is still at this revision (exit 4 otherwise).
    #[arg(long)]
    pub expected_revision: Option<u64>,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// A change to one flag (or segment), audited with its reason.
#[derive(Debug, Clone, clap::Args)]
pub struct KillArgs {
    pub name: String,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    pub name: String,
    /// Percentage of users the flag is on for, 0 to 100.
    pub percentage: f64,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    pub name: String,
    /// The revision of one of the flag's changes (`vexil audit NAME`): the
    /// flag is put back as it was after it.
    #[arg(long)]
    pub revision: u64,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    pub name: String,
    /// The newest entries to show.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[command(flatten)]
    pub connection: Connection,
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

pub async fn flags(command: FlagsCommand) -> Result<(), Failure> {
    match command {
        FlagsCommand::List(args) => list(args).await,
        FlagsCommand::Get(args) => get(args).await,
        FlagsCommand::Create(args) => crate::edit::create(args).await,
        FlagsCommand::Update(args) => crate::edit::update(args).await,
        FlagsCommand::Delete(args) => delete(args).await,
    }
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let mut client = args.connection.flags().await?;
    let mut flags = Vec::new();
    loop {
        let page = client
            .list_flags(pb::ListFlagsRequest {
                environment: args.environment.clone(),
                tag: args.tag.clone(),
                group: args.group.clone(),
                skip: u32::try_from(flags.len()).unwrap_or(u32::MAX),
                limit: 1000,
                ..Default::default()
            })
            .await?
            .into_inner();
        let done = page.flags.is_empty() || flags.len() + page.flags.len() >= page.total as usize;
        flags.extend(page.flags);
        if done {
            break;
        }
    }
    flags.sort_by(|a, b| a.name.cmp(&b.name));
    match args.output {
        format @ (Output::Json | Output::Yaml) => output::data(
            format,
            &Value::Array(flags.into_iter().map(flag_json).collect::<Result<_, _>>()?),
        ),
        Output::Table => output::table(
            &[
                "NAME",
                "TYPE",
                "ENABLED",
                "ROLLOUT",
                "ENVIRONMENTS",
                "REVISION",
            ],
            &flags.iter().map(summary).collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

async fn get(args: NameArgs) -> Result<(), Failure> {
    let flag = args
        .connection
        .flags()
        .await?
        .get_flag(pb::GetFlagRequest {
            name: args.name.clone(),
        })
        .await?
        .into_inner();
    print_flag(flag, args.output)
}

async fn delete(args: KillArgs) -> Result<(), Failure> {
    let deleted = args
        .change
        .connection
        .flags()
        .await?
        .delete_flag(pb::DeleteFlagRequest {
            name: args.name.clone(),
            reason: args.change.reason.clone(),
            expected_revision: args.change.expected_revision,
        })
        .await?
        .into_inner();
    match args.change.output {
        format @ (Output::Json | Output::Yaml) => output::data(
            format,
            &json!({"name": args.name, "revision": deleted.revision}),
        ),
        Output::Table => println!("deleted {} at revision {}", args.name, deleted.revision),
    }
    Ok(())
}

/// `kill` (`enabled` false) and `unkill` (true).
pub async fn switch(args: KillArgs, enabled: bool) -> Result<(), Failure> {
    let flag = pb::Flag {
        name: args.name.clone(),
        enabled,
        ..Default::default()
    };
    update(&args.change, flag, "enabled").await
}

pub async fn rollout(args: RolloutArgs) -> Result<(), Failure> {
    if !(0.0..=100.0).contains(&args.percentage) {
        return Err(Failure::new(
            Kind::Invalid,
            format!(
                "percentage must be between 0 and 100, not {}",
                args.percentage
            ),
        ));
    }
    let flag = pb::Flag {
        name: args.name.clone(),
        percentage: args.percentage,
        ..Default::default()
    };
    update(&args.change, flag, "percentage").await
}

/// Sets one field of a flag.
async fn update(change: &ChangeArgs, flag: pb::Flag, field: &str) -> Result<(), Failure> {
    let updated = change
        .connection
        .flags()
        .await?
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(flag),
            update_mask: Some(FieldMask {
                paths: vec![field.into()],
            }),
            reason: change.reason.clone(),
            expected_revision: change.expected_revision,
        })
        .await?
        .into_inner();
    print_flag(updated, change.output)
}

pub async fn restore(args: RestoreArgs) -> Result<(), Failure> {
    let restored = args
        .change
        .connection
        .flags()
        .await?
        .restore_flag(pb::RestoreFlagRequest {
            name: args.name,
            revision: args.revision,
            reason: args.change.reason,
            expected_revision: args.change.expected_revision,
        })
        .await?
        .into_inner();
    print_flag(restored, args.change.output)
}

pub async fn audit(args: AuditArgs) -> Result<(), Failure> {
    let trail = args
        .connection
        .flags()
        .await?
        .get_audit_trail(pb::GetAuditTrailRequest {
            flag_name: args.name.clone(),
            limit: args.limit.clamp(1, 1000),
            ..Default::default()
        })
        .await?
        .into_inner();
    if trail.total == 0 {
        return Err(Failure::new(
            Kind::NotFound,
            format!("no audit entries for a flag named {:?}", args.name),
        ));
    }
    let mut entries = Vec::with_capacity(trail.entries.len());
    for entry in trail.entries {
        let at = entry
            .created_at
            .map(|at| timestamp_from_pb("created_at", at))
            .transpose()
            .map_err(|err| unreadable(&err))?
            .map(|at| at.to_rfc3339())
            .unwrap_or_default();
        let action = pb::AuditAction::try_from(entry.action)
            .map(|action| {
                action
                    .as_str_name()
                    .trim_start_matches("AUDIT_ACTION_")
                    .to_owned()
            })
            .unwrap_or_default();
        let before = entry.before.map(flag_json).transpose()?;
        let after = entry.after.map(flag_json).transpose()?;
        entries.push((
            entry.revision,
            at,
            action,
            entry.actor,
            entry.reason,
            before,
            after,
        ));
    }
    match args.output {
        format @ (Output::Json | Output::Yaml) => output::data(
            format,
            &Value::Array(
                entries
                    .into_iter()
                    .map(|(revision, at, action, actor, reason, before, after)| {
                        json!({"revision": revision, "at": at, "action": action, "actor": actor,
                           "reason": reason, "before": before, "after": after})
                    })
                    .collect(),
            ),
        ),
        Output::Table => output::table(
            &["REVISION", "AT", "ACTION", "ACTOR", "REASON", "CHANGES"],
            &entries
                .iter()
                .map(|(revision, at, action, actor, reason, before, after)| {
                    vec![
                        revision.to_string(),
                        at.clone(),
                        action.clone(),
                        actor.clone(),
                        reason.clone(),
                        changes(before.as_ref(), after.as_ref()),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

pub(crate) fn print_flag(flag: pb::Flag, output: Output) -> Result<(), Failure> {
    let value = flag_json(flag)?;
    match output {
        format @ (Output::Json | Output::Yaml) => output::data(format, &value),
        Output::Table => {
            let rows: Vec<Vec<String>> = value
                .as_object()
                .into_iter()
                .flatten()
                .map(|(field, value)| vec![field.clone(), cell(value)])
                .collect();
            output::table(&["FIELD", "VALUE"], &rows);
        }
    }
    Ok(())
}

/// A flag as JSON: its name, every field of the model (as the engine
/// spells them), and its bookkeeping.
fn flag_json(flag: pb::Flag) -> Result<Value, Failure> {
    let flag = stored_flag_from_pb(flag).map_err(|err| unreadable(&err))?;
    let mut object = Map::new();
    object.insert("name".into(), json!(flag.name.as_str()));
    if let Ok(Value::Object(spec)) = serde_json::to_value(flag.spec()) {
        object.extend(spec);
    }
    object.insert("revision".into(), json!(flag.revision));
    object.insert("created_at".into(), json!(flag.created_at.to_rfc3339()));
    object.insert("created_by".into(), json!(flag.created_by));
    object.insert("updated_at".into(), json!(flag.updated_at.to_rfc3339()));
    object.insert("updated_by".into(), json!(flag.updated_by));
    Ok(Value::Object(object))
}

fn summary(flag: &pb::Flag) -> Vec<String> {
    let flag_type = pb::FlagType::try_from(flag.r#type)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("FLAG_TYPE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let flag_type = if flag_type.is_empty() || flag_type == "unspecified" {
        "boolean".to_owned()
    } else {
        flag_type
    };
    vec![
        flag.name.clone(),
        flag_type,
        flag.enabled.to_string(),
        format!("{}%", flag.percentage),
        if flag.environments.is_empty() {
            "*".into()
        } else {
            flag.environments.join(",")
        },
        flag.revision.to_string(),
    ]
}

/// The fields an audit entry changed, as `field: before → after`.
fn changes(before: Option<&Value>, after: Option<&Value>) -> String {
    match (before, after) {
        (None, Some(_)) => return "created".into(),
        (Some(_), None) => return "deleted".into(),
        _ => {}
    }
    const BOOKKEEPING: [&str; 6] = [
        "name",
        "revision",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    ];
    output::field_changes(
        before.unwrap_or(&Value::Null),
        after.unwrap_or(&Value::Null),
        &BOOKKEEPING,
        cell,
    )
    .join("; ")
}

/// A value in one table cell: strings bare, the rest as compact JSON cut
/// to 60 characters.
pub(crate) fn cell(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

fn unreadable(err: &dyn std::fmt::Display) -> Failure {
    Failure::new(
        Kind::Other,
        format!("the server's answer cannot be read: {err}"),
    )
}
