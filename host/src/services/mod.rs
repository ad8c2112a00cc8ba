//! Services: the real work, in plain Rust with no WIT types. Capability modules call them.

pub mod certs;
pub mod config;
pub mod storage;
pub mod sysinfo;
pub mod users;

use std::sync::Arc;

/// Everything a call's capabilities can reach.
pub struct Services {
    pub config: config::ConfigService,
    pub sysinfo: Arc<sysinfo::SysinfoService>,
    pub storage: Arc<storage::Storage>,
    pub certs: Arc<certs::CertService>,
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
