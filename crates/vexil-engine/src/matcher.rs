//! Clauses compiled once, when a flag or segment is built: values parsed
//! (numbers, versions, times, regular expressions), strings sorted and
//! case-folded, comparisons against several values reduced to one bound.
//! Matching reads the context through [`Attr`] and allocates nothing.

use chrono::{DateTime, Utc};

use crate::attributes::{Attr, AttrList, AttrName};
use crate::print::bytes_eq;
use crate::semver::{OwnedVersion, Version};
use crate::targeting::{self, Clause, ClauseValue, Operator};
use crate::validation::{ValidationError, limits, validate_name, validate_text};

/// Where a clause reads its attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    UserId,
    Environment,
    Now,
    Named(AttrName),
    /// `$.a.b`: member `b` of the context's object `a`.
    Path(Box<[Box<str>]>),
}

impl Key {
    pub(crate) fn parse(field: &str, attribute: &str) -> Result<Self, ValidationError> {
        match attribute {
            targeting::USER_ID => Ok(Self::UserId),
            targeting::ENVIRONMENT => Ok(Self::Environment),
            targeting::NOW => Ok(Self::Now),
            "" => Err(ValidationError::new(field, "must name an attribute")),
            name if name.len() > limits::ID_BYTES => Err(ValidationError::new(
                field,
                format!("must be at most {} bytes", limits::ID_BYTES),
            )),
            name if name.starts_with(targeting::PATH) => {
                validate_text(field, name)?;
                let segments: Box<[Box<str>]> = name[targeting::PATH.len()..]
                    .split('.')
                    .map(Box::from)
                    .collect();
                if segments.len() > limits::PATH_SEGMENTS || segments.iter().any(|s| s.is_empty()) {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "a path is $. and 1 to {} member names joined by '.'",
                            limits::PATH_SEGMENTS
                        ),
                    ));
                }
                Ok(Self::Path(segments))
            }
            name if name.starts_with('$') => Err(ValidationError::new(
                field,
                "names starting with '$' are reserved: use $user_id, $environment, $now or a path $.object.member",
            )),
            name if name.len() > limits::ID_BYTES => Err(ValidationError::new(
                field,
                format!("must be at most {} bytes", limits::ID_BYTES),
            )),
            name => {
                validate_text(field, name)?;
                Ok(Self::Named(AttrName::new(name)))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    fn holds(self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            Self::Lt => order == Less,
            Self::Lte => order != Greater,
            Self::Gt => order == Greater,
            Self::Gte => order != Less,
        }
    }

    /// Against several values "any matches" is one comparison with the
    /// loosest: the largest for `<`, the smallest for `>`.
    fn wants_largest(self) -> bool {
        matches!(self, Self::Lt | Self::Lte)
    }
}

#[derive(Debug)]
enum Test {
    In {
        /// Sorted by bytes (ASCII-lowercased when folding), deduplicated.
        strings: Box<[Box<str>]>,
        /// Sorted by `total_cmp`, -0 stored as 0.
        numbers: Box<[f64]>,
        /// Whether `false` and `true` are among the values.
        bools: [bool; 2],
    },
    StartsWith(Box<[Box<str>]>),
    EndsWith(Box<[Box<str>]>),
    Contains(Box<[Box<str>]>),
    Number(Cmp, f64),
    SemverEq(Box<[OwnedVersion]>),
    Semver(Cmp, OwnedVersion),
    /// Milliseconds since the Unix epoch.
    Time(Cmp, i64),
    Exists,
    Segments(Box<[Box<str>]>),
    Regex(Box<[regex::Regex]>),
    /// A stored clause that no longer compiles: matches nothing. Writes
    /// validate clauses first, so only damaged data ends up here.
    Never,
}

/// A compiled clause.
#[derive(Debug)]
pub(crate) struct Matcher {
    pub(crate) key: Key,
    test: Test,
    negate: bool,
    folded: bool,
}

/// What a clause reads besides its attribute.
pub(crate) trait Scope {
    fn attr(&self, key: &Key) -> Option<Attr<'_>>;
    fn in_segment(&self, name: &str) -> bool;
}

