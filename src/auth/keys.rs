//! The verification keys: an HS256 shared secret, a public key from a PEM
//! file (RS256, ES256 or EdDSA, from the key's type unless configured), and
//! the public keys of a JWKS file, selected by `kid`. Each key accepts only
//! its own algorithm.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Shortest shared secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
/// How often an unknown `kid` may make the JWKS file be read again.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Where the keys come from.
#[derive(Debug, Clone, Default)]
pub struct KeyConfig {
    pub secret: Option<Vec<u8>>,
    pub public_key_file: Option<PathBuf>,
    /// Overrides the algorithm inferred from the PEM key's type.
    pub public_key_algorithm: Option<Algorithm>,
    pub jwks_file: Option<PathBuf>,
}

impl KeyConfig {
    pub fn is_empty(&self) -> bool {
        self.secret.is_none() && self.public_key_file.is_none() && self.jwks_file.is_none()
    }
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Algorithm,
}

/// The loaded keys; the JWKS part can be re-read (key rotation).
pub struct KeySet {
    config: KeyConfig,
    keys: RwLock<Arc<Vec<Arc<Key>>>>,
    refreshed: Mutex<Instant>,
}

/// A key and the one algorithm it accepts.
pub struct Selected(Arc<Key>);

impl std::ops::Deref for Selected {
    type Target = DecodingKey;
    fn deref(&self) -> &DecodingKey {
        &self.0.key
    }
}

impl KeySet {
    pub fn load(config: KeyConfig) -> Result<Self, String> {
        let keys = load(&config)?;
        if keys.is_empty() {
            return Err("no JWT verification key is configured".into());
        }
        Ok(Self {
            config,
            keys: RwLock::new(Arc::new(keys)),
            refreshed: Mutex::new(Instant::now()),
        })
    }

    /// The key for a token with header `kid`, and its algorithm. One key:
    /// that key (unless both it and the token name different kids).
    /// Several: the one with that `kid` (a token without one is refused).
    pub fn select(&self, kid: Option<&str>) -> Result<(Selected, Algorithm), &'static str> {
        if let Some(found) = self.find(kid)? {
            return Ok(found);
        }
        // A new kid may mean the JWKS file was rotated.
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
            return Err("the token has no kid, and several keys are configured");
        };
        Ok(keys
            .iter()
            .find(|key| key.kid.as_deref() == Some(kid))
            .map(|key| (Selected(key.clone()), key.algorithm)))
    }

    fn current(&self) -> Arc<Vec<Arc<Key>>> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the key files, at most once per [`REFRESH_EVERY`]; true
    /// when it did. A file that fails to load keeps the previous keys.
    pub fn refresh(&self) -> bool {
        if self.config.jwks_file.is_none() {
            return false;
        }
        {
            let mut refreshed = self
                .refreshed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if refreshed.elapsed() < REFRESH_EVERY {
                return false;
            }
            *refreshed = Instant::now();
        }
        match load(&self.config) {
            Ok(keys) if !keys.is_empty() => {
                tracing::info!(keys = keys.len(), "reloaded JWT verification keys");
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                true
            }
            Ok(_) => {
                tracing::warn!("the JWKS file holds no usable key; keeping the previous keys");
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
        let set: JwkSet = serde_json::from_slice(&json)
            .map_err(|err| format!("VEXIL_JWKS_FILE {} is not a JWK set: {err}", path.display()))?;
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().ok_or_else(|| {
                format!("VEXIL_JWKS_FILE {}: every key needs a kid", path.display())
            })?;
            let algorithm =
                jwk_algorithm(jwk).map_err(|err| format!("VEXIL_JWKS_FILE key {kid}: {err}"))?;
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|err| format!("VEXIL_JWKS_FILE key {kid}: {err}"))?;
            keys.push(Arc::new(Key {
                kid: Some(kid),
                key,
                algorithm,
            }));
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
