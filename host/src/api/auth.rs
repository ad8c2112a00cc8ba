//! Authentication of every request: HTTP Basic against the user store or a Bearer token (RS256
//! JWT). Verified credentials are cached briefly (HarperDB's `authentication.cacheTTL`), so
//! neither the deliberately slow password hash nor the RSA check runs on every request; any
//! change to users or roles invalidates the cache at once.
//!
//! Requests that miss the cache together with the same header share one successful
//! verification (one password hash, one attempt for the login throttle), and a Basic login still in use is
//! verified again in the background before its entry expires. Without both, every cacheTTL
//! all connections of a busy client hashed the password at once: a stall of hundreds of
//! milliseconds, and the throttle, counting those parallel attempts, answered 429 to the
//! correct password (issue 18).

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
    /// Set once a background re-verification of this entry has started.
    refreshing: std::sync::atomic::AtomicBool,
}

type Cache = Arc<RwLock<HashMap<[u8; 32], Cached>>>;
/// One verification in progress: its result, shared by every request that waited for it.
type Flight = Arc<tokio::sync::OnceCell<Result<Authenticated, ApiError>>>;

pub struct Authenticator {
    services: Arc<Services>,
    /// Keyed by SHA-256 of the Authorization header, never by the password itself.
    cache: Cache,
    /// Verifications in progress, by header hash and whether a refresh token is acceptable.
    inflight: parking_lot::Mutex<HashMap<([u8; 32], bool), Flight>>,
}

/// A cached Basic login is verified again when less than this part of its ttl is left.
const REFRESH_AHEAD_DIVISOR: u32 = 4;

/// The operation that takes a refresh token as its Bearer credential.
pub const REFRESH_OPERATION: &str = "refresh_operation_token";

impl Authenticator {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, cache: Arc::new(RwLock::new(HashMap::new())), inflight: Default::default() }
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
            let now = Instant::now();
            if hit.expires > now && hit.generation == generation && refresh_ok {
                if hit.expires.saturating_duration_since(now) < ttl / REFRESH_AHEAD_DIVISOR
                    && !hit.refreshing.swap(true, std::sync::atomic::Ordering::AcqRel)
                {
                    self.refresh_ahead(value, key, ttl, log_failed, client);
                }
                return Ok(hit.auth.clone());
            }
        }
        // A miss: one verification per header at a time, the others wait for its result.
        let flight: Flight = self.inflight.lock().entry((key, operation == REFRESH_OPERATION)).or_default().clone();
        let mut verified_here = false;
        let result = flight
            .get_or_init(|| {
                verified_here = true;
                self.verify(value, key, generation, operation, ttl, log_failed, client)
            })
            .await
            .clone();
        {
            let mut inflight = self.inflight.lock();
            if inflight.get(&(key, operation == REFRESH_OPERATION)).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                inflight.remove(&(key, operation == REFRESH_OPERATION));
            }
        }
        match result {
            // Only a success is shared: a refused login is checked (and counted by the
            // throttle) for each request, as before, so parallel guesses cannot ride along.
            Err(_) if !verified_here => self.verify(value, key, generation, operation, ttl, log_failed, client).await,
            other => other,
        }
    }

    /// Checks the credentials of `value` (an Authorization header) and caches a success.
    #[allow(clippy::too_many_arguments)]
    async fn verify(
        &self,
        value: &[u8],
        key: [u8; 32],
        generation: u64,
        operation: &str,
        ttl: Duration,
        log_failed: bool,
        client: Option<std::net::IpAddr>,
    ) -> Result<Authenticated, ApiError> {
        let text = std::str::from_utf8(value).map_err(|_| ApiError::Unauthorized("Invalid character".into()))?;
        let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
        let (auth, expires) = if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer(credentials.trim(), operation)?
        } else if scheme.eq_ignore_ascii_case("basic") {
            (self.basic(credentials, log_failed, client).await?, None)
        } else {
            return Err(ApiError::Unauthorized("Login failed".into()));
        };
        remember(&self.cache, key, &auth, generation, ttl, expires);
        Ok(auth)
    }

    /// Verifies a Basic login again in the background while its cached entry is still valid,
    /// so a client that keeps sending it never waits for the password hash (the entry is
    /// replaced on success; on failure it simply expires). Other schemes are cheap to check.
    fn refresh_ahead(&self, value: &[u8], key: [u8; 32], ttl: Duration, log_failed: bool, client: Option<std::net::IpAddr>) {
        let Some(credentials) = std::str::from_utf8(value).ok().and_then(|t| t.split_once(' ')).and_then(|(scheme, c)| {
            scheme.eq_ignore_ascii_case("basic").then(|| c.to_string())
        }) else {
            return;
        };
        let (services, cache) = (self.services.clone(), self.cache.clone());
        tokio::spawn(async move {
            let generation = services.users.generation();
            if let Ok(auth) = basic_login(&services, &credentials, log_failed, client).await {
                remember(&cache, key, &auth, generation, ttl, None);
            }
        });
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
        basic_login(&self.services, credentials, log_failed, client).await
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

/// Checks Basic credentials (`base64(user:password)`) against the user store.
async fn basic_login(services: &Services, credentials: &str, log_failed: bool, client: Option<std::net::IpAddr>) -> Result<Authenticated, ApiError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::Unauthorized("Invalid character".into()))?;
    let (username, password) = decoded.split_once(':').ok_or_else(|| ApiError::Unauthorized("Login failed".into()))?;
    let user = services.users.login(client, username, password, log_failed).await.map_err(refused)?;
    Ok(Authenticated { user, refresh_token: None })
}

/// Caches a verified login for `ttl` (no longer than `expires`, a token's own end), tagged
/// with the users generation read before it was verified.
fn remember(cache: &Cache, key: [u8; 32], auth: &Authenticated, generation: u64, ttl: Duration, expires: Option<Instant>) {
    if ttl.is_zero() {
        return;
    }
    let now = Instant::now();
    // A ttl too large for the clock cannot be added; the token's own end bounds it.
    let mut until = now.checked_add(ttl).or(expires).unwrap_or(now);
    if let Some(expires) = expires {
        until = until.min(expires);
    }
    let mut cache = cache.write();
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(key, Cached { auth: auth.clone(), expires: until, generation, refreshing: Default::default() });
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
