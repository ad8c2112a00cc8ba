//! Authentication of every request: HTTP Basic against the user store or a Bearer token (RS256
//! JWT). Verified credentials are cached briefly (HarperDB's `authentication.cacheTTL`), so
//! neither the deliberately slow password hash nor the RSA check runs on every request; any
//! change to users or roles invalidates the cache at once.

use super::error::ApiError;
use crate::services::tokens::Kind;
use crate::services::users::User;
use crate::services::Services;
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds the caches so a flood of distinct logins cannot grow memory without limit.
const MAX_CACHED: usize = 10_000;

/// Who made a request.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: User,
    /// Set when the request came with a refresh token (only `refresh_operation_token` accepts one).
    pub refresh_token: Option<String>,
}

struct Cached {
    auth: Authenticated,
    expires: Instant,
    generation: u64,
}

pub struct Authenticator {
    services: Arc<Services>,
    /// Keyed by SHA-256 of the Authorization header, never by the password itself.
    cache: RwLock<HashMap<[u8; 32], Cached>>,
}

/// The operation that takes a refresh token as its Bearer credential.
const REFRESH_OPERATION: &str = "refresh_operation_token";

impl Authenticator {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, cache: RwLock::new(HashMap::new()) }
    }

    /// The caller, or HarperDB's 401 texts. `operation` decides whether a refresh token is
    /// acceptable.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        operation: &str,
        ttl: Duration,
        log_failed: bool,
    ) -> Result<Authenticated, ApiError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| ApiError::Unauthorized("Must login".into()))?.as_bytes();
        let key: [u8; 32] = Sha256::digest(value).into();
        let generation = self.services.users.generation();
        if let Some(hit) = self.cache.read().get(&key) {
            let refresh_ok = hit.auth.refresh_token.is_none() || operation == REFRESH_OPERATION;
            if hit.expires > Instant::now() && hit.generation == generation && refresh_ok {
                return Ok(hit.auth.clone());
            }
        }
        let text = std::str::from_utf8(value).map_err(|_| ApiError::Unauthorized("Invalid character".into()))?;
        let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
        let (auth, expires) = if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer(credentials.trim(), operation)?
        } else if scheme.eq_ignore_ascii_case("basic") {
            (self.basic(credentials, log_failed).await?, None)
        } else {
            return Err(ApiError::Unauthorized("Login failed".into()));
        };
        if !ttl.is_zero() {
            let mut until = Instant::now() + ttl;
            if let Some(expires) = expires {
                until = until.min(expires);
            }
            let mut cache = self.cache.write();
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, Cached { auth: auth.clone(), expires: until, generation });
        }
        Ok(auth)
    }

    /// A token: well signed, unexpired, of the right kind, its user still active and at the
    /// token generation it was issued at (a changed password or deactivation ends tokens).
    fn bearer(&self, token: &str, operation: &str) -> Result<(Authenticated, Option<Instant>), ApiError> {
        let invalid = || ApiError::Unauthorized("invalid token".into());
        let tokens = &self.services.tokens;
        let (claims, refresh) = match tokens.verify(token, Kind::Operation) {
            Some(claims) => (claims, None),
            None if operation == REFRESH_OPERATION => (tokens.verify(token, Kind::Refresh).ok_or_else(invalid)?, Some(token.to_string())),
            None => return Err(invalid()),
        };
        let user = self.services.users.user(&claims.username).filter(|u| u.token_generation == claims.gen).ok_or_else(invalid)?;
        let left = claims.exp.saturating_sub(crate::services::jobs::now_ms() / 1000);
        Ok((Authenticated { user, refresh_token: refresh }, Some(Instant::now() + Duration::from_secs(left))))
    }

    async fn basic(&self, credentials: &str, log_failed: bool) -> Result<Authenticated, ApiError> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| ApiError::Unauthorized("Invalid character".into()))?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| ApiError::Unauthorized("Login failed".into()))?;
        let user = self.services.users.login(username, password, log_failed).await.map_err(|_| ApiError::Unauthorized("Login failed".into()))?;
        Ok(Authenticated { user, refresh_token: None })
    }

    /// Forgets every cached login (on restart).
    pub fn clear(&self) {
        self.cache.write().clear();
    }
}
