//! OpenFeature's view of Vexil's evaluations, shared by the flagd (gRPC) and
//! OFREP (HTTP) edges: the user and environment an evaluation context names,
//! and the engine's answer with an OpenFeature reason. Every answer comes
//! from the hot cache and the engine, exactly as Evaluate gives it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::evaluate::{Evaluator, FlagResult};
use crate::domain::{
    Attributes, EvalContext, FlagType, Metadata, NoCatalog, Reason, Value, Variant, limits,
    validate_name,
};
use crate::engine;

/// The context attribute holding the user id (OpenFeature's).
pub const TARGETING_KEY: &str = "targetingKey";
/// The context attribute naming the Vexil environment.
pub const ENVIRONMENT_ATTRIBUTE: &str = "environment";

/// How deeply an evaluation context's objects and lists may nest (the
/// context itself is level 1), over flagd's gRPC and OFREP alike: about what
/// the protobuf decoder's recursion limit lets through as a `Struct`.
pub const MAX_CONTEXT_DEPTH: usize = 32;

/// Who and where, from an OpenFeature evaluation context, and the context
/// itself for targeting rules.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// `None` when the context has no targeting key, or an empty one.
    pub targeting_key: Option<&'a str>,
    /// Empty means no environment, as in Evaluate.
    pub environment: &'a str,
    /// How deeply the context's objects and lists nest (1 for a flat one).
    pub depth: usize,
    /// The context's attributes, read in place by targeting rules.
    pub attributes: &'a dyn Attributes,
}

/// The refusal of a context nested deeper than [`MAX_CONTEXT_DEPTH`].
pub fn too_deep() -> String {
    format!(
        "context nests deeper than {MAX_CONTEXT_DEPTH} levels of objects and lists, \
         the limit for flagd's API and OFREP alike"
    )
}

/// OpenFeature's resolution reasons that Vexil gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFeatureReason {
    /// The answer is the same for every user, environment and later moment
    /// until the flag changes; providers cache it per flag key.
    Static,
    /// A user, environment, time, rule or rollout decided.
    TargetingMatch,
    /// The fallthrough's split placed the user.
    Split,
    /// The fallthrough decided (or served no value).
    Default,
}

impl OpenFeatureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Default => "DEFAULT",
        }
    }
}

/// One flag's answer: Vexil's own, with OpenFeature's reason.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub result: FlagResult,
    pub reason: OpenFeatureReason,
    /// The answer depended on the user id and the context gave none: it is
    /// the anonymous user's (empty user id) answer.
    pub needed_user: bool,
}

/// A resolution's value as the caller asked for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Typed<'a> {
    Bool(bool),
    String(&'a str),
    Int(i64),
    Float(f64),
    Object(&'a Metadata),
}

impl Resolution {
    pub fn vexil_reason(&self) -> Reason {
        self.result.evaluation.reason
    }

    pub fn revision(&self) -> u64 {
        self.result.revision
    }

    /// The variant served; `None`: no value (the caller's default).
    pub fn variant(&self) -> Option<&Variant> {
        self.result.variant()
    }

    /// The value served, as stored.
    pub fn value(&self) -> Option<Typed<'_>> {
        self.variant().map(|variant| match &variant.value {
            Value::Bool(b) => Typed::Bool(*b),
            Value::String(s) => Typed::String(s),
            Value::Int(n) => Typed::Int(*n),
            Value::Float(n) => Typed::Float(*n),
            Value::Object(object) => Typed::Object(object),
        })
    }

    /// The value as `asked` (OpenFeature's numeric rules: an int resolves
    /// as a float; a float that is integral and within ±2^53 as an int).
    /// `Ok(None)`: the flag serves no value here.
    pub fn value_as(&self, asked: FlagType) -> Result<Option<Typed<'_>>, ResolveError> {
        /// Integers a double holds exactly.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        let flag_type = self.result.flag_type();
        let value = self.value();
        let converted = match (asked, value) {
            (_, None) if asked == flag_type => return Ok(None),
            (FlagType::Float, None) if flag_type == FlagType::Int => return Ok(None),
            (FlagType::Int, Some(Typed::Float(n))) if n.fract() == 0.0 && n.abs() <= EXACT => {
                Some(Typed::Int(n as i64))
            }
            (FlagType::Float, Some(Typed::Int(n))) => Some(Typed::Float(n as f64)),
            (asked, Some(value)) if asked == flag_type => Some(value),
            _ => None,
        };
        converted
            .map(Some)
            .ok_or(ResolveError::TypeMismatch { flag_type, asked })
    }
}

