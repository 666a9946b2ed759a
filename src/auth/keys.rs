//! The verification keys: an HS256 shared secret, a public key from a PEM
//! file (RS256, ES256 or EdDSA, from the key's type unless configured), and
//! the public keys of a JWKS file or URL, selected by `kid`. Each key
//! accepts only its own algorithm.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Notify;

use super::remote;

/// Shortest shared secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
/// How often an unknown `kid` may make the JWKS file or URL be read again.
pub const REFRESH_LIMIT: Duration = Duration::from_secs(10);

/// Where the keys come from.
#[derive(Debug, Clone, Default)]
pub struct KeyConfig {
    pub secret: Option<Vec<u8>>,
    pub public_key_file: Option<PathBuf>,
    /// Overrides the algorithm inferred from the PEM key's type.
    pub public_key_algorithm: Option<Algorithm>,
    pub jwks_file: Option<PathBuf>,
    /// Fetched in the background (see `remote`).
    pub jwks_url: Option<String>,
    /// How long the keys of a JWKS that turned empty stay valid: an
    /// identity provider's brief glitch does not lock everyone out, and
    /// keys withdrawn on purpose stop verifying soon after.
    pub empty_grace: Duration,
}

impl KeyConfig {
    pub fn is_empty(&self) -> bool {
        self.secret.is_none()
            && self.public_key_file.is_none()
            && self.jwks_file.is_none()
            && self.jwks_url.is_none()
    }
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Algorithm,
    /// Where it came from, for the audit actor: `secret`, `public-key`,
    /// `jwks-file` or `jwks-url`.
    source: &'static str,
}

/// The loaded keys; the JWKS parts can be re-read (key rotation).
pub struct KeySet {
    state: Arc<State>,
}

struct State {
    config: KeyConfig,
    /// From the secret and the files.
    local: Mutex<Vec<Arc<Key>>>,
    /// From the JWKS URL.
    remote: Mutex<Vec<Arc<Key>>>,
    /// Both together, as requests read them.
    keys: RwLock<Arc<Vec<Arc<Key>>>>,
    refreshed: Mutex<Instant>,
    /// Asks the fetcher for the JWKS URL again (an unknown kid).
    fetch_wanted: Notify,
    /// Bumped whenever the keys change: tokens verified before are checked
    /// again (a removed key stops verifying them).
    generation: AtomicU64,
    /// Since when the JWKS file / URL has held no usable key.
    file_empty_since: Mutex<Option<Instant>>,
    url_empty_since: Mutex<Option<Instant>>,
}

impl State {
    fn publish(&self) {
        let mut all = lock(&self.local).clone();
        all.extend(lock(&self.remote).iter().cloned());
        *self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(all);
        self.generation.fetch_add(1, Relaxed);
    }
}

/// Whether keys from a source that now holds none should go: after
/// the grace period since it was first seen empty.
fn grace_over(empty_since: &Mutex<Option<Instant>>, grace: Duration) -> bool {
    lock(empty_since).get_or_insert_with(Instant::now).elapsed() >= grace
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A key and the one algorithm it accepts.
pub struct Selected(Arc<Key>);

impl Selected {
    /// Where the key came from: `secret`, `public-key`, `jwks-file` or
    /// `jwks-url`.
    pub fn source(&self) -> &'static str {
        self.0.source
    }
}

impl std::ops::Deref for Selected {
    type Target = DecodingKey;
    fn deref(&self) -> &DecodingKey {
        &self.0.key
    }
}