impl Matcher {
    /// Compiles `clause`, naming `field` (and its parts) in any error.
    pub(crate) fn compile(field: &str, clause: &Clause) -> Result<Self, ValidationError> {
        let values_field = format!("{field}.values");
        let key = if clause.op == Operator::InSegment {
            Key::Named(AttrName::new(""))
        } else {
            Key::parse(&format!("{field}.attribute"), &clause.attribute)?
        };
        if clause.values.len() > limits::CLAUSE_VALUES {
            return Err(ValidationError::new(
                values_field,
                format!("must hold at most {} values", limits::CLAUSE_VALUES),
            ));
        }
        if clause.op == Operator::Exists {
            if !clause.values.is_empty() {
                return Err(ValidationError::new(
                    values_field,
                    "must be empty for EXISTS",
                ));
            }
        } else if clause.values.is_empty() {
            return Err(ValidationError::new(
                values_field,
                "must hold at least one value",
            ));
        }
        let folded = clause.case_insensitive;
        let test = match clause.op {
            Operator::In => in_test(&values_field, &clause.values, folded)?,
            Operator::StartsWith => {
                Test::StartsWith(strings(&values_field, &clause.values, folded)?)
            }
            Operator::EndsWith => Test::EndsWith(strings(&values_field, &clause.values, folded)?),
            Operator::Contains => Test::Contains(strings(&values_field, &clause.values, folded)?),
            Operator::Lt => number(&values_field, &clause.values, Cmp::Lt)?,
            Operator::Lte => number(&values_field, &clause.values, Cmp::Lte)?,
            Operator::Gt => number(&values_field, &clause.values, Cmp::Gt)?,
            Operator::Gte => number(&values_field, &clause.values, Cmp::Gte)?,
            Operator::SemverEq => Test::SemverEq(versions(&values_field, &clause.values)?.into()),
            Operator::SemverLt => semver(&values_field, &clause.values, Cmp::Lt)?,
            Operator::SemverLte => semver(&values_field, &clause.values, Cmp::Lte)?,
            Operator::SemverGt => semver(&values_field, &clause.values, Cmp::Gt)?,
            Operator::SemverGte => semver(&values_field, &clause.values, Cmp::Gte)?,
            Operator::Before => time(&values_field, &clause.values, Cmp::Lt)?,
            Operator::After => time(&values_field, &clause.values, Cmp::Gt)?,
            Operator::Exists => Test::Exists,
            Operator::InSegment => {
                let names = strings(&values_field, &clause.values, false)?;
                for name in names.iter() {
                    validate_name(&values_field, name)?;
                }
                Test::Segments(names)
            }
            Operator::Matches => regexes(&values_field, &clause.values, folded)?,
        };
        Ok(Self {
            key,
            test,
            negate: clause.negate,
            folded,
        })
    }

    /// [`Self::compile`] for a clause already validated: one that fails
    /// (damaged stored data) matches nothing.
    pub(crate) fn compile_stored(clause: &Clause) -> Self {
        Self::compile("clause", clause).unwrap_or(Self {
            key: Key::Named(AttrName::new("")),
            test: Test::Never,
            negate: false,
            folded: false,
        })
    }

    /// The segments this clause refers to.
    pub(crate) fn segments(&self) -> &[Box<str>] {
        match &self.test {
            Test::Segments(names) => names,
            _ => &[],
        }
    }

    pub(crate) fn reads_clock(&self) -> bool {
        self.key == Key::Now
    }

    pub(crate) fn matches(&self, scope: &impl Scope) -> bool {
        let found = match &self.test {
            Test::Never => return false,
            Test::Segments(names) => names.iter().any(|name| scope.in_segment(name)),
            Test::Exists => scope.attr(&self.key).is_some(),
            test => match scope.attr(&self.key) {
                // A missing attribute matches nothing, negated or not.
                None => return false,
                Some(Attr::List(items)) => any_item(test, items, self.folded),
                Some(attr) => test_one(test, attr, self.folded),
            },
        };
        found != self.negate
    }
}

fn any_item(test: &Test, items: &dyn AttrList, folded: bool) -> bool {
    (0..items.len()).any(|index| match items.item(index) {
        Some(Attr::List(_)) | None => false,
        Some(item) => test_one(test, item, folded),
    })
}

