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

impl FlagChange {
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
