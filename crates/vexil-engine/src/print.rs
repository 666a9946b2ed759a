//! Short byte strings compared in registers. Comparing slices calls
//! `memcmp`, which costs more than the compare for the few bytes attribute
//! names and clause values usually have.

/// A byte string's length and its first and last 8 bytes (fewer for
/// shorter strings). Up to 16 bytes the print is the string itself, so
/// equal prints mean equal strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Print {
    len: usize,
    head: u64,
    tail: u64,
}

impl Print {
    #[inline]
    pub(crate) fn of(text: &str) -> Self {
        Self::of_bytes(text.as_bytes())
    }

    #[inline]
    pub(crate) fn of_bytes(bytes: &[u8]) -> Self {
        let len = bytes.len();
        let word = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let half = |at: usize| {
            let mut half = [0; 4];
            half.copy_from_slice(&bytes[at..at + 4]);
            u64::from(u32::from_le_bytes(half))
        };
        let (head, tail) = match len {
            0 => (0, 0),
            1..4 => (
                u64::from(bytes[0])
                    | u64::from(bytes[len / 2]) << 8
                    | u64::from(bytes[len - 1]) << 16,
                0,
            ),
            4..8 => (half(0) | half(len - 4) << 32, 0),
            _ => (word(0), word(len - 8)),
        };
        Self { len, head, tail }
    }

    /// Whether the print holds every byte of its string.
    #[inline]
    pub(crate) fn is_whole(self) -> bool {
        self.len <= 16
    }
}

/// `a == b`, without a `memcmp` call for strings of up to 16 bytes.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        Print::of_bytes(a) == Print::of_bytes(b)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_prints_are_equal_strings_up_to_16_bytes() {
        let texts: Vec<String> = (0..=17)
            .flat_map(|len| {
                (0..len).map(move |flip| {
                    let mut text = vec![b'a'; len];
                    text[flip] = b'b';
                    String::from_utf8(text).unwrap_or_default()
                })
            })
            .chain((0..=17).map(|len| "a".repeat(len)))
            .collect();
        for a in &texts {
            for b in &texts {
                assert_eq!(bytes_eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
                if a.len() <= 16 {
                    assert_eq!(Print::of(a) == Print::of(b), a == b, "{a:?} {b:?}");
                }
            }
        }
    }
}