impl KeySet {
    pub fn load(config: KeyConfig) -> Result<Self, String> {
        if let Some(url) = &config.jwks_url {
            remote::check_url(url)?;
        }
        let keys = load(&config)?;
        if keys.is_empty() && config.jwks_url.is_none() {
            return Err("no JWT verification key is configured".into());
        }
        let state = State {
            config,
            local: Mutex::new(keys),
            remote: Mutex::new(Vec::new()),
            keys: RwLock::new(Arc::new(Vec::new())),
            refreshed: Mutex::new(Instant::now()),
            fetch_wanted: Notify::new(),
            generation: AtomicU64::new(0),
            file_empty_since: Mutex::new(None),
            url_empty_since: Mutex::new(None),
        };
        state.publish();
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// The task that keeps the keys of `VEXIL_JWKS_URL` current, when one
    /// is configured: it fetches at once, every `remote::REFRESH_EVERY`, and
    /// soon after a token names an unknown kid (at most every
    /// [`REFRESH_LIMIT`]). Until the first fetch succeeds, tokens for those
    /// keys are refused.
    pub fn fetcher(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let url = remote::check_url(self.state.config.jwks_url.as_deref()?).ok()?;
        let state = self.state.clone();
        Some(async move {
            loop {
                let fetched = remote::fetch(&url)
                    .await
                    .and_then(|body| parse_jwks(&body, "VEXIL_JWKS_URL"));
                let wait = match fetched {
                    Ok(keys) if !keys.is_empty() => {
                        tracing::debug!(keys = keys.len(), "fetched the JWKS");
                        *lock(&state.url_empty_since) = None;
                        *lock(&state.remote) = keys;
                        state.publish();
                        remote::REFRESH_EVERY
                    }
                    Ok(_) if grace_over(&state.url_empty_since, state.config.empty_grace) => {
                        if !lock(&state.remote).is_empty() {
                            tracing::warn!(grace = ?state.config.empty_grace, "the JWKS URL has held no usable key for the grace period; its previous keys no longer verify tokens");
                            lock(&state.remote).clear();
                            state.publish();
                        }
                        REFRESH_LIMIT
                    }
                    Ok(_) => {
                        tracing::warn!(grace = ?state.config.empty_grace, "the JWKS URL holds no usable key; keeping the previous keys for the grace period");
                        REFRESH_LIMIT
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "fetching the JWKS failed; keeping the previous keys");
                        REFRESH_LIMIT
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = state.fetch_wanted.notified() => {
                        tokio::time::sleep(REFRESH_LIMIT).await;
                    }
                }
            }
        })
    }

    /// The key for a token with header `kid`, and its algorithm. One key:
    /// that key (unless both it and the token name different kids).
    /// Several: the one with that `kid` (a token without one is refused).
    pub fn select(&self, kid: Option<&str>) -> Result<(Selected, Algorithm), &'static str> {
        if let Some(found) = self.find(kid)? {
            return Ok(found);
        }
        // A new kid may mean the JWKS was rotated: the URL is fetched in
        // the background (this token is refused meanwhile), the file now.
        if kid.is_some() && self.state.config.jwks_url.is_some() {
            self.state.fetch_wanted.notify_one();
        }
        if self.refresh()
            && let Some(found) = self.find(kid)?
        {
            return Ok(found);
        }
        Err("the token's kid names no configured key")
    }

    fn find(&self, kid: Option<&str>) -> Result<Option<(Selected, Algorithm)>, &'static str> {
        let keys = self.current();
        if let [only] = keys.as_slice() {
            // One key answers every token, unless both name different kids
            // (a token for a key this replica has not loaded yet).
            return Ok(match (kid, only.kid.as_deref()) {
                (Some(kid), Some(own)) if kid != own => None,
                _ => Some((Selected(only.clone()), only.algorithm)),
            });
        }
        let Some(kid) = kid else {
            // A token without a kid may use the one key that has none (the
            // secret or the PEM key beside a JWKS).
            let mut unnamed = keys.iter().filter(|key| key.kid.is_none());
            return match (unnamed.next(), unnamed.next()) {
                (Some(key), None) => Ok(Some((Selected(key.clone()), key.algorithm))),
                _ => Err("the token has no kid, and several keys are configured"),
            };
        };
        Ok(keys
            .iter()
            .find(|key| key.kid.as_deref() == Some(kid))
            .map(|key| (Selected(key.clone()), key.algorithm)))
    }

    /// How many kinds of key source are configured (secret, public key,
    /// JWKS file, JWKS URL).
    pub fn source_count(&self) -> usize {
        let config = &self.state.config;
        [
            config.secret.is_some(),
            config.public_key_file.is_some(),
            config.jwks_file.is_some(),
            config.jwks_url.is_some(),
        ]
        .into_iter()
        .filter(|configured| *configured)
        .count()
    }

    /// Changes whenever the keys do.
    pub fn generation(&self) -> u64 {
        self.state.generation.load(Relaxed)
    }

    fn current(&self) -> Arc<Vec<Arc<Key>>> {
        self.state
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the key files, at most once per [`REFRESH_LIMIT`]; true
    /// when it did. A file that fails to load keeps the previous keys.
    pub fn refresh(&self) -> bool {
        let state = &self.state;
        if state.config.jwks_file.is_none() {
            return false;
        }
        {
            let mut refreshed = lock(&state.refreshed);
            if refreshed.elapsed() < REFRESH_LIMIT {
                return false;
            }
            *refreshed = Instant::now();
        }
        match load(&state.config) {
            Ok(keys) if !keys.is_empty() => {
                tracing::info!(keys = keys.len(), "reloaded JWT verification keys");
                *lock(&state.file_empty_since) = None;
                *lock(&state.local) = keys;
                state.publish();
                true
            }
            Ok(_) if grace_over(&state.file_empty_since, state.config.empty_grace) => {
                if lock(&state.local).is_empty() {
                    return false;
                }
                tracing::warn!(grace = ?state.config.empty_grace, "the JWKS file has held no usable key for the grace period; its previous keys no longer verify tokens");
                lock(&state.local).clear();
                state.publish();
                true
            }
            Ok(_) => {
                tracing::warn!(grace = ?state.config.empty_grace, "the JWKS file holds no usable key; keeping the previous keys for the grace period");
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "reloading JWT keys failed; keeping the previous keys");
                false
            }
        }
    }
}