fn test_one(test: &Test, attr: Attr<'_>, folded: bool) -> bool {
    match (test, attr) {
        (
            Test::In {
                strings,
                numbers: _,
                bools: _,
            },
            Attr::Str(text),
        ) => {
            // A few values: compared in registers; more: halved.
            if strings.len() <= 8 && !folded {
                strings
                    .iter()
                    .any(|value| bytes_eq(value.as_bytes(), text.as_bytes()))
            } else {
                strings
                    .binary_search_by(|probe| compare(probe, text, folded))
                    .is_ok()
            }
        }
        (Test::In { numbers, .. }, Attr::Num(number)) => {
            let number = if number == 0.0 { 0.0 } else { number };
            numbers
                .binary_search_by(|probe| probe.total_cmp(&number))
                .is_ok()
        }
        (Test::In { bools, .. }, Attr::Bool(value)) => bools[usize::from(value)],
        (Test::StartsWith(needles), Attr::Str(text)) => needles.iter().any(|needle| {
            text.len() >= needle.len() && same(&text.as_bytes()[..needle.len()], needle, folded)
        }),
        (Test::EndsWith(needles), Attr::Str(text)) => needles.iter().any(|needle| {
            text.len() >= needle.len()
                && same(
                    &text.as_bytes()[text.len() - needle.len()..],
                    needle,
                    folded,
                )
        }),
        (Test::Contains(needles), Attr::Str(text)) => needles
            .iter()
            .any(|needle| contains(text.as_bytes(), needle.as_bytes(), folded)),
        (Test::Number(cmp, bound), attr) => number_of(attr).is_some_and(|number| {
            number
                .partial_cmp(bound)
                .is_some_and(|order| cmp.holds(order))
        }),
        (Test::SemverEq(versions), Attr::Str(text)) => Version::parse(text)
            .is_some_and(|version| versions.iter().any(|wanted| wanted.view() == version)),
        (Test::Semver(cmp, bound), Attr::Str(text)) => {
            Version::parse(text).is_some_and(|version| cmp.holds(version.cmp(&bound.view())))
        }
        (Test::Time(cmp, bound), attr) => {
            millis_of(attr).is_some_and(|millis| cmp.holds(millis.cmp(bound)))
        }
        (Test::Regex(patterns), Attr::Str(text)) => {
            patterns.iter().any(|pattern| pattern.is_match(text))
        }
        _ => false,
    }
}

fn same(bytes: &[u8], needle: &str, folded: bool) -> bool {
    if folded {
        bytes.eq_ignore_ascii_case(needle.as_bytes())
    } else {
        bytes_eq(bytes, needle.as_bytes())
    }
}

fn contains(haystack: &[u8], needle: &[u8], folded: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack.windows(needle.len()).any(|window| {
        if folded {
            window.eq_ignore_ascii_case(needle)
        } else {
            window == needle
        }
    })
}

/// Orders `probe` (a stored value, lowercased when folding) against `text`.
fn compare(probe: &str, text: &str, folded: bool) -> std::cmp::Ordering {
    if folded {
        probe
            .bytes()
            .cmp(text.bytes().map(|byte| byte.to_ascii_lowercase()))
    } else {
        probe.as_bytes().cmp(text.as_bytes())
    }
}

/// A number, or a string that is one.
fn number_of(attr: Attr<'_>) -> Option<f64> {
    match attr {
        Attr::Num(number) => Some(number),
        Attr::Str(text) => text.trim().parse().ok(),
        Attr::Bool(_) | Attr::List(_) => None,
    }
}

/// Unix seconds, or an RFC 3339 time, as milliseconds since the epoch.
fn millis_of(attr: Attr<'_>) -> Option<i64> {
    match attr {
        Attr::Num(seconds) if seconds.is_finite() => Some((seconds * 1000.0).floor() as i64),
        Attr::Str(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.timestamp_millis()),
        _ => None,
    }
}

fn string_values<'v>(
    field: &str,
    values: &'v [ClauseValue],
    kind: &str,
) -> Result<Vec<&'v str>, ValidationError> {
    values
        .iter()
        .map(|value| match value {
            ClauseValue::String(text) => {
                validate_text(field, text)?;
                Ok(text.as_str())
            }
            _ => Err(ValidationError::new(field, format!("must all be {kind}"))),
        })
        .collect()
}

fn strings(
    field: &str,
    values: &[ClauseValue],
    folded: bool,
) -> Result<Box<[Box<str>]>, ValidationError> {
    let mut texts: Vec<Box<str>> = string_values(field, values, "strings")?
        .into_iter()
        .map(|text| {
            if text.len() > limits::ID_BYTES {
                return Err(ValidationError::new(
                    field,
                    format!("strings must be at most {} bytes", limits::ID_BYTES),
                ));
            }
            Ok(if folded {
                text.to_ascii_lowercase().into()
            } else {
                text.into()
            })
        })
        .collect::<Result<_, _>>()?;
    texts.sort_unstable();
    texts.dedup();
    Ok(texts.into())
}

