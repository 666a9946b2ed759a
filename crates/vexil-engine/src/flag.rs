//! The flag: its validated name, the definition operators edit, and the
//! bookkeeping the store adds.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ahash::AHashSet;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compiled::{self, CompiledFlag, VariantIndex};
use crate::targeting::{Prerequisite, Serve, Target, TargetingRule};
use crate::validation::{ValidationError, limits, validate_id, validate_name, validate_text};
use crate::value::{FlagType, OFF, ON, Value, Variant};

/// Free-form JSON object attached to a flag.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A flag name that passed [`validate_name`]. Borrows as `str` so maps keyed
/// by it can be queried with a plain `&str` (no allocation per lookup).
/// Clones share one allocation: the flag and the cache's indexes all hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FlagName(Arc<str>);

impl FlagName {
    /// Validates `name`, reporting problems against `field`.
    pub fn parse(field: &str, name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        validate_name(field, &name)?;
        Ok(Self(Arc::from(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FlagName {
    type Error = ValidationError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse("name", name)
    }
}

impl From<FlagName> for String {
    fn from(name: FlagName) -> Self {
        name.0.to_string()
    }
}

impl Borrow<str> for FlagName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FlagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of user ids with O(1) membership tests, also kept sorted (built
/// once, when the flag is loaded) so snapshots, API answers and every Watch
/// subscriber list it deterministically without sorting again. The two
/// views share each id's allocation. An empty set (most flags' lists) is
/// one null pointer, not an empty hash table.
#[derive(Debug, Clone, Default)]
pub struct UserSet {
    ids: Option<Box<Ids>>,
}

#[derive(Debug, Clone)]
struct Ids {
    lookup: AHashSet<Arc<str>>,
    sorted: Vec<Arc<str>>,
}

impl UserSet {
    /// Builds a set from request input, checking the count and every id
    /// before sorting or hashing anything, so an oversized list costs no
    /// more than its decoding did.
    pub fn parse(field: &str, ids: Vec<String>) -> Result<Self, ValidationError> {
        if ids.len() > limits::LIST_IDS {
            return Err(ValidationError::new(
                field,
                format!("must hold at most {} ids", limits::LIST_IDS),
            ));
        }
        for id in &ids {
            validate_id(field, id)?;
        }
        Ok(ids.into_iter().collect())
    }

    /// Checks the count and every id of a set built without [`Self::parse`]
    /// (deserialized), naming `field`.
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if self.len() > limits::LIST_IDS {
            return Err(ValidationError::new(
                field,
                format!("must hold at most {} ids", limits::LIST_IDS),
            ));
        }
        self.iter().try_for_each(|id| validate_id(field, id))
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.ids
            .as_ref()
            .is_some_and(|ids| ids.lookup.contains(user_id))
    }

    pub fn len(&self) -> usize {
        self.sorted().len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_none()
    }

    /// The ids in ascending byte order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.sorted().iter().map(|id| id.as_ref())
    }

    fn sorted(&self) -> &[Arc<str>] {
        self.ids.as_deref().map_or(&[], |ids| &ids.sorted)
    }
}

impl PartialEq for UserSet {
    fn eq(&self, other: &Self) -> bool {
        self.sorted() == other.sorted()
    }
}

impl FromIterator<String> for UserSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut sorted: Vec<Arc<str>> = iter.into_iter().map(Arc::from).collect();
        if sorted.is_empty() {
            return Self::default();
        }
        sorted.sort_unstable();
        sorted.dedup();
        let lookup = sorted.iter().cloned().collect();
        Self {
            ids: Some(Box::new(Ids { lookup, sorted })),
        }
    }
}

impl Serialize for UserSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for UserSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(|ids| ids.into_iter().collect())
    }
}

/// What operators define about a flag: everything but its name and bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlagSpec {
    pub description: String,
    /// The kill switch.
    pub enabled: bool,
    /// 0-100, fractions allowed.
    pub percentage: f64,
    pub whitelist: UserSet,
    pub blacklist: UserSet,
    /// Environments where the flag may be on; empty means all.
    pub environments: Vec<String>,
    pub environment_overrides: BTreeMap<String, bool>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub metadata: Metadata,
    pub group: Option<String>,
    /// The type of every value served. Fixed when the flag is created.
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// Typed flags' variants (boolean flags have `on` and `off`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// Typed flags: served when off; unset serves no value (callers'
    /// code defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub off_variant: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TargetingRule>,
    /// What no rule decided serves. Required for typed flags; boolean
    /// flags without one serve their `percentage` rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallthrough: Option<Serve>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
}

