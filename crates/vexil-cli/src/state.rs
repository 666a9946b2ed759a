//! A server's flags and segments, read whole: what export writes and what
//! import compares a file with.

use std::collections::HashMap;

use vexil_engine::{Clause, FlagName, FlagSpec, Operator, Segment, SegmentSpec, Stamp};
use vexil_proto::convert::{flag_from_pb, flag_to_pb, segment_from_pb, segment_to_pb};
use vexil_proto::vexil::v1 as pb;

use crate::connection::Flags;
use crate::document::Document;
use crate::failure::{Failure, Kind};

/// The server's state: its document, and the revision of each flag and
/// segment (for `expected_revision`).
pub struct State {
    pub document: Document,
    pub flag_revisions: HashMap<String, u64>,
    pub segment_revisions: HashMap<String, u64>,
}

impl State {
    pub async fn fetch(client: &mut Flags) -> Result<Self, Failure> {
        let mut state = Self {
            document: Document::default(),
            flag_revisions: HashMap::new(),
            segment_revisions: HashMap::new(),
        };
        // Each page is converted as it arrives: memory holds the specs,
        // not also every flag's message.
        loop {
            let page = client
                .list_flags(pb::ListFlagsRequest {
                    skip: u32::try_from(state.document.flags.len()).unwrap_or(u32::MAX),
                    limit: 1000,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let done = page.flags.is_empty()
                || (state.document.flags.len() + page.flags.len()) as u64 >= page.total;
            for flag in page.flags {
                state
                    .flag_revisions
                    .insert(flag.name.clone(), flag.revision);
                let (name, spec) = flag_from_pb(flag).map_err(|err| unreadable(&err))?;
                state.document.flags.push((name, spec));
            }
            if done {
                break;
            }
        }
        let segments = client
            .list_segments(pb::ListSegmentsRequest {})
            .await?
            .into_inner()
            .segments;
        for segment in segments {
            state
                .segment_revisions
                .insert(segment.name.clone(), segment.revision);
            let (name, spec) = segment_from_pb(segment).map_err(|err| unreadable(&err))?;
            state.document.segments.push((name, spec));
        }
        state.document.sort();
        Ok(state)
    }
}

/// A flag as the API carries it.
pub fn flag_pb(name: &str, spec: &FlagSpec) -> Result<pb::Flag, Failure> {
    let name = FlagName::parse("name", name.to_owned())
        .map_err(|err| Failure::new(Kind::Invalid, err.to_string()))?;
    Ok(flag_to_pb(&vexil_engine::Flag::new(
        name,
        spec.clone(),
        Stamp {
            revision: 0,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            created_by: String::new(),
            updated_by: String::new(),
        },
    )))
}

/// A segment as the API carries it.
pub fn segment_pb(name: &str, spec: &SegmentSpec) -> Result<pb::Segment, Failure> {
    let name = FlagName::parse("name", name.to_owned())
        .map_err(|err| Failure::new(Kind::Invalid, err.to_string()))?;
    Ok(segment_to_pb(&Segment::new(
        name,
        spec.clone(),
        0,
        chrono::DateTime::UNIX_EPOCH,
    )))
}

/// `spec` as the server would store it (through the API's conversion), so
/// that a file and a server compare equal when the server would change
/// nothing.
pub fn normalized_flag(name: &str, spec: &FlagSpec) -> Result<FlagSpec, Failure> {
    flag_from_pb(flag_pb(name, spec)?)
        .map(|(_, spec)| spec)
        .map_err(|err| Failure::new(Kind::Invalid, format!("{name}: {err}")))
}

pub fn normalized_segment(name: &str, spec: &SegmentSpec) -> Result<SegmentSpec, Failure> {
    segment_from_pb(segment_pb(name, spec)?)
        .map(|(_, spec)| spec)
        .map_err(|err| Failure::new(Kind::Invalid, format!("{name}: {err}")))
}

/// The segments `clauses` name.
pub fn segments_named<'a>(clauses: impl Iterator<Item = &'a Clause>) -> Vec<String> {
    clauses
        .filter(|clause| clause.op == Operator::InSegment)
        .flat_map(|clause| clause.values.iter())
        .filter_map(|value| match value {
            vexil_engine::ClauseValue::String(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn unreadable(err: &dyn std::fmt::Display) -> Failure {
    Failure::new(
        Kind::Other,
        format!("the server's answer cannot be read: {err}"),
    )
}
