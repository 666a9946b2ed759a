//! Tokens already verified, so that a valid caller costs one signature
//! check per token, not one per call (~270 µs for ES256). Keyed by the
//! token's SHA-256, never the token itself; an entry serves until the
//! token's `exp` and only for the key set it was verified against (a
//! rotation or a removed key verifies again).

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::Principal;

/// Entries kept at most; past it, new tokens are verified every call until
/// expired ones are forgotten.
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    principal: Principal,
    /// The key set's generation when the token was verified.
    generation: u64,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: DashMap<[u8; 32], Entry, ahash::RandomState>,
}

impl VerifiedTokens {
    /// The principal of `token`, verified against key-set `generation` and
    /// not expired at `now` (seconds since the epoch).
    pub fn get(&self, token: &str, generation: u64, now: u64) -> Option<Principal> {
        let entry = self.entries.get(&digest(token))?;
        (entry.generation == generation && now < entry.principal.expires_at)
            .then(|| entry.principal.clone())
    }

    pub fn insert(&self, token: &str, principal: Principal, generation: u64) {
        if self.entries.len() >= MAX_ENTRIES {
            return;
        }
        self.entries.insert(
            digest(token),
            Entry {
                principal,
                generation,
            },
        );
    }

    /// Drops expired tokens and those of older key sets.
    pub fn forget_stale(&self, generation: u64, now: u64) {
        self.entries
            .retain(|_, entry| entry.generation == generation && now < entry.principal.expires_at);
        self.entries.shrink_to_fit();
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