fn in_test(field: &str, values: &[ClauseValue], folded: bool) -> Result<Test, ValidationError> {
    let mut strings = Vec::new();
    let mut numbers = Vec::new();
    let mut bools = [false; 2];
    for value in values {
        match value {
            ClauseValue::String(text) => strings.push(ClauseValue::String(text.clone())),
            ClauseValue::Number(number) if number.is_finite() => {
                numbers.push(if *number == 0.0 { 0.0 } else { *number })
            }
            ClauseValue::Number(_) => {
                return Err(ValidationError::new(field, "numbers must be finite"));
            }
            ClauseValue::Bool(value) => bools[usize::from(*value)] = true,
        }
    }
    numbers.sort_unstable_by(f64::total_cmp);
    numbers.dedup();
    Ok(Test::In {
        strings: self::strings(field, &strings, folded)?,
        numbers: numbers.into(),
        bools,
    })
}

fn numbers(field: &str, values: &[ClauseValue]) -> Result<Vec<f64>, ValidationError> {
    values
        .iter()
        .map(|value| match value {
            ClauseValue::Number(number) if number.is_finite() => Ok(*number),
            _ => Err(ValidationError::new(field, "must all be finite numbers")),
        })
        .collect()
}

fn loosest<T: Ord>(cmp: Cmp, values: impl Iterator<Item = T>) -> Option<T> {
    if cmp.wants_largest() {
        values.max()
    } else {
        values.min()
    }
}

fn number(field: &str, values: &[ClauseValue], cmp: Cmp) -> Result<Test, ValidationError> {
    let bound = loosest(cmp, numbers(field, values)?.into_iter().map(OrdF64))
        .ok_or_else(|| ValidationError::new(field, "must hold at least one value"))?;
    Ok(Test::Number(cmp, bound.0))
}

struct OrdF64(f64);
impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn versions(field: &str, values: &[ClauseValue]) -> Result<Vec<OwnedVersion>, ValidationError> {
    string_values(field, values, "semantic versions such as \"2.3.0\"")?
        .into_iter()
        .map(|text| {
            Version::parse(text).map(Version::to_owned).ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "{:?} is not a semantic version (e.g. \"2.3.0\")",
                        crate::echo(text)
                    ),
                )
            })
        })
        .collect()
}

fn semver(field: &str, values: &[ClauseValue], cmp: Cmp) -> Result<Test, ValidationError> {
    let versions = versions(field, values)?;
    let bound = loosest(cmp, versions.iter().map(OrdVersion))
        .ok_or_else(|| ValidationError::new(field, "must hold at least one value"))?;
    Ok(Test::Semver(cmp, bound.0.clone()))
}

struct OrdVersion<'a>(&'a OwnedVersion);
impl PartialEq for OrdVersion<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.view() == other.0.view()
    }
}
impl Eq for OrdVersion<'_> {}
impl PartialOrd for OrdVersion<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdVersion<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.view().cmp(&other.0.view())
    }
}

fn time(field: &str, values: &[ClauseValue], cmp: Cmp) -> Result<Test, ValidationError> {
    let millis = values
        .iter()
        .map(|value| {
            let attr = match value {
                ClauseValue::String(text) => Attr::Str(text),
                ClauseValue::Number(seconds) => Attr::Num(*seconds),
                ClauseValue::Bool(_) => Attr::Bool(false),
            };
            millis_of(attr).ok_or_else(|| {
                ValidationError::new(
                    field,
                    "must all be RFC 3339 times (\"2026-01-31T00:00:00Z\") or Unix seconds",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bound = loosest(cmp, millis.into_iter())
        .ok_or_else(|| ValidationError::new(field, "must hold at least one value"))?;
    Ok(Test::Time(cmp, bound))
}

fn regexes(field: &str, values: &[ClauseValue], folded: bool) -> Result<Test, ValidationError> {
    let patterns = string_values(field, values, "regular expressions")?
        .into_iter()
        .map(|pattern| {
            if pattern.len() > limits::REGEX_BYTES {
                return Err(ValidationError::new(
                    field,
                    format!("patterns must be at most {} bytes", limits::REGEX_BYTES),
                ));
            }
            regex::RegexBuilder::new(pattern)
                .case_insensitive(folded)
                .size_limit(limits::REGEX_COMPILED_BYTES)
                .dfa_size_limit(limits::REGEX_COMPILED_BYTES)
                .build()
                .map_err(|err| {
                    ValidationError::new(
                        field,
                        format!(
                            "{:?} is not a valid regular expression: {}",
                            crate::echo(pattern),
                            crate::echo(&err.to_string())
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Test::Regex(patterns.into()))
}

/// The time a `$now` clause compares: the evaluation's clock.
pub(crate) fn now_attr(now: DateTime<Utc>) -> Attr<'static> {
    Attr::Num(now.timestamp_millis() as f64 / 1000.0)
}