/// The fields of a [`FlagSpec`] an update can name (the update mask's paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagField {
    Description,
    Enabled,
    Percentage,
    Whitelist,
    Blacklist,
    Environments,
    EnvironmentOverrides,
    StartsAt,
    ExpiresAt,
    Tags,
    Metadata,
    Group,
    Variants,
    OffVariant,
    Targets,
    Rules,
    Fallthrough,
    Prerequisites,
}

impl FlagField {
    pub const ALL: [FlagField; 18] = [
        Self::Description,
        Self::Enabled,
        Self::Percentage,
        Self::Whitelist,
        Self::Blacklist,
        Self::Environments,
        Self::EnvironmentOverrides,
        Self::StartsAt,
        Self::ExpiresAt,
        Self::Tags,
        Self::Metadata,
        Self::Group,
        Self::Variants,
        Self::OffVariant,
        Self::Targets,
        Self::Rules,
        Self::Fallthrough,
        Self::Prerequisites,
    ];

    /// The field's name in the API (and in update masks).
    pub fn path(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Enabled => "enabled",
            Self::Percentage => "percentage",
            Self::Whitelist => "whitelist",
            Self::Blacklist => "blacklist",
            Self::Environments => "environments",
            Self::EnvironmentOverrides => "environment_overrides",
            Self::StartsAt => "starts_at",
            Self::ExpiresAt => "expires_at",
            Self::Tags => "tags",
            Self::Metadata => "metadata",
            Self::Group => "group",
            Self::Variants => "variants",
            Self::OffVariant => "off_variant",
            Self::Targets => "targets",
            Self::Rules => "rules",
            Self::Fallthrough => "fallthrough",
            Self::Prerequisites => "prerequisites",
        }
    }

    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.path() == path)
    }
}

impl FlagSpec {
    /// Whether the flag names `environment` (in `environments` or as an
    /// override): metrics count such environments on their own.
    pub fn names_environment(&self, environment: &str) -> bool {
        self.environments.iter().any(|named| named == environment)
            || self.environment_overrides.contains_key(environment)
    }

    /// Copies the named fields from `source` into `self`, leaving the rest.
    pub fn merge(&mut self, mut source: FlagSpec, fields: &[FlagField]) {
        for field in fields {
            match field {
                FlagField::Description => {
                    self.description = std::mem::take(&mut source.description)
                }
                FlagField::Enabled => self.enabled = source.enabled,
                FlagField::Percentage => self.percentage = source.percentage,
                FlagField::Whitelist => self.whitelist = std::mem::take(&mut source.whitelist),
                FlagField::Blacklist => self.blacklist = std::mem::take(&mut source.blacklist),
                FlagField::Environments => {
                    self.environments = std::mem::take(&mut source.environments)
                }
                FlagField::EnvironmentOverrides => {
                    self.environment_overrides = std::mem::take(&mut source.environment_overrides)
                }
                FlagField::StartsAt => self.starts_at = source.starts_at,
                FlagField::ExpiresAt => self.expires_at = source.expires_at,
                FlagField::Tags => self.tags = std::mem::take(&mut source.tags),
                FlagField::Metadata => self.metadata = std::mem::take(&mut source.metadata),
                FlagField::Group => self.group = source.group.take(),
                FlagField::Variants => self.variants = std::mem::take(&mut source.variants),
                FlagField::OffVariant => self.off_variant = source.off_variant.take(),
                FlagField::Targets => self.targets = std::mem::take(&mut source.targets),
                FlagField::Rules => self.rules = std::mem::take(&mut source.rules),
                FlagField::Fallthrough => self.fallthrough = source.fallthrough.take(),
                FlagField::Prerequisites => {
                    self.prerequisites = std::mem::take(&mut source.prerequisites)
                }
            }
        }
    }

    /// Checks every limit; the error names the field as `prefix.field`.
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        let field = |name: &str| format!("{prefix}.{name}");

