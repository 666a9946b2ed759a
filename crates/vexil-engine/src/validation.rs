//! Input limits and the error that names the offending field.

/// Limits on what a flag may hold; documented in the README.
pub mod limits {
    /// Longest flag or group name, in characters (all ASCII).
    pub const NAME_CHARS: usize = 128;
    /// Most ids in a whitelist or blacklist.
    pub const LIST_IDS: usize = 10_000;
    /// Longest user id, environment or tag, in bytes.
    pub const ID_BYTES: usize = 256;
    /// Most tags on a flag.
    pub const TAGS: usize = 100;
    /// Most entries in `environments`, and in `environment_overrides`.
    pub const ENVIRONMENTS: usize = 100;
    /// Largest metadata, as JSON, in bytes.
    pub const METADATA_BYTES: usize = 64 * 1024;
    /// Longest description or reason, in bytes.
    pub const TEXT_BYTES: usize = 4096;
    /// Most flag names in one BulkEvaluate.
    pub const BULK_FLAGS: usize = 1000;
    /// Deepest nesting of objects and lists in metadata (the metadata object
    /// itself is level 1). Protobuf decoders stop at 100 nested messages and
    /// each level costs up to three (map entry, Value, Struct): 16 levels keep
    /// every answer carrying a flag, at any wrapping, far below that.
    pub const METADATA_DEPTH: usize = 16;
    /// Largest flag, measured by [`crate::FlagSpec::wire_size`] (an
    /// upper bound of its protobuf encoding): a change carrying one flag,
    /// and an audit entry carrying two, stay well under the 4 MiB that gRPC
    /// clients accept by default.
    pub const FLAG_BYTES: usize = 1024 * 1024;
    /// Budget of one answer holding several flags or audit entries (a Watch
    /// snapshot chunk, a ListFlags or GetAuditTrail page), by the same
    /// measure. A page stops before the item that would exceed it, but
    /// always holds at least one item.
    pub const MESSAGE_BYTES: usize = 3 * 1024 * 1024;
    /// Most variants of a typed flag (and weights in one split).
    pub const VARIANTS: usize = 100;
    /// Most targeting rules of a flag or segment.
    pub const RULES: usize = 200;
    /// Most clauses in one rule.
    pub const CLAUSES: usize = 32;
    /// Most values in one clause.
    pub const CLAUSE_VALUES: usize = 10_000;
    /// Most prerequisites of a flag.
    pub const PREREQUISITES: usize = 16;
    /// Longest regular expression, in bytes.
    pub const REGEX_BYTES: usize = 1024;
    /// Most memory one compiled regular expression may take (its program
    /// and its lazy DFA's cache each).
    pub const REGEX_COMPILED_BYTES: usize = 256 * 1024;
    /// Deepest chain of segments referring to segments that evaluation
    /// follows (writes refuse cycles; this bounds damaged data).
    pub const SEGMENT_DEPTH: u8 = 8;
    /// Most member names in a path attribute (`$.a.b.c`).
    pub const PATH_SEGMENTS: usize = 8;
}

/// `value` for an error message: at most 128 bytes, cut at a character
/// boundary and marked with an ellipsis, so an echoed input can never make a
/// status message too large for clients' header limits.
pub fn echo(value: &str) -> String {
    const MAX: usize = 128;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// A rejected input: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a flag or group name: 1-128 characters of `[A-Za-z0-9._-]`,
/// starting with a letter or digit.
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.len() > limits::NAME_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {} characters", limits::NAME_CHARS),
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(ValidationError::new(
            field,
            "must start with a letter or digit",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ValidationError::new(
            field,
            "may contain only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks a short identifier (user id, environment, tag): non-empty, at most
/// `limits::ID_BYTES` bytes.
pub(crate) fn validate_id(field: &str, id: &str) -> Result<(), ValidationError> {
    if id.is_empty() {
        return Err(ValidationError::new(
            field,
            "must not contain empty strings",
        ));
    }
    if id.len() > limits::ID_BYTES {
        return Err(ValidationError::new(
            field,
            format!("entries must be at most {} bytes", limits::ID_BYTES),
        ));
    }
    validate_text(field, id)
}

/// Checks free text (descriptions, reasons, metadata strings): no NUL
/// character, which PostgreSQL cannot store.
pub fn validate_text(field: &str, text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_caps_long_values_at_a_character_boundary() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(100);
        let echoed = echo(&long);
        assert!(echoed.len() <= 128 + '…'.len_utf8());
        assert!(echoed.ends_with('…'));
    }

    #[test]
    fn names() {
        for ok in [
            "a",
            "0",
            "ui.dashboard.new_layout",
            "checkout-v2",
            "A_b.c-d",
        ] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            ".a",
            "-a",
            "_a",
            "a b",
            "a/b",
            "é",
            "a:b",
            long.as_str(),
        ] {
            let err = validate_name("name", bad).unwrap_err();
            assert_eq!(err.field, "name", "{bad}");
        }
        assert!(validate_name("name", &"a".repeat(128)).is_ok());
    }
}
