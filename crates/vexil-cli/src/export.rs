//! `vexil export`: the server's flags and segments as one document.

use std::collections::BTreeSet;

use crate::connection::Connection;
use crate::document::Syntax;
use crate::failure::{Failure, Kind};
use crate::state::{State, segments_named};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Only flags with this tag (and the segments they use).
    #[arg(long)]
    pub tag: Option<String>,
    /// Only flags in this group (and the segments they use).
    #[arg(long)]
    pub group: Option<String>,
    /// Only these flags (repeatable; and the segments they use).
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// JSON (the default) or YAML; `vexil import` reads either.
    #[arg(long, short, value_enum, default_value_t = Syntax::Json)]
    pub output: Syntax,
    #[command(flatten)]
    pub connection: Connection,
}

pub async fn export(args: ExportArgs) -> Result<(), Failure> {
    let mut client = args.connection.flags().await?;
    let mut document = State::fetch(&mut client).await?.document;
    let filtered = args.tag.is_some() || args.group.is_some() || !args.names.is_empty();
    if filtered {
        document.flags.retain(|(name, spec)| {
            args.tag.as_ref().is_none_or(|tag| spec.tags.contains(tag))
                && args
                    .group
                    .as_ref()
                    .is_none_or(|group| spec.group.as_ref() == Some(group))
                && (args.names.is_empty() || args.names.contains(name))
        });
        // The segments the flags use, and those these use in turn.
        let mut wanted: BTreeSet<String> = document
            .flags
            .iter()
            .flat_map(|(_, spec)| segments_named(spec.rules.iter().flat_map(|rule| &rule.clauses)))
            .collect();
        loop {
            let more: Vec<String> = document
                .segments
                .iter()
                .filter(|(name, _)| wanted.contains(name))
                .flat_map(|(_, spec)| {
                    segments_named(spec.rules.iter().flat_map(|rule| &rule.clauses))
                })
                .filter(|name| !wanted.contains(name))
                .collect();
            if more.is_empty() {
                break;
            }
            wanted.extend(more);
        }
        document.segments.retain(|(name, _)| wanted.contains(name));
    }
    // Streamed: memory holds the flags, not also the document's text.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    document
        .write(args.output, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|err| Failure::new(Kind::Other, format!("writing the document: {err}")))
}
