//! Segments: named audiences that clauses refer to (`in_segment`). A user
//! is in a segment when listed in `included`, or when not listed in
//! `excluded` and any of its rules matches.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compiled::{check_clauses, check_description};
use crate::matcher::{Matcher, Scope};
use crate::targeting::SegmentRule;
use crate::validation::{ValidationError, limits};
use crate::{FlagName, UserSet};

/// What operators define about a segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentSpec {
    pub description: String,
    pub included: UserSet,
    pub excluded: UserSet,
    pub rules: Vec<SegmentRule>,
}

impl SegmentSpec {
    /// Checks every limit; errors name the field as `prefix.field`.
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        let field = |name: &str| format!("{prefix}.{name}");
        check_description(&field("description"), &self.description)?;
        self.included.validate(&field("included"))?;
        self.excluded.validate(&field("excluded"))?;
        if self.rules.len() > limits::RULES {
            return Err(ValidationError::new(
                field("rules"),
                format!("must hold at most {} rules", limits::RULES),
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = field(&format!("rules[{i}]"));
            check_description(&format!("{at}.description"), &rule.description)?;
            check_clauses(&at, &rule.clauses)?;
        }
        let size = self.wire_size();
        if size > limits::FLAG_BYTES {
            return Err(ValidationError::new(
                prefix,
                format!(
                    "is too large: {size} bytes encoded, at most {} allowed",
                    limits::FLAG_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// An upper bound of the size of a segment with this spec in a
    /// protobuf message, bookkeeping included (as `FlagSpec::wire_size`).
    pub fn wire_size(&self) -> usize {
        /// Name, revision, timestamps and actors, with their tags.
        const BOOKKEEPING: usize = 1024;
        /// Framing of a list item or a rule.
        const ITEM: usize = 16;
        let ids = |set: &UserSet| set.iter().map(|id| id.len() + 4).sum::<usize>();
        BOOKKEEPING
            + self.description.len()
            + ids(&self.included)
            + ids(&self.excluded)
            + self
                .rules
                .iter()
                .map(|rule| {
                    ITEM + rule.description.len() + crate::flag::clauses_wire_size(&rule.clauses)
                })
                .sum::<usize>()
    }

    /// The segments this one's rules refer to.
    pub fn referenced_segments(&self) -> impl Iterator<Item = &str> {
        crate::targeting::segments_named(self.rules.iter().flat_map(|rule| &rule.clauses))
    }
}

/// A stored segment, compiled.
#[derive(Debug, Serialize, Deserialize)]
#[serde(from = "SegmentRecord")]
pub struct Segment {
    pub name: FlagName,
    #[serde(flatten)]
    spec: SegmentSpec,
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    #[serde(skip)]
    rules: Box<[Box<[Matcher]>]>,
}

#[derive(Deserialize)]
struct SegmentRecord {
    name: FlagName,
    #[serde(flatten)]
    spec: SegmentSpec,
    revision: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: String,
    updated_by: String,
}

impl From<SegmentRecord> for Segment {
    fn from(record: SegmentRecord) -> Self {
        let mut segment =
            Segment::new(record.name, record.spec, record.revision, record.created_at);
        segment.updated_at = record.updated_at;
        segment.created_by = record.created_by;
        segment.updated_by = record.updated_by;
        segment
    }
}

impl Clone for Segment {
    fn clone(&self) -> Self {
        let mut segment = Segment::new(
            self.name.clone(),
            self.spec.clone(),
            self.revision,
            self.created_at,
        );
        segment.updated_at = self.updated_at;
        segment.created_by.clone_from(&self.created_by);
        segment.updated_by.clone_from(&self.updated_by);
        segment
    }
}

impl PartialEq for Segment {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.spec == other.spec
            && self.revision == other.revision
            && self.created_at == other.created_at
            && self.updated_at == other.updated_at
            && self.created_by == other.created_by
            && self.updated_by == other.updated_by
    }
}

impl Segment {
    /// Compiles `spec`; the bookkeeping starts as created at `created_at`
    /// by nobody (set the public fields after).
    pub fn new(
        name: FlagName,
        spec: SegmentSpec,
        revision: u64,
        created_at: DateTime<Utc>,
    ) -> Self {
        let rules = spec
            .rules
            .iter()
            .map(|rule| rule.clauses.iter().map(Matcher::compile_stored).collect())
            .collect();
        Self {
            name,
            spec,
            revision,
            created_at,
            updated_at: created_at,
            created_by: String::new(),
            updated_by: String::new(),
            rules,
        }
    }

    pub fn spec(&self) -> &SegmentSpec {
        &self.spec
    }

    /// See [`SegmentSpec::wire_size`].
    pub fn wire_size(&self) -> usize {
        self.spec.wire_size()
    }

    pub fn into_spec(self) -> SegmentSpec {
        self.spec
    }

    /// Whether the user (and context) `scope` reads is in this segment.
    pub(crate) fn contains(&self, user_id: &str, scope: &impl Scope) -> bool {
        if !user_id.is_empty() {
            if self.spec.excluded.contains(user_id) {
                return false;
            }
            if self.spec.included.contains(user_id) {
                return true;
            }
        }
        self.rules.iter().any(|clauses| {
            !clauses.is_empty() && clauses.iter().all(|clause| clause.matches(scope))
        })
    }
}
