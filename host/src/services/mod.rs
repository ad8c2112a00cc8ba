//! Services: the real work, in plain Rust with no WIT types. Capability modules call them.

pub mod certs;
pub mod config;
pub mod files;
pub mod jobs;
pub mod objectstore;
pub mod storage;
pub mod sysinfo;
pub mod tokens;
pub mod users;

use std::sync::Arc;

/// Everything a call's capabilities can reach.
pub struct Services {
    pub config: config::ConfigService,
    pub sysinfo: Arc<sysinfo::SysinfoService>,
    pub storage: Arc<storage::Storage>,
    pub certs: Arc<certs::CertService>,
    pub jobs: Arc<jobs::JobService>,
    pub users: Arc<users::UserService>,
    pub tokens: Arc<tokens::TokenService>,
    /// Token lifetimes (`authentication.operationTokenTimeout` / `refreshTokenTimeout`),
    /// replaced on restart.
    pub token_lifetimes: arc_swap::ArcSwap<(std::time::Duration, std::time::Duration)>,
    /// Replaced on restart, with the configuration.
    pub export_roots: arc_swap::ArcSwap<files::ExportRoots>,
}

impl Services {
    pub fn export_roots(&self) -> Arc<files::ExportRoots> {
        self.export_roots.load_full()
    }
}

/// A service failure, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Detail for the log, never for the client.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ServiceError {
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            ServiceError::Internal(e) => e,
            other => anyhow::anyhow!("{other}"),
        }
    }
}

impl From<ServiceError> for crate::bindings::OpError {
    fn from(e: ServiceError) -> Self {
        use crate::bindings::OpError;
        match e {
            ServiceError::BadRequest(t) => OpError::BadRequest(t),
            ServiceError::NotFound(t) => OpError::NotFound(t),
            ServiceError::Conflict(t) => OpError::Conflict(t),
            ServiceError::Internal(e) => {
                tracing::error!("service failure: {e:#}");
                OpError::Internal("internal error; see the server log".into())
            }
        }
    }
}
