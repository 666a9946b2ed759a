//! The record of who changed what, when and why.

use chrono::{DateTime, Utc};

use super::{Flag, Segment};

/// Who makes a change and why; recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Create,
    Update,
    Delete,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "CREATE" => Some(Self::Create),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// What an audit entry records a change of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Flag,
    Segment,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Segment => "segment",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "flag" => Some(Self::Flag),
            "segment" => Some(Self::Segment),
            _ => None,
        }
    }
}

/// A flag or a segment as it was before or after a change (boxed: a
/// compiled flag is large).
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot {
    Flag(Box<Flag>),
    Segment(Box<Segment>),
}

impl Snapshot {
    pub fn wire_size(&self) -> usize {
        match self {
            Self::Flag(flag) => flag.wire_size(),
            Self::Segment(segment) => segment.wire_size(),
        }
    }
}

/// One change to a flag or a segment, with full snapshots before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: u64,
    pub subject: Subject,
    /// The flag's or the segment's name.
    pub name: String,
    pub action: AuditAction,
    pub actor: String,
    pub reason: String,
    pub before: Option<Snapshot>,
    pub after: Option<Snapshot>,
    pub revision: u64,
    pub created_at: DateTime<Utc>,
}

impl AuditEntry {
    /// An upper bound of the entry's protobuf size (see
    /// [`super::FlagSpec::wire_size`]).
    pub fn wire_size(&self) -> usize {
        /// Id, action, revision, timestamp and the fields' tags and lengths.
        const BOOKKEEPING: usize = 128;
        BOOKKEEPING
            + self.name.len()
            + self.actor.len()
            + self.reason.len()
            + self.before.as_ref().map_or(0, Snapshot::wire_size)
            + self.after.as_ref().map_or(0, Snapshot::wire_size)
    }
}
