//! Vexil's evaluation engine: the flag model, the rules and the bucketing,
//! shared by the server and the client so that both give the same answer.
//! Pure: no I/O, no clock (`now` is passed in), no tonic, sea-orm or tokio.
//!
//! Bucketing is a contract across processes, versions and languages: see
//! [`bucket`] and the published vectors in the repository's `docs/`.

/// This engine's version, as flags declare the one they need
/// ([`FlagSpec::min_engine`]): 2 adds types, variants, targets, rules,
/// splits, segments and prerequisites to version 1's boolean flags; 3
/// adds splits bucketed as flagd buckets and paths into the context's
/// objects (`$.user.name`), for flags imported from flagd.
pub const ENGINE: u32 = 3;

mod attributes;
pub mod bucket;
mod compiled;
mod evaluation;
mod flag;
mod matcher;
mod print;
mod rules;
mod segment;
pub mod semver;
mod targeting;
mod validation;
mod value;

pub use attributes::{Attr, AttrList, AttrName, Attributes, Gathered, NoAttributes, json_attr};
pub use compiled::VariantIndex;
pub use evaluation::{Catalog, EvalContext, Evaluation, NoCatalog, Reason};
pub use flag::{Flag, FlagField, FlagName, FlagSpec, Metadata, Stamp, UserSet, boolean_variants};
pub use rules::{
    ClauseCheck, Explanation, Rule, SplitCheck, Step, evaluate, explain, is_static, needs_clock,
};
pub use segment::{Segment, SegmentSpec};
pub use targeting::{
    Bucketing, Clause, ClauseValue, ENVIRONMENT, NOW, Operator, PATH, Prerequisite, SegmentRule,
    Serve, Split, Target, TargetingRule, USER_ID, WeightedVariant,
};
pub use validation::{ValidationError, echo, limits, validate_name, validate_text};
pub use value::{FlagType, OFF, ON, Value, Variant};
