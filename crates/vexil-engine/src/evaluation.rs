//! The question asked of a flag and the answer with its reason.

/// Who is asking, and where. Borrowed from the request: evaluation allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    pub user_id: &'a str,
    pub environment: &'a str,
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
}

impl Reason {
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
        }
    }
}

/// The answer for one flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub enabled: bool,
    pub reason: Reason,
}

impl Evaluation {
    pub const fn off(reason: Reason) -> Self {
        Self {
            enabled: false,
            reason,
        }
    }

    pub const fn on(reason: Reason) -> Self {
        Self {
            enabled: true,
            reason,
        }
    }
}
