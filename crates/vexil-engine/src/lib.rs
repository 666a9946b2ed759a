//! Vexil's evaluation engine: the flag model, the rules and the bucketing,
//! shared by the server and the client so that both give the same answer.
//! Pure: no I/O, no clock (`now` is passed in), no tonic, sea-orm or tokio.
//!
//! Bucketing is a contract across processes, versions and languages: see
//! [`bucket`] and the published vectors in the repository's `docs/`.

pub mod bucket;
mod evaluation;
mod flag;
mod rules;
mod validation;

pub use evaluation::{EvalContext, Evaluation, Reason};
pub use flag::{Flag, FlagField, FlagName, FlagSpec, Metadata, UserSet};
pub use rules::{Explanation, Rule, Step, evaluate, explain, is_static, needs_clock};
pub use validation::{ValidationError, echo, limits, validate_name, validate_text};
