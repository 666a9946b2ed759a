//! A flag's targeting compiled once, when the flag is built (written,
//! loaded, received over Watch or Redis): variants as indices, clauses as
//! [`Matcher`]s, split boundaries precomputed. Immutable and shared.
//!
//! Compiling is total: a definition that fails validation (only damaged
//! stored data can) compiles to parts that match nothing or serve no value.
//! [`check`] reports the same problems as errors, for writes.

use crate::FlagSpec;
use crate::bucket;
use crate::matcher::{Key, Matcher};
use crate::targeting::{Bucketing, Serve, Split};
use crate::validation::{ValidationError, limits, validate_id, validate_name, validate_text};
use crate::value::{FlagType, OFF, ON, Value};

/// A variant's position in the flag's variants (for boolean flags, `on`
/// is 0 and `off` is 1).
pub type VariantIndex = u16;

pub(crate) const ON_INDEX: VariantIndex = 0;
pub(crate) const OFF_INDEX: VariantIndex = 1;

#[derive(Debug)]
pub(crate) struct CompiledFlag {
    /// Served when killed, outside the time window or the environments,
    /// or when a prerequisite fails; `None`: no value (code default).
    pub(crate) off: Option<VariantIndex>,
    /// Each of the spec's targets' variant.
    pub(crate) targets: Box<[Option<VariantIndex>]>,
    pub(crate) rules: Box<[CompiledRule]>,
    pub(crate) fallthrough: CompiledServe,
    pub(crate) prerequisites: Box<[CompiledPrerequisite]>,
    pub(crate) reads_clock: bool,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) clauses: Box<[Matcher]>,
    pub(crate) serve: CompiledServe,
}

#[derive(Debug)]
pub(crate) enum CompiledServe {
    Variant(Option<VariantIndex>),
    Split(CompiledSplit),
    /// A boolean flag's `percentage`: on below the threshold, today's
    /// rule and reasons.
    Rollout {
        threshold: u32,
    },
}

#[derive(Debug)]
pub(crate) struct CompiledSplit {
    /// `None`: the flag's name.
    pub(crate) salt: Option<Box<str>>,
    pub(crate) key: Key,
    pub(crate) bucketing: Bucketing,
    /// Each variant's exclusive cumulative end in buckets, in order.
    pub(crate) ends: Box<[(u32, Option<VariantIndex>)]>,
    /// The number of buckets: 10,000, or the weights' sum under flagd's
    /// bucketing.
    pub(crate) range: u32,
}

impl CompiledSplit {
    /// The key's bucket, in `0..range`.
    pub(crate) fn bucket(&self, flag_name: &str, key: &str) -> u32 {
        let salt = self.salt.as_deref().unwrap_or(flag_name);
        match self.bucketing {
            Bucketing::Vexil => bucket::bucket(salt, key),
            Bucketing::Flagd => bucket::flagd_bucket(salt, key, self.range),
        }
    }

    /// The variant whose range holds `bucket`.
    pub(crate) fn pick(&self, bucket: u32) -> Option<VariantIndex> {
        self.ends
            .iter()
            .find(|(end, _)| bucket < *end)
            .and_then(|(_, variant)| *variant)
    }

    /// The variant that holds every bucket, if one does: what a split
    /// serves without a bucketing key.
    pub(crate) fn whole(&self) -> Option<Option<VariantIndex>> {
        self.ends
            .iter()
            .find(|(end, _)| *end > 0)
            .filter(|(end, _)| *end >= self.range)
            .map(|(_, variant)| *variant)
    }
}

#[derive(Debug)]
pub(crate) struct CompiledPrerequisite {
    pub(crate) flag: Box<str>,
    /// Variant names the prerequisite must serve; empty: it must be on.
    pub(crate) variants: Box<[Box<str>]>,
}

