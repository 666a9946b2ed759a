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