        if self.description.len() > limits::TEXT_BYTES {
            return Err(ValidationError::new(
                field("description"),
                format!("must be at most {} bytes", limits::TEXT_BYTES),
            ));
        }
        validate_text(&field("description"), &self.description)?;
        if !self.percentage.is_finite() || !(0.0..=100.0).contains(&self.percentage) {
            return Err(ValidationError::new(
                field("percentage"),
                "must be a number from 0 to 100",
            ));
        }
        self.whitelist.validate(&field("whitelist"))?;
        self.blacklist.validate(&field("blacklist"))?;
        if self.environments.len() > limits::ENVIRONMENTS {
            return Err(ValidationError::new(
                field("environments"),
                format!("must hold at most {} entries", limits::ENVIRONMENTS),
            ));
        }
        for environment in &self.environments {
            validate_id(&field("environments"), environment)?;
        }
        if self.environment_overrides.len() > limits::ENVIRONMENTS {
            return Err(ValidationError::new(
                field("environment_overrides"),
                format!("must hold at most {} entries", limits::ENVIRONMENTS),
            ));
        }
        for environment in self.environment_overrides.keys() {
            validate_id(&field("environment_overrides"), environment)?;
        }
        if let (Some(starts_at), Some(expires_at)) = (self.starts_at, self.expires_at)
            && starts_at >= expires_at
        {
            return Err(ValidationError::new(
                field("expires_at"),
                "must be later than starts_at",
            ));
        }
        if self.tags.len() > limits::TAGS {
            return Err(ValidationError::new(
                field("tags"),
                format!("must hold at most {} tags", limits::TAGS),
            ));
        }
        for tag in &self.tags {
            validate_id(&field("tags"), tag)?;
        }
        check_json_object(&field("metadata"), &self.metadata)?;
        if let Some(group) = &self.group {
            validate_name(&field("group"), group)?;
        }
        compiled::check(prefix, self)?;
        let size = self.wire_size();
        if size > limits::FLAG_BYTES {
            return Err(ValidationError::new(
                prefix,
                format!(
                    "is too large: {size} bytes encoded, at most {} allowed \
                     (ids, tags, environments and metadata together)",
                    limits::FLAG_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// An upper bound of the size of a flag with this spec in a protobuf
    /// message, bookkeeping included: every string's bytes plus the most
    /// its tags and length prefixes can take. Limits and message budgets are
    /// counted in it, so it must never be less than the real encoding.
    pub fn wire_size(&self) -> usize {
        /// Name, revision, timestamps, actors (at most 256 bytes each),
        /// booleans and the percentage, with their tags.
        const BOOKKEEPING: usize = 1024;
        /// Tag and length prefix of a repeated string of at most 256 bytes.
        const LIST_ITEM: usize = 4;
        /// A map<string, bool> entry: entry tag and length, key tag and
        /// length, the bool.
        const MAP_ENTRY: usize = 8;
        let strings = |items: &mut dyn Iterator<Item = &str>| {
            items.map(|item| item.len() + LIST_ITEM).sum::<usize>()
        };
        BOOKKEEPING
            + self.description.len()
            + LIST_ITEM
            + strings(&mut self.whitelist.iter())
            + strings(&mut self.blacklist.iter())
            + strings(&mut self.environments.iter().map(String::as_str))
            + strings(&mut self.tags.iter().map(String::as_str))
            + self
                .environment_overrides
                .keys()
                .map(|env| env.len() + MAP_ENTRY)
                .sum::<usize>()
            + object_wire_size(&self.metadata)
            + self
                .group
                .as_ref()
                .map_or(0, |group| group.len() + LIST_ITEM)
            + self.targeting_wire_size()
    }

    /// [`Self::wire_size`]'s share for variants and targeting: every
    /// string's bytes plus a generous 16 bytes of framing per item.
    fn targeting_wire_size(&self) -> usize {
        const ITEM: usize = 16;
        let text = |text: &str| text.len() + ITEM;
        let serve = |serve: &Serve| match serve {
            Serve::Variant(name) => text(name),
            Serve::Split(split) => {
                ITEM + text(&split.bucket_by)
                    + split.salt.as_deref().map_or(0, text)
                    + split
                        .weights
                        .iter()
                        .map(|weighted| text(&weighted.variant) + ITEM)
                        .sum::<usize>()
            }
        };
        let clauses = clauses_wire_size;
        self.variants
            .iter()
            .map(|variant| {
                text(&variant.name)
                    + text(&variant.description)
                    + match &variant.value {
                        Value::String(s) => text(s),
                        Value::Object(object) => object_wire_size(object),
                        _ => ITEM,
                    }
            })
            .sum::<usize>()
            + self.off_variant.as_deref().map_or(0, text)
            + self
                .targets
                .iter()
                .map(|target| {
                    text(&target.variant)
                        + target.user_ids.iter().map(|id| id.len() + 4).sum::<usize>()
                })
                .sum::<usize>()
            + self
                .rules
                .iter()
                .map(|rule| {
                    text(&rule.id)
                        + text(&rule.description)
                        + clauses(&rule.clauses)
                        + serve(&rule.serve)
                })
                .sum::<usize>()
            + self.fallthrough.as_ref().map_or(0, serve)
            + self
                .prerequisites
                .iter()
                .map(|p| text(&p.flag) + p.variants.iter().map(|v| text(v)).sum::<usize>())
                .sum::<usize>()
    }

    /// The engine version needed to evaluate this flag: 1 for boolean
    /// flags using only the fields every engine knows, 3 for splits with
    /// flagd's bucketing or paths into the context, 2 for anything else. Older clients must not
    /// evaluate such a flag.
    pub fn min_engine(&self) -> u32 {
        let plain = self.flag_type == FlagType::Boolean
            && self.variants.is_empty()
            && self.off_variant.is_none()
            && self.targets.is_empty()
            && self.rules.is_empty()
            && self.fallthrough.is_none()
            && self.prerequisites.is_empty();
        if plain {
            1
        } else if self.needs_engine_3() {
            3
        } else {
            2
        }
    }

    /// Splits with flagd's bucketing, or paths into the context's objects:
    /// what engine 2 does not know.
    fn needs_engine_3(&self) -> bool {
        let path = |attribute: &str| attribute.starts_with(crate::PATH);
        let serves = self
            .rules
            .iter()
            .map(|rule| &rule.serve)
            .chain(&self.fallthrough);
        let new_split = |serve: &Serve| {
            matches!(serve, Serve::Split(split)
                if split.bucketing == crate::Bucketing::Flagd || path(&split.bucket_by))
        };
        serves.into_iter().any(new_split)
            || self
                .rules
                .iter()
                .flat_map(|rule| &rule.clauses)
                .any(|clause| path(&clause.attribute))
    }

    /// The segments this spec's rules refer to.
    pub fn referenced_segments(&self) -> impl Iterator<Item = &str> {
        crate::targeting::segments_named(self.rules.iter().flat_map(|rule| &rule.clauses))
    }
}

/// An upper bound of `clauses`' protobuf size: every string's bytes plus
/// 16 bytes of framing per item.
pub(crate) fn clauses_wire_size(clauses: &[crate::targeting::Clause]) -> usize {
    const ITEM: usize = 16;
    clauses
        .iter()
        .map(|clause| {
            clause.attribute.len()
                + 2 * ITEM
                + clause
                    .values
                    .iter()
                    .map(|value| match value {
                        crate::ClauseValue::String(s) => s.len() + ITEM,
                        _ => ITEM,
                    })
                    .sum::<usize>()
        })
        .sum()
}

/// Checks a JSON object held by a flag (metadata, object variants): depth,
/// size and text.
pub(crate) fn check_json_object(field: &str, object: &Metadata) -> Result<(), ValidationError> {
    if object_depth(object) > limits::METADATA_DEPTH {
        return Err(ValidationError::new(
            field,
            format!(
                "must nest objects and lists at most {} levels deep",
                limits::METADATA_DEPTH
            ),
        ));
    }
    let bytes = serde_json::to_vec(object).map_or(usize::MAX, |json| json.len());
    if bytes > limits::METADATA_BYTES {
        return Err(ValidationError::new(
            field,
            format!("must be at most {} bytes as JSON", limits::METADATA_BYTES),
        ));
    }
    validate_json_text(field, object)
}

/// Tag and length prefixes of one JSON node as a `google.protobuf.Value`
/// (and, for object members, its map entry and key): generous.
const JSON_NODE: usize = 16;

fn object_wire_size(object: &Metadata) -> usize {
    JSON_NODE
        + object
            .iter()
            .map(|(key, value)| JSON_NODE + key.len() + json_wire_size(value))
            .sum::<usize>()
}

fn json_wire_size(value: &serde_json::Value) -> usize {
    use serde_json::Value as Json;
    JSON_NODE
        + match value {
            Json::Null | Json::Bool(_) | Json::Number(_) => 8,
            Json::String(text) => text.len(),
            Json::Array(items) => items.iter().map(json_wire_size).sum(),
            Json::Object(object) => object_wire_size(object),
        }
}

/// How deeply `object` nests objects and lists; the object itself is 1.
fn object_depth(object: &Metadata) -> usize {
    fn depth(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            serde_json::Value::Object(object) => object_depth(object),
            _ => 0,
        }
    }
    1 + object.values().map(depth).max().unwrap_or(0)
}

/// Checks every key and string in `metadata` with [`validate_text`].
fn validate_json_text(field: &str, metadata: &Metadata) -> Result<(), ValidationError> {
    fn walk(field: &str, value: &serde_json::Value) -> Result<(), ValidationError> {
        match value {
            serde_json::Value::String(text) => validate_text(field, text),
            serde_json::Value::Array(items) => items.iter().try_for_each(|item| walk(field, item)),
            serde_json::Value::Object(map) => validate_json_text(field, map),
            _ => Ok(()),
        }
    }
    for (key, value) in metadata {
        validate_text(field, key)?;
        walk(field, value)?;
    }
    Ok(())
}

/// A stored flag: name, definition, and the store's bookkeeping, with
/// its targeting compiled once, when it is built. The definition is
/// read-only; a changed flag is a new `Flag`.
#[derive(Debug, Deserialize)]
#[serde(from = "FlagRecord<FlagSpec>")]
pub struct Flag {
    pub name: FlagName,
    spec: FlagSpec,
    /// Global revision of the flag's last change.
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    compiled: CompiledFlag,
}

/// A flag's bookkeeping, kept by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
}

/// A flag as stored and sent: the name, the spec's fields, the bookkeeping.
#[derive(Serialize, Deserialize)]
struct FlagRecord<S> {
    name: FlagName,
    #[serde(flatten)]
    spec: S,
    revision: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: String,
    updated_by: String,
}

impl From<FlagRecord<FlagSpec>> for Flag {
    fn from(record: FlagRecord<FlagSpec>) -> Self {
        Flag::new(
            record.name,
            record.spec,
            Stamp {
                revision: record.revision,
                created_at: record.created_at,
                updated_at: record.updated_at,
                created_by: record.created_by,
                updated_by: record.updated_by,
            },
        )
    }
}

impl Serialize for Flag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FlagRecord {
            name: self.name.clone(),
            spec: &self.spec,
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by.clone(),
            updated_by: self.updated_by.clone(),
        }
        .serialize(serializer)
    }
}