/// A variant's index by name.
pub(crate) fn variant_index(spec: &FlagSpec, name: &str) -> Option<VariantIndex> {
    match spec.flag_type {
        FlagType::Boolean => match name {
            ON => Some(ON_INDEX),
            OFF => Some(OFF_INDEX),
            _ => None,
        },
        _ => spec
            .variants
            .iter()
            .position(|variant| variant.name == name)
            .and_then(|index| VariantIndex::try_from(index).ok()),
    }
}

pub(crate) fn compile(spec: &FlagSpec) -> CompiledFlag {
    let index = |name: &str| variant_index(spec, name);
    let boolean = spec.flag_type == FlagType::Boolean;
    let rules: Box<[CompiledRule]> = spec
        .rules
        .iter()
        .map(|rule| CompiledRule {
            clauses: rule.clauses.iter().map(Matcher::compile_stored).collect(),
            serve: compile_serve(spec, &rule.serve),
        })
        .collect();
    let fallthrough = match &spec.fallthrough {
        Some(serve) => compile_serve(spec, serve),
        None if boolean => CompiledServe::Rollout {
            threshold: bucket::threshold(spec.percentage),
        },
        None => CompiledServe::Variant(None),
    };
    // Segments and prerequisites may read the clock themselves.
    let reads_clock = !spec.prerequisites.is_empty()
        || rules.iter().any(|rule| {
            rule.clauses
                .iter()
                .any(|clause| clause.reads_clock() || !clause.segments().is_empty())
        });
    CompiledFlag {
        off: if boolean {
            Some(OFF_INDEX)
        } else {
            spec.off_variant.as_deref().and_then(index)
        },
        targets: spec
            .targets
            .iter()
            .map(|target| index(&target.variant))
            .collect(),
        rules,
        fallthrough,
        prerequisites: spec
            .prerequisites
            .iter()
            .map(|prerequisite| CompiledPrerequisite {
                flag: prerequisite.flag.as_str().into(),
                variants: prerequisite
                    .variants
                    .iter()
                    .map(|name| name.as_str().into())
                    .collect(),
            })
            .collect(),
        reads_clock,
    }
}

fn compile_serve(spec: &FlagSpec, serve: &Serve) -> CompiledServe {
    match serve {
        Serve::Variant(name) => CompiledServe::Variant(variant_index(spec, name)),
        Serve::Split(split) => CompiledServe::Split(compile_split(spec, split)),
    }
}

fn compile_split(spec: &FlagSpec, split: &Split) -> CompiledSplit {
    let mut end = 0u32;
    let ends = split
        .weights
        .iter()
        .map(|weighted| {
            end = end.saturating_add(weighted.weight);
            (end, variant_index(spec, &weighted.variant))
        })
        .collect();
    CompiledSplit {
        range: match split.bucketing {
            Bucketing::Vexil => bucket::BUCKETS,
            Bucketing::Flagd => end,
        },
        bucketing: split.bucketing,
        salt: split.salt.as_deref().map(Box::from),
        key: if split.bucket_by.is_empty() {
            Key::UserId
        } else {
            Key::parse("bucket_by", &split.bucket_by).unwrap_or(Key::UserId)
        },
        ends,
    }
}

