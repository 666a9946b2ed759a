//! Deterministic percentage bucketing, identical in every process, platform,
//! version and language (see docs/bucketing.md and its test vectors):
//!
//! `bucket = (murmur3_x86_32(flag_name + ":" + user_id, seed 0) * 10_000) >> 32`
//!
//! Never use a randomly seeded hasher here (ahash, std's `RandomState`).

/// Number of buckets: one per basis point (0.01 %).
pub const BUCKETS: u32 = 10_000;

/// The user's bucket for a flag, in `0..BUCKETS`.
pub fn bucket(flag_name: &str, user_id: &str) -> u32 {
    let mut hasher = Murmur3::new(0);
    hasher.write(flag_name.as_bytes());
    hasher.write(b":");
    hasher.write(user_id.as_bytes());
    ((u64::from(hasher.finish()) * u64::from(BUCKETS)) >> 32) as u32
}

/// A flagd `fractional` bucket, for flags imported from flagd so that
/// every user keeps the variant flagd served: the key is the salt and the
/// value concatenated without a separator, and the range is the sum of
/// the split's weights (`(murmur3_x86_32(salt + value) × range) >> 32`,
/// as flagd's daemon computes it since its high-precision bucketing).
pub fn flagd_bucket(salt: &str, value: &str, range: u32) -> u32 {
    let mut hasher = Murmur3::new(0);
    hasher.write(salt.as_bytes());
    hasher.write(value.as_bytes());
    ((u64::from(hasher.finish()) * u64::from(range)) >> 32) as u32
}

/// The rollout threshold in basis points: `round(percentage * 100)`, clamped.
pub fn threshold(percentage: f64) -> u32 {
    // `as` saturates (NaN becomes 0); validation keeps percentages in 0..=100.
    ((percentage * 100.0).round() as u32).min(BUCKETS)
}

/// Whether the user is inside a `percentage` rollout of the flag. An empty
/// user id has no stable bucket, so it is inside only when the threshold is
/// everyone (10,000 basis points: a percentage of 99.995 or more).
pub fn in_rollout(flag_name: &str, user_id: &str, percentage: f64) -> bool {
    let threshold = threshold(percentage);
    if user_id.is_empty() {
        return threshold >= BUCKETS;
    }
    bucket(flag_name, user_id) < threshold
}

/// MurmurHash3 x86 32-bit, fed in pieces so the key need not be
/// concatenated into a new allocation. Equal to the reference
/// implementation over the concatenated bytes.
pub struct Murmur3 {
    hash: u32,
    tail: [u8; 4],
    tail_len: usize,
    total_len: usize,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

fn mix_block(hash: u32, block: u32) -> u32 {
    let k = block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    (hash ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

impl Murmur3 {
    pub fn new(seed: u32) -> Self {
        Self {
            hash: seed,
            tail: [0; 4],
            tail_len: 0,
            total_len: 0,
        }
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        self.total_len += bytes.len();
        if self.tail_len > 0 {
            let take = (4 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 4 {
                return;
            }
            self.hash = mix_block(self.hash, u32::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            let block = [block[0], block[1], block[2], block[3]];
            self.hash = mix_block(self.hash, u32::from_le_bytes(block));
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub fn finish(&self) -> u32 {
        let mut hash = self.hash;
        if self.tail_len > 0 {
            let mut k = 0u32;
            for (i, byte) in self.tail[..self.tail_len].iter().enumerate() {
                k ^= u32::from(*byte) << (8 * i);
            }
            hash ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        }
        // The reference mixes in the length modulo 2^32.
        hash ^= self.total_len as u32;
        hash ^= hash >> 16;
        hash = hash.wrapping_mul(0x85eb_ca6b);
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(0xc2b2_ae35);
        hash ^ (hash >> 16)
    }
}

/// MurmurHash3 x86 32-bit of one byte string.
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        flag: String,
        user: String,
        hash: u32,
        bucket: u32,
    }

    #[test]
    fn matches_published_reference_values() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn matches_shipped_vectors() {
        let vectors: Vec<Vector> =
            serde_json::from_str(include_str!("../../../docs/bucketing-vectors.json")).unwrap();
        assert!(vectors.len() >= 50);
        for v in &vectors {
            let key = format!("{}:{}", v.flag, v.user);
            assert_eq!(murmur3_x86_32(key.as_bytes(), 0), v.hash, "{key:?}");
            assert_eq!(bucket(&v.flag, &v.user), v.bucket, "{key:?}");
        }
    }

    #[derive(serde::Deserialize)]
    struct RolloutVector {
        flag: String,
        user: String,
        percentage: f64,
        threshold: u32,
        inside: bool,
    }

    #[test]
    fn matches_shipped_rollout_vectors() {
        let vectors: Vec<RolloutVector> =
            serde_json::from_str(include_str!("../../../docs/rollout-vectors.json")).unwrap();
        assert!(vectors.len() >= 20);
        for v in &vectors {
            let case = format!("{}:{} at {:?}", v.flag, v.user, v.percentage);
            assert_eq!(threshold(v.percentage), v.threshold, "{case}");
            assert_eq!(
                in_rollout(&v.flag, &v.user, v.percentage),
                v.inside,
                "{case}"
            );
        }
    }

    #[test]
    fn pieces_hash_like_the_whole() {
        let data: Vec<u8> = (0u8..=40).collect();
        for split_a in 0..data.len() {
            for split_b in split_a..data.len() {
                let mut hasher = Murmur3::new(7);
                hasher.write(&data[..split_a]);
                hasher.write(&data[split_a..split_b]);
                hasher.write(&data[split_b..]);
                assert_eq!(hasher.finish(), murmur3_x86_32(&data, 7));
            }
        }
    }

    /// flagd-testbed's hash edge cases (evaluator/gherkin/fractional.feature):
    /// keys whose hash falls next to the 50/50 boundary.
    #[test]
    fn flagd_buckets_match_the_testbed_edges() {
        for (key, lower) in [
            ("ejOoVL", true),
            ("bY9fO-", true),
            ("SI7p-", true),
            ("6LvT0", false),
            ("ceQdGm", false),
        ] {
            assert_eq!(flagd_bucket("", key, 100) < 50, lower, "{key}");
        }
    }

    #[test]
    fn same_input_same_bucket() {
        for i in 0..1000 {
            let user = format!("user-{i}");
            assert_eq!(bucket("flag", &user), bucket("flag", &user));
            assert!(bucket("flag", &user) < BUCKETS);
        }
    }

    #[test]
    fn quarter_rollout_enables_a_quarter_of_users() {
        let inside = (0..100_000)
            .filter(|i| in_rollout("new_dashboard", &format!("user-{i}"), 25.0))
            .count();
        let share = inside as f64 / 100_000.0;
        assert!((0.245..=0.255).contains(&share), "share {share}");
    }

    #[test]
    fn raising_the_percentage_never_turns_a_user_off() {
        let steps = [0.0, 0.01, 1.0, 5.0, 12.5, 25.0, 50.0, 99.99, 100.0];
        for i in 0..10_000 {
            let user = format!("u{i}");
            let mut was_inside = false;
            for percentage in steps {
                let inside = in_rollout("ui.dashboard.new_layout", &user, percentage);
                assert!(inside || !was_inside, "{user} dropped out at {percentage}");
                was_inside = inside;
            }
            assert!(was_inside, "{user} outside at 100%");
        }
    }

    #[test]
    fn thresholds_round_to_basis_points() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(12.5), 1250);
        assert_eq!(threshold(0.29), 29);
        assert_eq!(threshold(0.005), 1);
        assert_eq!(threshold(100.0), 10_000);
    }
}
