//! Who is calling, and what they may do: bearer JWTs validated against
//! keys fixed by configuration, the roles and environment scope they carry.
//! No tonic here: the gRPC edge hands over the `authorization` value.
//!
//! The accepted algorithms come from the keys, never from the token's
//! header: a shared secret accepts HS256 only, a public key its own
//! algorithm only, so `alg: none` and HS/RS confusion cannot pass.

mod keys;
mod remote;
mod token;
mod verified;

use std::collections::HashSet;
use std::fmt;

use jsonwebtoken::Validation;
use serde::Deserialize;

pub use self::keys::{KeyConfig, KeySet};
pub use self::token::{DevToken, mint};
use self::verified::VerifiedTokens;
use crate::domain::FlagSpec;

/// What a caller may do. `Admin` includes `Editor`, which includes `Reader`.
/// `Evaluator` only evaluates and watches (where evaluation requires a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Reader,
    Editor,
    Admin,
    Evaluator,
}

impl Role {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "reader" => Some(Self::Reader),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            "evaluator" => Some(Self::Evaluator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Editor => "editor",
            Self::Admin => "admin",
            Self::Evaluator => "evaluator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The actor recorded in the audit trail: the token's `sub`, followed
    /// by its key source (`alice (jwks-url)`) when several are configured.
    pub subject: String,
    pub roles: HashSet<Role>,
    /// Environments the token may change flags in; `None` means all.
    pub environments: Option<HashSet<String>>,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

impl Principal {
    /// Whether the caller holds `role`, directly or through a larger one.
    pub fn has(&self, role: Role) -> bool {
        let held = |r| self.roles.contains(&r);
        match role {
            Role::Admin => held(Role::Admin),
            Role::Editor => held(Role::Admin) || held(Role::Editor),
            Role::Reader => held(Role::Admin) || held(Role::Editor) || held(Role::Reader),
            Role::Evaluator => held(Role::Admin) || held(Role::Evaluator),
        }
    }

    /// Whether a scoped caller may hold a flag defined by `spec` (before or
    /// after a change). A flag *touches* every environment it names in
    /// `environments` or `environment_overrides`; with `environments` empty
    /// it may be on anywhere, so it touches all of them. A scoped token may
    /// change only flags that touch nothing outside its scope.
    pub fn may_touch(&self, spec: &FlagSpec) -> bool {
        let Some(scope) = &self.environments else {
            return true;
        };
        !spec.environments.is_empty()
            && spec.environments.iter().all(|env| scope.contains(env))
            && spec
                .environment_overrides
                .keys()
                .all(|env| scope.contains(env))
    }
}

/// Why a caller was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No valid credentials: missing, malformed, badly signed, expired, not
    /// yet valid, wrong issuer or audience.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials without the role or scope needed.
    #[error("{0}")]
    PermissionDenied(String),
}

/// Token validation settings beyond the keys.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: KeyConfig,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: u64,
    /// Claim holding the roles: an array of strings or a space-separated string.
    pub roles_claim: String,
    /// Claim holding the environments a token is scoped to (optional).
    pub environments_claim: String,
}

/// Validates bearer tokens.
pub struct Authenticator {
    keys: KeySet,
    verified: VerifiedTokens,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
    roles_claim: String,
    environments_claim: String,
}

