//! What a flag is, independent of how it travels or is stored.
//! No tonic, no sea_orm, no tokio here.

mod audit;
mod change;
mod evaluation;
mod flag;
mod group;
mod validation;

pub use audit::{AuditAction, AuditEntry, Change};
pub use change::{ChangeKind, FlagChange};
pub use evaluation::{EvalContext, Evaluation, Reason};
pub use flag::{Flag, FlagField, FlagName, FlagSpec, Metadata, UserSet};
pub use group::Group;
pub use validation::{ValidationError, echo, limits, validate_name, validate_text};