impl Clone for Flag {
    fn clone(&self) -> Self {
        Flag::new(self.name.clone(), self.spec.clone(), self.stamp())
    }
}

impl PartialEq for Flag {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.spec == other.spec && self.stamp() == other.stamp()
    }
}

impl Flag {
    /// Builds a flag, compiling its targeting.
    pub fn new(name: FlagName, spec: FlagSpec, stamp: Stamp) -> Self {
        let compiled = compiled::compile(&spec);
        Self {
            name,
            spec,
            revision: stamp.revision,
            created_at: stamp.created_at,
            updated_at: stamp.updated_at,
            created_by: stamp.created_by,
            updated_by: stamp.updated_by,
            compiled,
        }
    }

    pub fn spec(&self) -> &FlagSpec {
        &self.spec
    }

    pub fn into_spec(self) -> FlagSpec {
        self.spec
    }

    pub fn stamp(&self) -> Stamp {
        Stamp {
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by.clone(),
            updated_by: self.updated_by.clone(),
        }
    }

    pub fn flag_type(&self) -> FlagType {
        self.spec.flag_type
    }

    /// The variants the flag serves: boolean flags' `on` and `off`, or the
    /// spec's.
    pub fn variants(&self) -> &[Variant] {
        match self.spec.flag_type {
            FlagType::Boolean => boolean_variants(),
            _ => &self.spec.variants,
        }
    }

