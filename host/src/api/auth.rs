//! Authentication of every request: HTTP Basic against the user store or a Bearer token (RS256
//! JWT). Verified credentials are cached briefly (HarperDB's `authentication.cacheTTL`), so
//! neither the deliberately slow password hash nor the RSA check runs on every request; any
//! change to users or roles invalidates the cache at once.

use super::error::ApiError;
use crate::services::tokens::Kind;
use crate::services::users::{LoginRefused, User};
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
pub const REFRESH_OPERATION: &str = "refresh_operation_token";

impl Authenticator {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, cache: RwLock::new(HashMap::new()) }
    }

    /// The caller, or HarperDB's 401 texts (429 while the client is throttled or every hashing
    /// slot is busy). `operation` decides whether a refresh token is acceptable; `client` is
    /// the peer address the login throttle counts against.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        operation: &str,
        ttl: Duration,
        log_failed: bool,
        client: Option<std::net::IpAddr>,
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
            (self.basic(credentials, log_failed, client).await?, None)
        } else {
            return Err(ApiError::Unauthorized("Login failed".into()));
        };
        if !ttl.is_zero() {
            let now = Instant::now();
            // A ttl too large for the clock cannot be added; the token's own end bounds it.
            let mut until = now.checked_add(ttl).or(expires).unwrap_or(now);
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
        // A token minted with an absurd lifetime must not panic the clock arithmetic: past
        // what an Instant holds, the cache ttl alone bounds the entry.
        let now = Instant::now();
        let expires = now.checked_add(Duration::from_secs(left));
        Ok((Authenticated { user, refresh_token: refresh }, expires))
    }

    async fn basic(&self, credentials: &str, log_failed: bool, client: Option<std::net::IpAddr>) -> Result<Authenticated, ApiError> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| ApiError::Unauthorized("Invalid character".into()))?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| ApiError::Unauthorized("Login failed".into()))?;
        let user = self.services.users.login(client, username, password, log_failed).await.map_err(refused)?;
        Ok(Authenticated { user, refresh_token: None })
    }

    /// Checks a user name and password from a request body (`create_authentication_tokens`)
    /// here in the HTTP layer, throttled like a Basic login, before any call slot is taken.
    pub async fn login(&self, client: Option<std::net::IpAddr>, username: &str, password: &str, log_failed: bool) -> Result<Authenticated, ApiError> {
        // The operation's own text for wrong body credentials (HarperDB's), not Basic's.
        let user = self.services.users.login(client, username, password, log_failed).await.map_err(|why| match why {
            LoginRefused::Failed => ApiError::Unauthorized("invalid credentials".into()),
            other => refused(other),
        })?;
        Ok(Authenticated { user, refresh_token: None })
    }

    /// Forgets every cached login (on restart).
    pub fn clear(&self) {
        self.cache.write().clear();
    }
}

/// A login that gave no user, as the client sees it: HarperDB's 401, or 429 with Retry-After
/// (answered at once; nothing waits while throttled).
fn refused(why: LoginRefused) -> ApiError {
    match why {
        LoginRefused::Failed => ApiError::Unauthorized("Login failed".into()),
        LoginRefused::Throttled { retry_after } => ApiError::TooManyRequests {
            message: "Too many failed login attempts; try again later".into(),
            retry_after: retry_after.max(1),
        },
        LoginRefused::Busy => ApiError::TooManyRequests { message: "The server is busy checking logins; try again shortly".into(), retry_after: 1 },
    }
}
