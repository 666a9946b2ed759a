//! Semantic versions compared by SemVer 2.0 precedence (so 1.10.0 > 1.9.0),
//! parsed without allocating: the pre-release stays a slice of the input.
//!
//! Accepted: `MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`, with an optional
//! leading `v`; missing parts are 0 ("2.3" is 2.3.0). Build metadata is
//! ignored, as SemVer says.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    core: [u64; 3],
    /// Dot-separated identifiers; empty for a release.
    pre: &'a str,
}

impl<'a> Version<'a> {
    /// One pass over the bytes: this runs per evaluation, on the context.
    pub fn parse(text: &'a str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut at = usize::from(bytes.first() == Some(&b'v'));
        let mut core = [0u64; 3];
        let mut parts = 0;
        loop {
            let start = at;
            let mut value = 0u64;
            while let Some(digit) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
                value = value
                    .checked_mul(10)?
                    .checked_add(u64::from(digit - b'0'))?;
                at += 1;
            }
            // Empty, or a leading zero (SemVer forbids them).
            if at == start || (at - start > 1 && bytes[start] == b'0') {
                return None;
            }
            core[parts] = value;
            parts += 1;
            match bytes.get(at) {
                Some(b'.') if parts < 3 => at += 1,
                _ => break,
            }
        }
        let rest = &text[at..];
        let (pre, build) = match rest.as_bytes().first() {
            None => ("", None),
            Some(b'-') => match rest[1..].split_once('+') {
                Some((pre, build)) => (pre, Some(build)),
                None => (&rest[1..], None),
            },
            Some(b'+') => ("", Some(&rest[1..])),
            Some(_) => return None,
        };
        if rest.starts_with('-') && (!valid_identifiers(pre) || !pre_numbers_valid(pre)) {
            return None;
        }
        if build.is_some_and(|build| !valid_identifiers(build)) {
            return None;
        }
        Some(Self { core, pre })
    }

    /// Major, minor and patch (missing parts are 0).
    pub fn core(&self) -> [u64; 3] {
        self.core
    }

    /// Owned copy, for clause values compiled once.
    pub fn to_owned(self) -> OwnedVersion {
        OwnedVersion {
            core: self.core,
            pre: self.pre.into(),
        }
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| compare_pre(self.pre, other.pre))
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A version held by a compiled clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVersion {
    core: [u64; 3],
    pre: Box<str>,
}

impl OwnedVersion {
    pub fn view(&self) -> Version<'_> {
        Version {
            core: self.core,
            pre: &self.pre,
        }
    }
}

fn valid_identifiers(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|identifier| {
            !identifier.is_empty()
                && identifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Numeric pre-release identifiers must not have leading zeros.
fn pre_numbers_valid(pre: &str) -> bool {
    pre.split('.').all(|identifier| {
        !identifier.bytes().all(|b| b.is_ascii_digit())
            || identifier.len() == 1
            || !identifier.starts_with('0')
    })
}

/// SemVer 2.0 §11: a release ranks above its pre-releases; identifiers
/// compare numerically when both are numbers, numbers rank below words,
/// words compare by ASCII, and a shorter list that is a prefix ranks lower.
fn compare_pre(left: &str, right: &str) -> Ordering {
    match (left.is_empty(), right.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut lefts = left.split('.');
    let mut rights = right.split('.');
    loop {
        match (lefts.next(), rights.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(l), Some(r)) => {
                let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
                let order = match (numeric(l), numeric(r)) {
                    (true, true) => l.len().cmp(&r.len()).then_with(|| l.cmp(r)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => l.cmp(r),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version<'_> {
        Version::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn orders_by_precedence() {
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.9.0",
            "1.10.0",
            "2.3",
            "2.3.1",
            "v10.0.0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("2.3"), v("2.3.0"));
        assert_eq!(v("1.0.0+build.5"), v("1.0.0"));
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for bad in [
            "",
            "a.b.c",
            "1.2.3.4",
            "01.2.3",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3-01",
            "1..2",
            "-1.0.0",
            "1.2.3+",
            " 1.2.3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }
}