fn load(config: &KeyConfig) -> Result<Vec<Arc<Key>>, String> {
    let mut keys = Vec::new();
    if let Some(secret) = &config.secret {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "VEXIL_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        keys.push(Arc::new(Key {
            kid: None,
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
            source: "secret",
        }));
    }
    if let Some(path) = &config.public_key_file {
        let pem = std::fs::read(path).map_err(|err| {
            format!(
                "reading VEXIL_JWT_PUBLIC_KEY_FILE {}: {err}",
                path.display()
            )
        })?;
        keys.push(Arc::new(
            pem_key(&pem, config.public_key_algorithm)
                .map_err(|err| format!("VEXIL_JWT_PUBLIC_KEY_FILE {}: {err}", path.display()))?,
        ));
    }
    if let Some(path) = &config.jwks_file {
        let json = std::fs::read(path)
            .map_err(|err| format!("reading VEXIL_JWKS_FILE {}: {err}", path.display()))?;
        keys.extend(parse_jwks(&json, "VEXIL_JWKS_FILE")?);
    }
    Ok(keys)
}

/// The keys of a JWK set; every key needs a `kid`.
fn parse_jwks(json: &[u8], source: &str) -> Result<Vec<Arc<Key>>, String> {
    let set: JwkSet =
        serde_json::from_slice(json).map_err(|err| format!("{source} is not a JWK set: {err}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        // Identity providers publish encryption keys and other algorithms
        // beside their signing keys: skip what cannot verify a token.
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        if kid.is_empty() {
            tracing::warn!(source, "skipping a JWK without a kid");
            continue;
        }
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let key = jwk_algorithm(jwk).and_then(|algorithm| {
            DecodingKey::from_jwk(jwk)
                .map(|key| (key, algorithm))
                .map_err(|err| err.to_string())
        });
        match key {
            Ok((key, algorithm)) => keys.push(Arc::new(Key {
                kid: Some(kid),
                key,
                algorithm,
                source: if source == "VEXIL_JWKS_URL" {
                    "jwks-url"
                } else {
                    "jwks-file"
                },
            })),
            Err(err) => {
                tracing::warn!(source, %kid, error = %err, "skipping a JWK that cannot verify tokens")
            }
        }
    }
    Ok(keys)
}

fn pem_key(pem: &[u8], algorithm: Option<Algorithm>) -> Result<Key, String> {
    let (key, inferred) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        (key, Algorithm::RS256)
    } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        (key, Algorithm::ES256)
    } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        (key, Algorithm::EdDSA)
    } else {
        return Err("not an RSA, EC or Ed25519 public key in PEM".into());
    };
    Ok(Key {
        kid: None,
        key,
        algorithm: algorithm.unwrap_or(inferred),
        source: "public-key",
    })
}

/// A JWK's algorithm: its `alg`, else the usual one for its key type.
/// Symmetric (`oct`) keys are refused: a JWKS publishes public keys.
fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Algorithm, String> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err("symmetric (oct) keys are not accepted from a JWKS".into());
    }
    if let Some(alg) = jwk.common.key_algorithm {
        return Algorithm::try_from(alg)
            .map_err(|_| "its alg is not a signature algorithm".to_string());
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            _ => Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(_) => Ok(Algorithm::EdDSA),
        _ => Err("unsupported key type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_keys_that_cannot_verify_are_skipped_not_fatal() {
        let mut set: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/it/keys/jwks-ec-rsa.json")).unwrap();
        let keys = set["keys"].as_array_mut().unwrap();
        // An identity provider's encryption key, and one with an
        // algorithm that cannot sign.
        let mut encryption = keys[1].clone();
        encryption["use"] = "enc".into();
        encryption["kid"] = "enc-1".into();
        let mut oaep = keys[1].clone();
        oaep["alg"] = "RSA-OAEP".into();
        oaep["kid"] = "oaep-1".into();
        keys.push(encryption);
        keys.push(oaep);
        let parsed = parse_jwks(set.to_string().as_bytes(), "test").unwrap();
        let kids: Vec<_> = parsed.iter().filter_map(|key| key.kid.clone()).collect();
        assert_eq!(kids, ["ec-1", "rsa-2"]);
    }
}