/// Why a flag could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    FlagNotFound,
    /// The context is unusable; the message names the attribute
    /// (`context.targetingKey …`).
    InvalidContext(String),
    /// The flag's values are not of the type asked for.
    TypeMismatch {
        flag_type: FlagType,
        asked: FlagType,
    },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FlagNotFound => f.write_str("flag not found"),
            Self::InvalidContext(why) => f.write_str(why),
            Self::TypeMismatch { flag_type, asked } => write!(
                f,
                "the flag is of type {}, not {}",
                flag_type.name(),
                asked.name()
            ),
        }
    }
}

/// Resolves through the [`Evaluator`]: the same cache, engine and
/// counting as Evaluate.
#[derive(Clone)]
pub struct Resolver {
    evaluator: Evaluator,
    /// The latest answer of [`Self::flags_using_segments`] and the
    /// revision it was asked for: every event stream hears of the same
    /// segment change, and one scan of the flags serves them all.
    segment_users: Arc<Mutex<(u64, Arc<[String]>)>>,
}

impl Resolver {
    pub fn new(evaluator: Evaluator) -> Self {
        Self {
            evaluator,
            segment_users: Arc::new(Mutex::new((0, Arc::from([])))),
        }
    }

    /// Resolves one flag. A key that is not a valid flag name names no flag.
    pub fn resolve(
        &self,
        flag_key: &str,
        ctx: &Context<'_>,
        now: DateTime<Utc>,
    ) -> Result<Resolution, ResolveError> {
        check(ctx)?;
        if validate_name("flag_key", flag_key).is_err() {
            return Err(ResolveError::FlagNotFound);
        }
        let result = self
            .evaluator
            .evaluate(flag_key, &eval_context(ctx), now)
            .map_err(|err| ResolveError::InvalidContext(err.to_string()))?;
        resolution(result, ctx, now).ok_or(ResolveError::FlagNotFound)
    }

    /// The flags the segment change at `revision` may affect (see
    /// [`Evaluator::flags_using_segments`]), found once for every stream.
    pub fn flags_using_segments(&self, revision: u64) -> Arc<[String]> {
        let mut latest = self
            .segment_users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if latest.0 != revision {
            *latest = (revision, self.evaluator.flags_using_segments().into());
        }
        latest.1.clone()
    }

    /// Resolves every flag, in name order.
    pub fn resolve_all(
        &self,
        ctx: &Context<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Resolution)>, ResolveError> {
        check(ctx)?;
        let results = self
            .evaluator
            .bulk_evaluate(Vec::new(), &eval_context(ctx), now)
            .map_err(|err| ResolveError::InvalidContext(err.to_string()))?;
        Ok(results
            .into_iter()
            .filter_map(|(name, result)| Some((name, resolution(result, ctx, now)?)))
            .collect())
    }
}

fn eval_context<'a>(ctx: &Context<'a>) -> EvalContext<'a> {
    EvalContext {
        user_id: ctx.targeting_key.unwrap_or_default(),
        environment: ctx.environment,
        attributes: ctx.attributes,
        catalog: &NoCatalog,
    }
}

fn check(ctx: &Context<'_>) -> Result<(), ResolveError> {
    let too_long = |attribute: &str| {
        ResolveError::InvalidContext(format!(
            "context.{attribute} must be at most {} bytes",
            limits::ID_BYTES
        ))
    };
    if ctx
        .targeting_key
        .is_some_and(|key| key.len() > limits::ID_BYTES)
    {
        return Err(too_long(TARGETING_KEY));
    }
    if ctx.environment.len() > limits::ID_BYTES {
        return Err(too_long(ENVIRONMENT_ATTRIBUTE));
    }
    if ctx.depth > MAX_CONTEXT_DEPTH {
        return Err(ResolveError::InvalidContext(too_deep()));
    }
    Ok(())
}

/// OpenFeature's view of an evaluation; `None` when the flag does not exist.
fn resolution(result: FlagResult, ctx: &Context<'_>, now: DateTime<Utc>) -> Option<Resolution> {
    let flag = result.flag.as_deref()?;
    // A killed flag is STATIC (off for everyone until it changes), not
    // OpenFeature's DISABLED, after which providers return the caller's
    // default: `getBooleanValue("checkout", true)` would stay on after the
    // kill switch. Vexil's own reason (metadata) still says DISABLED.
    let reason = if engine::is_static(flag, now) {
        OpenFeatureReason::Static
    } else {
        match result.evaluation.reason {
            Reason::Split => OpenFeatureReason::Split,
            Reason::Default => OpenFeatureReason::Default,
            _ => OpenFeatureReason::TargetingMatch,
        }
    };
    let decided_by_user = matches!(
        result.evaluation.reason,
        Reason::Whitelisted
            | Reason::Blacklisted
            | Reason::PercentageRollout
            | Reason::OutsideRollout
    );
    Some(Resolution {
        needed_user: ctx.targeting_key.is_none()
            && decided_by_user
            && reason == OpenFeatureReason::TargetingMatch,
        reason,
        result,
    })
}