/// Checks a spec's type, variants and targeting; errors name the field as
/// `prefix.field[index]…`.
pub(crate) fn check(prefix: &str, spec: &FlagSpec) -> Result<(), ValidationError> {
    let field = |name: &str| format!("{prefix}.{name}");
    check_variants(prefix, spec)?;
    let known = |field: &str, name: &str| {
        variant_index(spec, name).map(|_| ()).ok_or_else(|| {
            ValidationError::new(
                field,
                format!("names no variant of this flag: {:?}", crate::echo(name)),
            )
        })
    };
    if spec.flag_type == FlagType::Boolean {
        if spec.off_variant.is_some() {
            return Err(ValidationError::new(
                field("off_variant"),
                "boolean flags always serve \"off\" when off: leave it unset",
            ));
        }
        if spec.fallthrough.is_some() && spec.percentage != 0.0 {
            return Err(ValidationError::new(
                field("percentage"),
                "must be 0 when a fallthrough is set (the fallthrough replaces the rollout)",
            ));
        }
    } else {
        for (name, used) in [
            ("percentage", spec.percentage != 0.0),
            ("whitelist", !spec.whitelist.is_empty()),
            ("blacklist", !spec.blacklist.is_empty()),
            (
                "environment_overrides",
                !spec.environment_overrides.is_empty(),
            ),
        ] {
            if used {
                return Err(ValidationError::new(
                    field(name),
                    "is for boolean flags only: typed flags use targets, rules and the fallthrough",
                ));
            }
        }
        if let Some(off) = &spec.off_variant {
            known(&field("off_variant"), off)?;
        }
        if spec.fallthrough.is_none() {
            return Err(ValidationError::new(
                field("fallthrough"),
                "is required for typed flags",
            ));
        }
    }
    let mut target_ids = 0usize;
    for (i, target) in spec.targets.iter().enumerate() {
        let at = field(&format!("targets[{i}]"));
        known(&format!("{at}.variant"), &target.variant)?;
        target_ids += target.user_ids.len();
        for id in target.user_ids.iter() {
            validate_id(&format!("{at}.user_ids"), id)?;
        }
    }
    if target_ids > limits::LIST_IDS {
        return Err(ValidationError::new(
            field("targets"),
            format!("must hold at most {} user ids in all", limits::LIST_IDS),
        ));
    }
    if spec.rules.len() > limits::RULES {
        return Err(ValidationError::new(
            field("rules"),
            format!("must hold at most {} rules", limits::RULES),
        ));
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = field(&format!("rules[{i}]"));
        if rule.id.len() > limits::ID_BYTES {
            return Err(ValidationError::new(
                format!("{at}.id"),
                format!("must be at most {} bytes", limits::ID_BYTES),
            ));
        }
        validate_text(&format!("{at}.id"), &rule.id)?;
        check_description(&format!("{at}.description"), &rule.description)?;
        check_clauses(&at, &rule.clauses)?;
        check_serve(&format!("{at}.serve"), &rule.serve, &known)?;
    }
    if let Some(serve) = &spec.fallthrough {
        check_serve(&field("fallthrough"), serve, &known)?;
    }
    if spec.prerequisites.len() > limits::PREREQUISITES {
        return Err(ValidationError::new(
            field("prerequisites"),
            format!("must hold at most {} prerequisites", limits::PREREQUISITES),
        ));
    }
    for (i, prerequisite) in spec.prerequisites.iter().enumerate() {
        let at = field(&format!("prerequisites[{i}]"));
        validate_name(&format!("{at}.flag"), &prerequisite.flag)?;
        if prerequisite.variants.len() > limits::VARIANTS {
            return Err(ValidationError::new(
                format!("{at}.variants"),
                format!("must hold at most {} names", limits::VARIANTS),
            ));
        }
        for name in &prerequisite.variants {
            validate_id(&format!("{at}.variants"), name)?;
        }
    }
    Ok(())
}

pub(crate) fn check_description(field: &str, text: &str) -> Result<(), ValidationError> {
    if text.len() > limits::TEXT_BYTES {
        return Err(ValidationError::new(
            field,
            format!("must be at most {} bytes", limits::TEXT_BYTES),
        ));
    }
    validate_text(field, text)
}

/// Checks a rule's clauses (`at.clauses[i]…`).
pub(crate) fn check_clauses(
    at: &str,
    clauses: &[crate::targeting::Clause],
) -> Result<(), ValidationError> {
    if clauses.len() > limits::CLAUSES {
        return Err(ValidationError::new(
            format!("{at}.clauses"),
            format!("must hold at most {} clauses", limits::CLAUSES),
        ));
    }
    for (j, clause) in clauses.iter().enumerate() {
        Matcher::compile(&format!("{at}.clauses[{j}]"), clause)?;
    }
    Ok(())
}

