//! Targeting as operators write it: clauses on context attributes, rules
//! serving a variant or a split, per-variant targets, prerequisites and
//! segments. These are plain definitions (stored, audited, sent on the
//! wire); [`crate::compiled`] turns them into the form the engine runs.

use serde::{Deserialize, Serialize};

use crate::UserSet;

/// How a clause compares an attribute with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal to one of the values (strings, numbers or booleans).
    In,
    StartsWith,
    EndsWith,
    Contains,
    /// Numeric comparisons: numbers, or strings that parse as numbers.
    Lt,
    Lte,
    Gt,
    Gte,
    /// Semantic-version comparisons (SemVer 2.0 precedence).
    SemverEq,
    SemverLt,
    SemverLte,
    SemverGt,
    SemverGte,
    /// Time comparisons: RFC 3339 strings or Unix seconds.
    Before,
    After,
    /// The attribute is present (takes no values).
    Exists,
    /// The user is in one of the named segments (the attribute is ignored).
    InSegment,
    /// Matches one of the regular expressions (linear time, bounded size).
    Matches,
}

impl Operator {
    pub const ALL: [Operator; 18] = [
        Self::In,
        Self::StartsWith,
        Self::EndsWith,
        Self::Contains,
        Self::Lt,
        Self::Lte,
        Self::Gt,
        Self::Gte,
        Self::SemverEq,
        Self::SemverLt,
        Self::SemverLte,
        Self::SemverGt,
        Self::SemverGte,
        Self::Before,
        Self::After,
        Self::Exists,
        Self::InSegment,
        Self::Matches,
    ];

    /// The operator as the API spells it, without the `OPERATOR_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::In => "IN",
            Self::StartsWith => "STARTS_WITH",
            Self::EndsWith => "ENDS_WITH",
            Self::Contains => "CONTAINS",
            Self::Lt => "LT",
            Self::Lte => "LTE",
            Self::Gt => "GT",
            Self::Gte => "GTE",
            Self::SemverEq => "SEMVER_EQ",
            Self::SemverLt => "SEMVER_LT",
            Self::SemverLte => "SEMVER_LTE",
            Self::SemverGt => "SEMVER_GT",
            Self::SemverGte => "SEMVER_GTE",
            Self::Before => "BEFORE",
            Self::After => "AFTER",
            Self::Exists => "EXISTS",
            Self::InSegment => "IN_SEGMENT",
            Self::Matches => "MATCHES",
        }
    }
}

/// One value a clause compares with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClauseValue {
    Bool(bool),
    Number(f64),
    String(String),
}

/// The attribute names that address the request itself rather than its
/// context: the user id (the targeting key), the environment, and the
/// evaluation time.
pub const USER_ID: &str = "$user_id";
pub const ENVIRONMENT: &str = "$environment";
pub const NOW: &str = "$now";
/// The prefix of a path into the context's objects: `$.user.name` reads
/// member `name` of the object `user` (flagd's `var` paths).
pub const PATH: &str = "$.";

/// A condition on one attribute: true when any value matches, then
/// negated if `negate`. A missing attribute matches nothing, negated or
/// not, except for `exists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clause {
    /// A context attribute's name, `$user_id`, `$environment`, `$now`, or
    /// a path into the context's objects, `$.user.name`.
    #[serde(default)]
    pub attribute: String,
    pub op: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ClauseValue>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
    /// ASCII case folding for string comparisons and regular expressions.
    #[serde(default, skip_serializing_if = "is_false")]
    pub case_insensitive: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A variant's share of a split, in basis points (0.01%).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedVariant {
    pub variant: String,
    pub weight: u32,
}

/// Users spread over variants by bucket: `(murmur3_x86_32(salt + ":" +
/// key) × 10,000) >> 32`, walked cumulatively in the listed order, so
/// raising the first variant's weight only adds users to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Weights in basis points, summing to 10,000 (with flagd's
    /// bucketing: relative weights, any sum from 1 to 2^31 - 1).
    pub weights: Vec<WeightedVariant>,
    /// The attribute whose value is the bucketing key; empty: the user id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bucket_by: String,
    /// Mixed into the hash; unset: the flag's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(default, skip_serializing_if = "Bucketing::is_vexil")]
    pub bucketing: Bucketing,
}

/// How a split turns a key into a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucketing {
    /// `(murmur3(salt + ":" + key) × 10,000) >> 32`: weights in basis points.
    #[default]
    Vexil,
    /// flagd's `fractional`: `(murmur3(salt + key) × total) >> 32` over
    /// relative weights, so flags imported from flagd keep their users.
    Flagd,
}

impl Bucketing {
    pub fn is_vexil(&self) -> bool {
        *self == Self::Vexil
    }
}

/// What a rule or the fallthrough serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Serve {
    Variant(String),
    Split(Split),
}

/// Clauses joined by AND, and what to serve when all hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetingRule {
    /// Optional stable identifier, echoed in answers and explanations.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub clauses: Vec<Clause>,
    pub serve: Serve,
}

/// Users who get one variant whatever the rules say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub variant: String,
    pub user_ids: UserSet,
}

/// Another flag that must serve one of `variants` (empty: must be on)
/// for this flag to be evaluated further.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prerequisite {
    pub flag: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
}

/// A segment's rule: clauses joined by AND (a segment matches when any of
/// its rules does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub clauses: Vec<Clause>,
}

/// The segments `clauses` name (`in_segment` values).
pub(crate) fn segments_named<'a>(
    clauses: impl Iterator<Item = &'a Clause>,
) -> impl Iterator<Item = &'a str> {
    clauses
        .filter(|clause| clause.op == Operator::InSegment)
        .flat_map(|clause| &clause.values)
        .filter_map(|value| match value {
            ClauseValue::String(name) => Some(name.as_str()),
            _ => None,
        })
}
