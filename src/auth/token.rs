//! Development tokens: `vexil token` signs one with the configured HS256
//! secret, so a developer can call protected RPCs without an identity
//! provider.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::Role;

/// What a development token says.
#[derive(Debug, Clone)]
pub struct DevToken {
    pub subject: String,
    pub roles: Vec<Role>,
    /// Environments the token is scoped to; `None` for all.
    pub environments: Option<Vec<String>>,
    pub ttl: Duration,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Signs `token` with the HS256 `secret`, naming roles and environments in
/// the configured claims.
pub fn mint(
    secret: &[u8],
    token: &DevToken,
    roles_claim: &str,
    environments_claim: &str,
) -> Result<String, String> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), token.subject.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(token.ttl.as_secs()).into());
    claims.insert(
        roles_claim.into(),
        token
            .roles
            .iter()
            .map(|role| serde_json::Value::from(role.as_str()))
            .collect(),
    );
    if let Some(environments) = &token.environments {
        claims.insert(environments_claim.into(), environments.clone().into());
    }
    if let Some(issuer) = &token.issuer {
        claims.insert("iss".into(), issuer.clone().into());
    }
    if let Some(audience) = &token.audience {
        claims.insert("aud".into(), audience.clone().into());
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|err| format!("signing the token: {err}"))
}
