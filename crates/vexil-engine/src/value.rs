//! What a flag serves: its type, and named variants holding values of it.

use serde::{Deserialize, Serialize};

use crate::Metadata;

/// The type of every value a flag serves. Boolean flags have the two
/// implicit variants `on` (true) and `off` (false); the others name their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagType {
    #[default]
    Boolean,
    String,
    Int,
    Float,
    Object,
}

impl FlagType {
    /// The type as the API spells it, without the `FLAG_TYPE_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Float => "FLOAT",
            Self::Object => "OBJECT",
        }
    }
}

/// A variant's value. Stored tagged by type, so an integer never comes
/// back as a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Bool(bool),
    String(String),
    Int(i64),
    Float(f64),
    Object(Metadata),
}

impl Value {
    pub fn flag_type(&self) -> FlagType {
        match self {
            Self::Bool(_) => FlagType::Boolean,
            Self::String(_) => FlagType::String,
            Self::Int(_) => FlagType::Int,
            Self::Float(_) => FlagType::Float,
            Self::Object(_) => FlagType::Object,
        }
    }

    /// The value as plain JSON: integers as integers, floats as floats.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Bool(value) => serde_json::Value::Bool(*value),
            Self::String(text) => serde_json::Value::String(text.clone()),
            Self::Int(number) => serde_json::Value::from(*number),
            Self::Float(number) => serde_json::Number::from_f64(*number)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Self::Object(object) => serde_json::Value::Object(object.clone()),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(on) => Some(*on),
            _ => None,
        }
    }
}

/// A named value a flag can serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The name of a boolean flag's variant serving true.
pub const ON: &str = "on";
/// The name of a boolean flag's variant serving false.
pub const OFF: &str = "off";