/// The registered claims every token must carry, plus the configured ones.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Authenticator {
    /// Loads the keys; fails on unreadable or invalid key material.
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        Ok(Self {
            keys: KeySet::load(config.keys)?,
            verified: VerifiedTokens::default(),
            issuer: config.issuer,
            audience: config.audience,
            leeway_secs: config.leeway_secs,
            roles_claim: config.roles_claim,
            environments_claim: config.environments_claim,
        })
    }

    /// The principal of an `authorization` value verified before (its
    /// token not expired, its key set unchanged): no signature check.
    pub fn cached(&self, authorization: Option<&str>) -> Option<Principal> {
        let token = bearer(authorization?).ok()?;
        self.verified.get(
            token,
            self.keys.generation(),
            jsonwebtoken::get_current_timestamp(),
        )
    }

    /// Validates the `authorization` metadata value (`Bearer <jwt>`), and
    /// remembers a valid token for [`Self::cached`].
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let Some(value) = authorization else {
            return Err(AuthError::Unauthenticated(
                "missing bearer token (metadata `authorization: Bearer <jwt>`)".into(),
            ));
        };
        let token = bearer(value)?;
        let generation = self.keys.generation();
        let principal = self.verify(token)?;
        self.verified.insert(token, principal.clone(), generation);
        Ok(principal)
    }

    /// Forgets expired tokens and those verified against older keys.
    pub fn forget_stale_tokens(&self) {
        self.verified.forget_stale(
            self.keys.generation(),
            jsonwebtoken::get_current_timestamp(),
        );
    }

    fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let unauthenticated = |why: &str| AuthError::Unauthenticated(why.to_string());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("the bearer token is not a well-formed JWT"))?;
        let (key, algorithm) = self
            .keys
            .select(header.kid.as_deref())
            .map_err(|why| AuthError::Unauthenticated(why.to_string()))?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // Without a configured audience, `validate_aud` stays on: a token
        // minted for some other service (one that names its `aud`) is
        // refused; tokens without `aud` pass.
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|err| match (err.kind(), &self.audience) {
                (jsonwebtoken::errors::ErrorKind::InvalidAudience, None) => unauthenticated(
                    "the token names an audience (aud) and VEXIL_JWT_AUDIENCE names none: \
                     it was minted for another service",
                ),
                _ => AuthError::Unauthenticated(rejection(&err).to_string()),
            })?
            .claims;
        if claims.sub.is_empty() || claims.sub.len() > 256 {
            return Err(unauthenticated("the token's sub must be 1-256 bytes"));
        }
        // With several key sources (say the development secret beside an
        // identity provider's JWKS), the actor names the source, so a token
        // from one cannot be recorded as a user of the other.
        let subject = if self.keys.source_count() > 1 {
            format!("{} ({})", claims.sub, key.source())
        } else {
            claims.sub
        };
        Ok(Principal {
            subject,
            roles: self.roles(&claims.rest)?,
            environments: self.environments(&claims.rest)?,
            expires_at: claims.exp,
        })
    }

    fn roles(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<HashSet<Role>, AuthError> {
        let names: Vec<&str> = match claims.get(&self.roles_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(names)) => names.split_whitespace().collect(),
            Some(serde_json::Value::Array(names)) => names
                .iter()
                .map(|name| name.as_str().unwrap_or_default())
                .collect(),
            Some(_) => {
                return Err(AuthError::Unauthenticated(format!(
                    "the token's {} claim must be a list of role names",
                    self.roles_claim
                )));
            }
        };
        // Unknown role names (other systems' roles) grant nothing.
        Ok(names.into_iter().filter_map(Role::parse).collect())
    }

    fn environments(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<HashSet<String>>, AuthError> {
        match claims.get(&self.environments_claim) {
            None => Ok(None),
            // A null scope is not "every environment": fail closed.
            Some(serde_json::Value::Null) => Err(AuthError::Unauthenticated(format!(
                "the token's {} claim is null: list the environments, or leave the claim \
                 out for a token valid in every environment",
                self.environments_claim
            ))),
            Some(serde_json::Value::Array(names)) => names
                .iter()
                .map(|name| name.as_str().map(str::to_string))
                .collect::<Option<HashSet<_>>>()
                .map(Some)
                .ok_or_else(|| {
                    AuthError::Unauthenticated(format!(
                        "the token's {} claim must be a list of environment names",
                        self.environments_claim
                    ))
                }),
            Some(_) => Err(AuthError::Unauthenticated(format!(
                "the token's {} claim must be a list of environment names",
                self.environments_claim
            ))),
        }
    }

    /// Re-reads key files when they may have changed (a JWKS rotation).
    pub fn refresh(&self) {
        self.keys.refresh();
    }

    /// The background task fetching `VEXIL_JWKS_URL`, when configured.
    pub fn fetcher(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.keys.fetcher()
    }
}

/// A client-safe reason for a rejected token (never the token itself).
/// The token of a `Bearer <jwt>` value.
fn bearer(value: &str) -> Result<&str, AuthError> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            AuthError::Unauthenticated("the authorization metadata is not `Bearer <jwt>`".into())
        })
}

fn rejection(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidSignature => "the token's signature is invalid",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token's algorithm is not the one configured"
        }
        ErrorKind::InvalidIssuer => "the token's issuer is not the one configured",
        ErrorKind::InvalidAudience => "the token's audience is not the one configured",
        ErrorKind::MissingRequiredClaim(_) => {
            "the token lacks a required claim (exp, sub, and iss/aud when configured)"
        }
        _ => "the bearer token is invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[Role], environments: Option<&[&str]>) -> Principal {
        Principal {
            subject: "s".into(),
            roles: roles.iter().copied().collect(),
            environments: environments.map(|envs| envs.iter().map(|e| e.to_string()).collect()),
            expires_at: 0,
        }
    }

    #[test]
    fn roles_nest() {
        let admin = principal(&[Role::Admin], None);
        assert!(
            [Role::Reader, Role::Editor, Role::Admin, Role::Evaluator]
                .iter()
                .all(|role| admin.has(*role))
        );
        let editor = principal(&[Role::Editor], None);
        assert!(editor.has(Role::Reader) && !editor.has(Role::Admin));
        assert!(!editor.has(Role::Evaluator));
        let evaluator = principal(&[Role::Evaluator], None);
        assert!(!evaluator.has(Role::Reader));
    }

    #[test]
    fn scope_covers_every_environment_a_flag_touches() {
        let scoped = principal(&[Role::Editor], Some(&["staging", "dev"]));
        let spec = |envs: &[&str], overrides: &[&str]| FlagSpec {
            environments: envs.iter().map(|e| e.to_string()).collect(),
            environment_overrides: overrides.iter().map(|e| (e.to_string(), true)).collect(),
            ..FlagSpec::default()
        };
        assert!(scoped.may_touch(&spec(&["staging"], &["dev"])));
        assert!(!scoped.may_touch(&spec(&[], &[])), "empty = everywhere");
        assert!(!scoped.may_touch(&spec(&["staging", "prod"], &[])));
        assert!(!scoped.may_touch(&spec(&["staging"], &["prod"])));
        assert!(principal(&[Role::Editor], None).may_touch(&spec(&[], &[])));
    }
}
