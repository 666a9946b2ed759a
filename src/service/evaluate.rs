//! Evaluation: validate, look up in the hot cache, run the engine, count
//! it. No store access, no `.await`, no allocation beyond the answer.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::cache::{FlagCache, StatsSlot};
use crate::domain::{
    EvalContext, Evaluation, Flag, FlagType, Gathered, Variant, limits, validate_name,
};
use crate::engine;
use crate::error::{Error, Result};
use crate::metrics::{Observation, Recorder};

/// One flag's answer and the revision of the flag state it came from
/// (0 when the flag does not exist), and the flag itself (shared, not
/// copied): the variant served, the rule that decided and a failed
/// prerequisite are read from it at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagResult {
    pub evaluation: Evaluation,
    pub revision: u64,
    pub flag: Option<Arc<Flag>>,
}

impl FlagResult {
    fn of(flag: Option<&Arc<Flag>>, evaluation: Evaluation) -> Self {
        Self {
            evaluation,
            revision: flag.map_or(0, |flag| flag.revision),
            flag: flag.cloned(),
        }
    }

    /// The variant served, if any (a boolean flag's `on` or `off`).
    pub fn variant(&self) -> Option<&Variant> {
        let index = self.evaluation.variant?;
        match &self.flag {
            Some(flag) => flag.variant(index),
            None => engine::boolean_variants().get(usize::from(index)),
        }
    }

    pub fn flag_type(&self) -> FlagType {
        self.flag
            .as_ref()
            .map_or(FlagType::Boolean, |flag| flag.flag_type())
    }
}

#[derive(Clone)]
pub struct Evaluator {
    cache: Arc<FlagCache>,
    metrics: Option<Arc<Recorder>>,
}

impl Evaluator {
    /// Evaluates from `cache`, counting into `metrics` when given.
    pub fn new(cache: Arc<FlagCache>, metrics: Option<Arc<Recorder>>) -> Self {
        Self { cache, metrics }
    }

    /// The flags whose answers may change with a segment: those with a
    /// clause naming one, and those requiring such a flag.
    pub fn flags_using_segments(&self) -> Vec<String> {
        let mut direct = std::collections::HashSet::new();
        self.cache.scan(|flag| {
            if flag.spec().referenced_segments().next().is_some() {
                direct.insert(flag.name.to_string());
            }
            true
        });
        let mut using = Vec::new();
        self.cache.scan(|flag| {
            let name = flag.name.as_str();
            if direct.contains(name)
                || flag
                    .spec()
                    .prerequisites
                    .iter()
                    .any(|required| direct.contains(&required.flag))
            {
                using.push(name.to_owned());
            }
            true
        });
        using
    }

