//! The question asked of a flag and the answer with its reason.

use std::sync::Arc;

use crate::attributes::{Attributes, NoAttributes};
use crate::compiled::VariantIndex;
use crate::{Flag, Segment};

/// Who is asking, and where: the user id (the targeting key), the
/// environment, the context's attributes, and where to find the flags and
/// segments that prerequisites and `in_segment` clauses name. Borrowed from
/// the request: evaluation allocates nothing.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    pub user_id: &'a str,
    pub environment: &'a str,
    pub attributes: &'a dyn Attributes,
    pub catalog: &'a dyn Catalog,
}

impl std::fmt::Debug for EvalContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalContext")
            .field("user_id", &self.user_id)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl<'a> EvalContext<'a> {
    /// A context with no attributes and no other flags or segments: only
    /// for flags that use neither prerequisites nor segments.
    pub fn bare(user_id: &'a str, environment: &'a str) -> Self {
        Self {
            user_id,
            environment,
            attributes: &NoAttributes,
            catalog: &NoCatalog,
        }
    }
}

/// The flags and segments an evaluation may consult besides the one asked.
pub trait Catalog {
    fn flag(&self, name: &str) -> Option<Arc<Flag>>;
    fn segment(&self, name: &str) -> Option<Arc<Segment>>;
}

/// A catalog holding nothing: prerequisites fail and no one is in a segment.
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn flag(&self, _: &str) -> Option<Arc<Flag>> {
        None
    }
    fn segment(&self, _: &str) -> Option<Arc<Segment>> {
        None
    }
}

/// Why an evaluation came out the way it did, in rule order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    FlagNotFound,
    Disabled,
    NotStarted,
    Expired,
    EnvironmentNotAllowed,
    Blacklisted,
    Whitelisted,
    EnvironmentOverride,
    PercentageRollout,
    OutsideRollout,
    /// A prerequisite flag did not serve what this flag requires.
    PrerequisiteFailed,
    /// The user is in one of the flag's targets.
    TargetMatch,
    /// A rule matched (`Evaluation::rule` says which).
    RuleMatch,
    /// The fallthrough's split placed the user.
    Split,
    /// The fallthrough served its variant (or, with no bucketing key for
    /// its split, the off variant).
    Default,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Self::FlagNotFound,
        Self::Disabled,
        Self::NotStarted,
        Self::Expired,
        Self::EnvironmentNotAllowed,
        Self::Blacklisted,
        Self::Whitelisted,
        Self::EnvironmentOverride,
        Self::PercentageRollout,
        Self::OutsideRollout,
        Self::PrerequisiteFailed,
        Self::TargetMatch,
        Self::RuleMatch,
        Self::Split,
        Self::Default,
    ];

    /// The reason as the API spells it, without the `REASON_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::Disabled => "DISABLED",
            Self::NotStarted => "NOT_STARTED",
            Self::Expired => "EXPIRED",
            Self::EnvironmentNotAllowed => "ENVIRONMENT_NOT_ALLOWED",
            Self::Blacklisted => "BLACKLISTED",
            Self::Whitelisted => "WHITELISTED",
            Self::EnvironmentOverride => "ENVIRONMENT_OVERRIDE",
            Self::PercentageRollout => "PERCENTAGE_ROLLOUT",
            Self::OutsideRollout => "OUTSIDE_ROLLOUT",
            Self::PrerequisiteFailed => "PREREQUISITE_FAILED",
            Self::TargetMatch => "TARGET_MATCH",
            Self::RuleMatch => "RULE_MATCH",
            Self::Split => "SPLIT",
            Self::Default => "DEFAULT",
        }
    }

    /// Whether the flag served from its off path (missing, killed, outside
    /// its window or environments, a failed prerequisite).
    pub fn is_off_path(self) -> bool {
        matches!(
            self,
            Self::FlagNotFound
                | Self::Disabled
                | Self::NotStarted
                | Self::Expired
                | Self::EnvironmentNotAllowed
                | Self::PrerequisiteFailed
        )
    }
}

/// The answer for one flag: whether it is on (a boolean flag's value; for
/// typed flags, whether it served from its targeting rather than its off
/// path), the variant served (`None`: no value, the caller's default), the
/// reason, and which rule or prerequisite decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub enabled: bool,
    pub reason: Reason,
    pub variant: Option<VariantIndex>,
    /// The matching rule's index, for `RuleMatch`.
    pub rule: Option<u16>,
    /// The failed prerequisite's index, for `PrerequisiteFailed`.
    pub prerequisite: Option<u16>,
}

impl Evaluation {
    /// A boolean answer with no rule: `on` or `off` by `enabled`.
    pub const fn boolean(enabled: bool, reason: Reason) -> Self {
        Self {
            enabled,
            reason,
            variant: Some(if enabled {
                crate::compiled::ON_INDEX
            } else {
                crate::compiled::OFF_INDEX
            }),
            rule: None,
            prerequisite: None,
        }
    }

    pub const fn off(reason: Reason) -> Self {
        Self::boolean(false, reason)
    }

    pub const fn on(reason: Reason) -> Self {
        Self::boolean(true, reason)
    }

    /// No flag: no value.
    pub const fn not_found() -> Self {
        Self {
            enabled: false,
            reason: Reason::FlagNotFound,
            variant: None,
            rule: None,
            prerequisite: None,
        }
    }
}
