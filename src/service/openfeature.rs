//! OpenFeature's view of Vexil's evaluations, shared by the flagd (gRPC) and
//! OFREP (HTTP) edges: the user and environment an evaluation context names,
//! and the engine's answer with an OpenFeature reason. Every answer comes
//! from the hot cache and the engine, exactly as Evaluate gives it.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::evaluate::{elapsed_ns, record, timed};
use crate::cache::FlagCache;
use crate::domain::{EvalContext, Flag, Reason, limits, validate_name};
use crate::engine;
use crate::metrics::{Observation, Recorder};

/// The context attribute holding the user id (OpenFeature's).
pub const TARGETING_KEY: &str = "targetingKey";
/// The context attribute naming the Vexil environment.
pub const ENVIRONMENT_ATTRIBUTE: &str = "environment";

/// The two boolean variants.
pub const VARIANT_ON: &str = "on";
pub const VARIANT_OFF: &str = "off";

/// How deeply an evaluation context's objects and lists may nest (the
/// context itself is level 1), over flagd's gRPC and OFREP alike: about what
/// the protobuf decoder's recursion limit lets through as a `Struct`.
pub const MAX_CONTEXT_DEPTH: usize = 32;

/// Who and where, from an OpenFeature evaluation context.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// `None` when the context has no targeting key, or an empty one.
    pub targeting_key: Option<&'a str>,
    /// Empty means no environment, as in Evaluate.
    pub environment: &'a str,
    /// How deeply the context's objects and lists nest (1 for a flat one).
    pub depth: usize,
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
    /// A user, environment, time or rollout rule decided.
    TargetingMatch,
}

impl OpenFeatureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::TargetingMatch => "TARGETING_MATCH",
        }
    }
}

/// One flag's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub enabled: bool,
    pub reason: OpenFeatureReason,
    /// Vexil's own reason, for the answer's metadata.
    pub vexil_reason: Reason,
    /// The flag's revision.
    pub revision: u64,
    /// The answer depended on the user id and the context gave none: it is
    /// the anonymous user's (empty user id) answer.
    pub needed_user: bool,
}

impl Resolution {
    pub fn variant(&self) -> &'static str {
        if self.enabled {
            VARIANT_ON
        } else {
            VARIANT_OFF
        }
    }
}

/// Why a flag could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    FlagNotFound,
    /// The context is unusable; the message names the attribute
    /// (`context.targetingKey …`).
    InvalidContext(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FlagNotFound => f.write_str("flag not found"),
            Self::InvalidContext(why) => f.write_str(why),
        }
    }
}

#[derive(Clone)]
pub struct Resolver {
    cache: Arc<FlagCache>,
    metrics: Option<Arc<Recorder>>,
}

impl Resolver {
    /// Resolves from `cache`, counting into `metrics` when given.
    pub fn new(cache: Arc<FlagCache>, metrics: Option<Arc<Recorder>>) -> Self {
        Self { cache, metrics }
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
        let Some(metrics) = &self.metrics else {
            return self.cache.with_flag(flag_key, |flag| {
                flag.map(|flag| resolve(flag, ctx, now))
                    .ok_or(ResolveError::FlagNotFound)
            });
        };
        let started = timed().then(Instant::now);
        self.cache.with_entry(flag_key, |entry| {
            let resolution = entry.map(|(flag, _)| resolve(flag, ctx, now));
            let (reason, enabled) = resolution.map_or((Reason::FlagNotFound, false), |r| {
                (r.vexil_reason, r.enabled)
            });
            let observation = Observation {
                environment: ctx.environment,
                user_id: ctx.targeting_key.unwrap_or_default(),
                reason,
                enabled,
                latency_ns: started.map(elapsed_ns),
                at: now.timestamp(),
            };
            record(metrics, flag_key, entry, &observation);
            resolution.ok_or(ResolveError::FlagNotFound)
        })
    }

    /// Resolves every flag, in name order.
    pub fn resolve_all(
        &self,
        ctx: &Context<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Resolution)>, ResolveError> {
        check(ctx)?;
        let mut resolved = Vec::with_capacity(self.cache.len());
        self.cache.scan_entries(|flag, slot| {
            let started = self.metrics.is_some() && timed();
            let started = started.then(Instant::now);
            let resolution = resolve(flag, ctx, now);
            if let Some(metrics) = &self.metrics {
                let observation = Observation {
                    environment: ctx.environment,
                    user_id: ctx.targeting_key.unwrap_or_default(),
                    reason: resolution.vexil_reason,
                    enabled: resolution.enabled,
                    latency_ns: started.map(elapsed_ns),
                    at: now.timestamp(),
                };
                record(
                    metrics,
                    flag.name.as_str(),
                    Some((flag, slot)),
                    &observation,
                );
            }
            resolved.push((flag.name.to_string(), resolution));
        });
        Ok(resolved)
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

fn resolve(flag: &Flag, ctx: &Context<'_>, now: DateTime<Utc>) -> Resolution {
    let user_id = ctx.targeting_key.unwrap_or_default();
    let evaluation = engine::evaluate(
        Some(flag),
        &EvalContext {
            user_id,
            environment: ctx.environment,
        },
        now,
    );
    // A killed flag is STATIC (off for everyone until it changes), not
    // OpenFeature's DISABLED, after which providers return the caller's
    // default: `getBooleanValue("checkout", true)` would stay on after the
    // kill switch. Vexil's own reason (metadata) still says DISABLED.
    let reason = if engine::is_static(flag, now) {
        OpenFeatureReason::Static
    } else {
        OpenFeatureReason::TargetingMatch
    };
    let decided_by_user = matches!(
        evaluation.reason,
        Reason::Whitelisted
            | Reason::Blacklisted
            | Reason::PercentageRollout
            | Reason::OutsideRollout
    );
    Resolution {
        enabled: evaluation.enabled,
        reason,
        vexil_reason: evaluation.reason,
        revision: flag.revision,
        needed_user: ctx.targeting_key.is_none()
            && decided_by_user
            && reason == OpenFeatureReason::TargetingMatch,
    }
}