fn check_variants(prefix: &str, spec: &FlagSpec) -> Result<(), ValidationError> {
    let field = format!("{prefix}.variants");
    if spec.flag_type == FlagType::Boolean {
        if !spec.variants.is_empty() {
            return Err(ValidationError::new(
                field,
                "boolean flags have the variants \"on\" and \"off\": leave it empty",
            ));
        }
        return Ok(());
    }
    if spec.variants.is_empty() {
        return Err(ValidationError::new(
            field,
            "typed flags need at least one variant",
        ));
    }
    if spec.variants.len() > limits::VARIANTS {
        return Err(ValidationError::new(
            field,
            format!("must hold at most {} variants", limits::VARIANTS),
        ));
    }
    for (i, variant) in spec.variants.iter().enumerate() {
        let at = format!("{field}[{i}]");
        validate_id(&format!("{at}.name"), &variant.name)?;
        if spec.variants[..i]
            .iter()
            .any(|other| other.name == variant.name)
        {
            return Err(ValidationError::new(
                format!("{at}.name"),
                format!("{:?} is used by an earlier variant", variant.name),
            ));
        }
        check_description(&format!("{at}.description"), &variant.description)?;
        if variant.value.flag_type() != spec.flag_type {
            return Err(ValidationError::new(
                format!("{at}.value"),
                format!(
                    "must be of the flag's type {}, not {}",
                    spec.flag_type.name(),
                    variant.value.flag_type().name()
                ),
            ));
        }
        match &variant.value {
            Value::String(text) => {
                check_description(&format!("{at}.value"), text)?;
            }
            Value::Float(number) if !number.is_finite() => {
                return Err(ValidationError::new(
                    format!("{at}.value"),
                    "must be a finite number",
                ));
            }
            Value::Object(object) => {
                crate::flag::check_json_object(&format!("{at}.value"), object)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_serve(
    at: &str,
    serve: &Serve,
    known: &impl Fn(&str, &str) -> Result<(), ValidationError>,
) -> Result<(), ValidationError> {
    let split = match serve {
        Serve::Variant(name) => return known(&format!("{at}.variant"), name),
        Serve::Split(split) => split,
    };
    let at = format!("{at}.split");
    if split.weights.is_empty() || split.weights.len() > limits::VARIANTS {
        return Err(ValidationError::new(
            format!("{at}.weights"),
            format!("must hold 1 to {} variants", limits::VARIANTS),
        ));
    }
    let mut total = 0u64;
    for (i, weighted) in split.weights.iter().enumerate() {
        known(&format!("{at}.weights[{i}].variant"), &weighted.variant)?;
        total += u64::from(weighted.weight);
    }
    if split.bucketing == Bucketing::Flagd {
        // flagd's own bounds: weights are relative, their sum an int32.
        if !(1..=i32::MAX as u64).contains(&total) {
            return Err(ValidationError::new(
                format!("{at}.weights"),
                format!(
                    "must sum to 1 to {} with flagd's bucketing, not {total}",
                    i32::MAX
                ),
            ));
        }
    } else if total != u64::from(bucket::BUCKETS) {
        return Err(ValidationError::new(
            format!("{at}.weights"),
            format!(
                "must sum to {} basis points (100%), not {total}",
                bucket::BUCKETS
            ),
        ));
    }
    if !split.bucket_by.is_empty() {
        let key = Key::parse(&format!("{at}.bucket_by"), &split.bucket_by)?;
        if matches!(key, Key::Now) {
            return Err(ValidationError::new(
                format!("{at}.bucket_by"),
                "cannot bucket by the time",
            ));
        }
    }
    if let Some(salt) = &split.salt {
        if salt.len() > limits::ID_BYTES {
            return Err(ValidationError::new(
                format!("{at}.salt"),
                format!("must be at most {} bytes", limits::ID_BYTES),
            ));
        }
        validate_text(&format!("{at}.salt"), salt)?;
    }
    Ok(())
}
