//! One committed change to a flag or a segment, as replicas and watchers
//! see it. Flags and segments share one gapless revision sequence, so the
//! change log (and every Watch stream) carries both.

use std::sync::Arc;

use super::{Flag, FlagName, Segment};

/// The flag's state after the change at `revision`: `Some` for a create or
/// update, `None` for a deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagChange {
    pub revision: u64,
    pub flag_name: FlagName,
    pub flag: Option<Arc<Flag>>,
}

/// The segment's state after the change at `revision` (`None`: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentChange {
    pub revision: u64,
    pub name: FlagName,
    pub segment: Option<Arc<Segment>>,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    Flag(FlagChange),
    Segment(SegmentChange),
}

/// What a change did to its flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl FlagChange {
    pub fn kind(&self) -> ChangeKind {
        match &self.flag {
            None => ChangeKind::Deleted,
            // A create stamps both times with one instant; updates move `updated_at`.
            Some(flag) if flag.created_at == flag.updated_at => ChangeKind::Created,
            Some(_) => ChangeKind::Updated,
        }
    }

    pub fn upserted(flag: Arc<Flag>) -> Self {
        Self {
            revision: flag.revision,
            flag_name: flag.name.clone(),
            flag: Some(flag),
        }
    }

    pub fn deleted(flag_name: FlagName, revision: u64) -> Self {
        Self {
            revision,
            flag_name,
            flag: None,
        }
    }
}

impl Committed {
    pub fn revision(&self) -> u64 {
        match self {
            Self::Flag(change) => change.revision,
            Self::Segment(change) => change.revision,
        }
    }

    /// The flag change, if this is one.
    pub fn as_flag(&self) -> Option<&FlagChange> {
        match self {
            Self::Flag(change) => Some(change),
            Self::Segment(_) => None,
        }
    }

    /// An upper bound of the state's protobuf size (0 for a deletion).
    pub fn wire_size(&self) -> usize {
        match self {
            Self::Flag(change) => change.flag.as_ref().map_or(0, |flag| flag.wire_size()),
            Self::Segment(change) => change
                .segment
                .as_ref()
                .map_or(0, |segment| segment.wire_size()),
        }
    }
}

impl From<FlagChange> for Committed {
    fn from(change: FlagChange) -> Self {
        Self::Flag(change)
    }
}

impl From<SegmentChange> for Committed {
    fn from(change: SegmentChange) -> Self {
        Self::Segment(change)
    }
}
