//! Groups: named sets of flags.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}
