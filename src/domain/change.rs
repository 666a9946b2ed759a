//! One committed change to a flag, as replicas and watchers see it.

use std::sync::Arc;

use super::{Flag, FlagName};

/// The flag's state after the change at `revision`: `Some` for a create or
/// update, `None` for a deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagChange {
    pub revision: u64,
    pub flag_name: FlagName,
    pub flag: Option<Arc<Flag>>,
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
