//! Evaluation: validate, look up in the hot cache, run the engine. No store
//! access, no `.await`, no allocation beyond the answer.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::cache::FlagCache;
use crate::domain::{EvalContext, Evaluation, limits, validate_name};
use crate::engine;
use crate::error::{Error, Result};

/// One flag's answer and the revision of the flag state it came from
/// (0 when the flag does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagResult {
    pub evaluation: Evaluation,
    pub revision: u64,
}

#[derive(Clone)]
pub struct Evaluator {
    cache: Arc<FlagCache>,
}

impl Evaluator {
    pub fn new(cache: Arc<FlagCache>) -> Self {
        Self { cache }
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
        Ok(self.evaluate_valid(flag_name, ctx, now))
    }

    /// Evaluates one flag and explains how (the same cache and engine as
    /// [`Self::evaluate`]); also returns the flag's revision.
    pub fn explain(
        &self,
        flag_name: &str,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<(engine::Explanation, u64)> {
        validate_context(ctx)?;
        validate_name("flag_name", flag_name)?;
        Ok(self.cache.with_flag(flag_name, |flag| {
            (
                engine::explain(flag, ctx, now),
                flag.map_or(0, |flag| flag.revision),
            )
        }))
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
        if flag_names.is_empty() {
            return Ok(self
                .cache
                .all()
                .into_iter()
                .map(|flag| {
                    let result = FlagResult {
                        evaluation: engine::evaluate(Some(&flag), ctx, now),
                        revision: flag.revision,
                    };
                    (flag.name.to_string(), result)
                })
                .collect());
        }
        for (i, name) in flag_names.iter().enumerate() {
            if let Err(err) = validate_name("flag_names", name) {
                return Err(Error::invalid(format!("flag_names[{i}]"), err.message));
            }
        }
        Ok(flag_names
            .into_iter()
            .map(|name| {
                let result = self.evaluate_valid(&name, ctx, now);
                (name, result)
            })
            .collect())
    }

    fn evaluate_valid(
        &self,
        flag_name: &str,
        ctx: &EvalContext<'_>,
        now: DateTime<Utc>,
    ) -> FlagResult {
        self.cache.with_flag(flag_name, |flag| FlagResult {
            evaluation: engine::evaluate(flag, ctx, now),
            revision: flag.map_or(0, |flag| flag.revision),
        })
    }
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