    /// Runs `evaluate` with `ctx` bound to this replica's flags (and
    /// segments) as its catalog, and its attributes gathered once for every
    /// flag the request asks about: callers say who asks; prerequisites and
    /// segments are read here.
    fn bound<R>(&self, ctx: &EvalContext<'_>, evaluate: impl FnOnce(&EvalContext<'_>) -> R) -> R {
        Gathered::gather(ctx.attributes, |attributes| {
            evaluate(&EvalContext {
                catalog: self.cache.as_ref(),
                attributes,
                ..*ctx
            })
        })
    }

    /// Evaluates one flag. A well-formed unknown name is not an error.
    pub fn evaluate(
        &self,
        flag_name: &str,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<FlagResult> {
        validate_context(ctx)?;
        validate_name("flag_name", flag_name)?;
        Ok(self.bound(ctx, |ctx| self.evaluate_valid(flag_name, ctx, now)))
    }

    /// Evaluates one flag and explains how (the same cache and engine as
    /// [`Self::evaluate`]); also returns the flag, if it exists.
    pub fn explain(
        &self,
        flag_name: &str,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<(engine::Explanation, Option<Arc<Flag>>)> {
        validate_context(ctx)?;
        validate_name("flag_name", flag_name)?;
        let flag = self.cache.get(flag_name);
        let explanation = self.bound(ctx, |ctx| engine::explain(flag.as_deref(), ctx, now));
        Ok((explanation, flag))
    }

    /// Evaluates the named flags, in order; every flag (by name) when
    /// `flag_names` is empty. Returns each name with its result.
    pub fn bulk_evaluate(
        &self,
        flag_names: Vec<String>,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, FlagResult)>> {
        validate_context(ctx)?;
        if flag_names.len() > limits::BULK_FLAGS {
            return Err(Error::invalid(
                "flag_names",
                format!("must list at most {} flags", limits::BULK_FLAGS),
            ));
        }
        for (i, name) in flag_names.iter().enumerate() {
            if let Err(err) = validate_name("flag_names", name) {
                return Err(Error::invalid(format!("flag_names[{i}]"), err.message));
            }
        }
        Ok(self.bound(ctx, |ctx| self.bulk_evaluate_valid(flag_names, ctx, now)))
    }

    /// [`Self::bulk_evaluate`] for valid names and a bound context.
    fn bulk_evaluate_valid(
        &self,
        flag_names: Vec<String>,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> Vec<(String, FlagResult)> {
        if flag_names.is_empty() {
            let mut results = Vec::with_capacity(self.cache.len());
            // Under the name index's lock, not a shard's: prerequisites
            // are read from the shards.
            self.cache.scan_entries(|flag, slot| {
                let started = self.metrics.is_some() && timed();
                let started = started.then(Instant::now);
                let result = FlagResult::of(Some(flag), engine::evaluate(Some(flag), ctx, now));
                if let Some(metrics) = &self.metrics {
                    let observation = observe(ctx, &result, started, now);
                    record(
                        metrics,
                        flag.name.as_str(),
                        Some((flag, slot)),
                        &observation,
                    );
                }
                results.push((flag.name.to_string(), result));
            });
            return results;
        }
        flag_names
            .into_iter()
            .map(|name| {
                let result = self.evaluate_valid(&name, ctx, now);
                (name, result)
            })
            .collect()
    }

    /// Evaluates a flag for a bound context. The flag is taken out of the
    /// cache first (its shard's lock released), since prerequisites are
    /// read from the same cache.
    fn evaluate_valid(
        &self,
        flag_name: &str,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> FlagResult {
        let entry = self.cache.entry(flag_name);
        let Some(metrics) = &self.metrics else {
            let flag = entry.map(|(flag, _)| flag);
            return FlagResult::of(flag.as_ref(), engine::evaluate(flag.as_deref(), ctx, now));
        };
        let started = timed().then(Instant::now);
        let Some((flag, slot)) = entry else {
            let result = FlagResult::of(None, engine::evaluate(None, ctx, now));
            let observation = observe(ctx, &result, started, now);
            metrics.record_unknown(flag_name, &observation);
            return result;
        };
        // Found before the engine runs (see `Recorder::prepare`).
        let stats = slot.get_or_init(|| metrics.flag(flag_name));
        let counting =
            metrics.prepare(stats, ctx.environment, ctx.user_id, now.timestamp(), || {
                flag.spec().names_environment(ctx.environment)
            });
        let started = started.or_else(|| counting.among_first().then(Instant::now));
        let result = FlagResult::of(Some(&flag), engine::evaluate(Some(&flag), ctx, now));
        counting.record(
            result.evaluation.reason,
            result.evaluation.enabled,
            served(&result),
            started.map(elapsed_ns),
        );
        result
    }
}

fn observe<'a>(
    ctx: &EvalContext<'a>,
    result: &'a FlagResult,
    started: Option<Instant>,
    now: DateTime<Utc>,
) -> Observation<'a> {
    Observation {
        environment: ctx.environment,
        user_id: ctx.user_id,
        reason: result.evaluation.reason,
        enabled: result.evaluation.enabled,
        variant: served(result),
        latency_ns: started.map(elapsed_ns),
        at: now.timestamp(),
    }
}

/// The variant an answer serves, as its index in the flag and its name.
fn served(result: &FlagResult) -> Option<(usize, &str)> {
    let index = usize::from(result.evaluation.variant?);
    Some((index, result.variant()?.name.as_str()))
}

/// Counts one evaluation: of a flag (through its cache entry's counters
/// slot) or of a name that is not a flag.
pub(crate) fn record(
    metrics: &Recorder,
    flag_name: &str,
    entry: Option<(&engine::Flag, &StatsSlot)>,
    observation: &Observation<'_>,
) {
    match entry {
        Some((flag, slot)) => {
            let stats = slot.get_or_init(|| metrics.flag(flag_name));
            metrics.record(stats, observation, || {
                flag.spec().names_environment(observation.environment)
            });
        }
        None => metrics.record_unknown(flag_name, observation),
    }
}

/// One evaluation in this many (per thread) is timed: two clock reads cost
/// about as much as the evaluation itself, and a sample is enough for the
/// evaluation-time histogram's p50 and p99. The first evaluations of each
/// flag, environment and hour are all timed (`metrics::ALWAYS_TIMED`), from
/// the engine on, so that a few evaluations have percentiles too.
pub const TIMED_EVERY: u32 = 8;

/// Whether to time this evaluation.
pub(crate) fn timed() -> bool {
    thread_local! {
        static EVALUATIONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    EVALUATIONS.with(|count| {
        let next = count.get().wrapping_add(1);
        count.set(next);
        next % TIMED_EVERY == 0
    })
}

pub(crate) fn elapsed_ns(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn validate_context(ctx: &EvalContext<'_>) -> Result<()> {
    if ctx.user_id.len() > limits::ID_BYTES {
        return Err(Error::invalid(
            "user_id",
            format!("must be at most {} bytes", limits::ID_BYTES),
        ));
    }
    if ctx.environment.len() > limits::ID_BYTES {
        return Err(Error::invalid(
            "environment",
            format!("must be at most {} bytes", limits::ID_BYTES),
        ));
    }
    Ok(())
}