    /// The variant at `index`.
    pub fn variant(&self, index: VariantIndex) -> Option<&Variant> {
        self.variants().get(usize::from(index))
    }

    /// The index of the variant named `name`.
    pub fn variant_index(&self, name: &str) -> Option<VariantIndex> {
        compiled::variant_index(&self.spec, name)
    }

    pub(crate) fn compiled(&self) -> &CompiledFlag {
        &self.compiled
    }

    /// An upper bound of the flag's protobuf size ([`FlagSpec::wire_size`]).
    pub fn wire_size(&self) -> usize {
        self.spec.wire_size()
    }
}

/// A boolean flag's variants: `on` (true) and `off` (false).
pub fn boolean_variants() -> &'static [Variant] {
    static VARIANTS: std::sync::LazyLock<[Variant; 2]> = std::sync::LazyLock::new(|| {
        [
            Variant {
                name: ON.into(),
                value: Value::Bool(true),
                description: String::new(),
            },
            Variant {
                name: OFF.into(),
                value: Value::Bool(false),
                description: String::new(),
            },
        ]
    });
    &*VARIANTS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> FlagSpec {
        FlagSpec {
            percentage: 12.5,
            whitelist: ["u1".to_string()].into_iter().collect(),
            environments: vec!["prod".into()],
            ..FlagSpec::default()
        }
    }

    fn rejected_field(spec: FlagSpec) -> String {
        spec.validate("flag").unwrap_err().field
    }

    #[test]
    fn accepts_a_valid_spec() {
        assert_eq!(valid().validate("flag"), Ok(()));
    }

    #[test]
    fn rejects_each_limit_naming_the_field() {
        let with = |change: fn(&mut FlagSpec)| {
            let mut spec = valid();
            change(&mut spec);
            rejected_field(spec)
        };
        assert_eq!(with(|s| s.percentage = 100.5), "flag.percentage");
        assert_eq!(with(|s| s.percentage = -1.0), "flag.percentage");
        assert_eq!(with(|s| s.percentage = f64::NAN), "flag.percentage");
        assert_eq!(
            with(|s| s.blacklist = [String::new()].into_iter().collect()),
            "flag.blacklist"
        );
        assert_eq!(
            with(|s| s.whitelist = (0..10_001).map(|i| i.to_string()).collect()),
            "flag.whitelist"
        );
        assert_eq!(with(|s| s.tags = vec!["x".repeat(257)]), "flag.tags");
        assert_eq!(with(|s| s.tags = vec!["a\0b".into()]), "flag.tags");
        assert_eq!(with(|s| s.description = "a\0".into()), "flag.description");
        assert_eq!(
            with(|s| {
                s.metadata
                    .insert("k".into(), serde_json::json!(["ok", {"x": "a\0"}]));
            }),
            "flag.metadata"
        );
        assert_eq!(with(|s| s.group = Some("bad name".into())), "flag.group");
        assert_eq!(
            with(|s| {
                s.starts_at = Some(DateTime::UNIX_EPOCH);
                s.expires_at = Some(DateTime::UNIX_EPOCH);
            }),
            "flag.expires_at"
        );
    }

    #[test]
    fn metadata_depth_is_limited() {
        // Metadata nesting `depth` levels: the metadata object holding
        // `depth - 1` alternating lists and objects.
        let nested = |depth: usize| {
            let mut value = serde_json::json!(1);
            for level in 1..depth {
                value = if level % 2 == 0 {
                    serde_json::json!({ "k": value })
                } else {
                    serde_json::json!([value])
                };
            }
            let mut spec = valid();
            spec.metadata.insert("k".into(), value);
            spec
        };
        assert_eq!(nested(limits::METADATA_DEPTH).validate("flag"), Ok(()));
        assert_eq!(
            rejected_field(nested(limits::METADATA_DEPTH + 1)),
            "flag.metadata"
        );
    }

    #[test]
    fn flag_size_is_bounded() {
        let ids = |prefix: &str, len: usize| {
            (0..limits::LIST_IDS)
                .map(|i| format!("{prefix}{i:0>len$}"))
                .collect::<UserSet>()
        };
        let mut spec = valid();
        spec.whitelist = ids("w", 40);
        spec.blacklist = ids("b", 40);
        assert_eq!(spec.validate("flag"), Ok(()));
        spec.blacklist = ids("b", 60);
        assert_eq!(rejected_field(spec), "flag");
    }

    #[test]
    fn user_sets_check_before_building() {
        let too_many = vec!["x".to_string(); limits::LIST_IDS + 1];
        assert_eq!(UserSet::parse("w", too_many).unwrap_err().field, "w");
        let empty_id = vec![String::new()];
        assert_eq!(UserSet::parse("w", empty_id).unwrap_err().field, "w");
        let set = UserSet::parse("w", vec!["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn merge_copies_only_named_fields() {
        let mut target = valid();
        let source = FlagSpec {
            enabled: true,
            percentage: 50.0,
            description: "new".into(),
            ..FlagSpec::default()
        };
        target.merge(source, &[FlagField::Percentage, FlagField::Enabled]);
        assert!(target.enabled);
        assert_eq!(target.percentage, 50.0);
        assert_eq!(target.description, "");
        assert!(target.whitelist.contains("u1"));
        assert_eq!(target.environments, vec!["prod".to_string()]);
    }

    #[test]
    fn every_field_has_a_path() {
        for field in FlagField::ALL {
            assert_eq!(FlagField::from_path(field.path()), Some(field));
        }
        assert_eq!(FlagField::from_path("name"), None);
    }
}
