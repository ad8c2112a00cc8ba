//! Authentication of every request: HTTP Basic against the user store, with a short-lived
//! cache of verified credentials so the (deliberately slow) password hash does not run on
//! every request, as HarperDB's `authentication.cacheTTL` does.

use super::error::ApiError;
use crate::services::users::{User, UserStore};
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds the cache so a flood of distinct valid logins cannot grow memory without limit.
const MAX_CACHED: usize = 10_000;

pub struct Authenticator {
    users: Arc<UserStore>,
    /// Keyed by SHA-256 of the Authorization header, never by the password itself.
    cache: RwLock<HashMap<[u8; 32], (User, Instant)>>,
}

impl Authenticator {
    pub fn new(users: Arc<UserStore>) -> Self {
        Self { users, cache: RwLock::new(HashMap::new()) }
    }

    /// The caller's user, or HarperDB's 401 texts.
    pub async fn authenticate(&self, headers: &HeaderMap, ttl: Duration) -> Result<User, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("Must login".into()))?
            .as_bytes();
        let key: [u8; 32] = Sha256::digest(value).into();
        if let Some((user, expires)) = self.cache.read().get(&key) {
            if *expires > Instant::now() {
                return Ok(user.clone());
            }
        }
        let text = std::str::from_utf8(value).map_err(|_| ApiError::Unauthorized("Invalid character".into()))?;
        let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized("invalid token".into()));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized("Login failed".into()));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| ApiError::Unauthorized("Invalid character".into()))?;
        let (username, password) =
            decoded.split_once(':').ok_or_else(|| ApiError::Unauthorized("Login failed".into()))?;
        let (users, username, password) = (self.users.clone(), username.to_string(), password.to_string());
        let verified = tokio::task::spawn_blocking(move || users.verify(&username, &password).map_err(|e| (username, e)))
            .await
            .map_err(|e| ApiError::Internal { message: "authentication failed".into(), id: e.to_string() })?;
        match verified {
            Ok(user) => {
                if !ttl.is_zero() {
                    let mut cache = self.cache.write();
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                    cache.insert(key, (user.clone(), Instant::now() + ttl));
                }
                Ok(user)
            }
            Err((username, reason)) => {
                tracing::info!("login failed for user '{username}': {reason:?}");
                Err(ApiError::Unauthorized("Login failed".into()))
            }
        }
    }

    /// Forgets every cached login (after users change, or on restart).
    pub fn clear(&self) {
        self.cache.write().clear();
    }
}
