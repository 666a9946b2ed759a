//! What a flag is, independent of how it travels or is stored. The flag
//! model and its evaluation live in `vexil-engine` (shared with the
//! client); the server adds changes, audit entries and groups.
//! No tonic, no sea_orm, no tokio here.

mod audit;
mod change;
mod group;

pub use audit::{AuditAction, AuditEntry, Change, Snapshot, Subject};
pub use change::{ChangeKind, Committed, FlagChange, SegmentChange};
pub use group::Group;
pub use vexil_engine::{
    Attributes, Catalog, Clause, ClauseValue, EvalContext, Evaluation, Flag, FlagField, FlagName,
    FlagSpec, FlagType, Gathered, Metadata, NoAttributes, NoCatalog, Operator, Prerequisite,
    Reason, Segment, SegmentSpec, Serve, Split, Stamp, Target, TargetingRule, UserSet,
    ValidationError, Value, Variant, WeightedVariant, echo, limits, validate_name, validate_text,
};
