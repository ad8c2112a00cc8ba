//! Capability modules: one per WIT interface, each a thin `Host` impl over a service.
//! An operation is linked only against the interfaces it was granted (`runtime::granted_linker`);
//! every function still checks the grant first (a second line of defence), then calls the service.

mod catalog;
mod certs;
mod cluster;
mod components;
mod config;
mod control;
mod filesystem;
mod jobs;
mod log;
mod objectstore;
mod packages;
mod sources;
mod storage;
mod sysinfo;
mod users;
pub(crate) mod wasi;

use std::time::Duration;
use crate::services::{ServiceError, Services};
use std::sync::Arc;

/// Runs a blocking service call (RocksDB, file reads, password hashing) on tokio's blocking
/// pool, off the async workers. A task that panicked is logged naming `what` and answers a 500
/// without details; the service's own error maps onto `op-error` as usual.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, crate::bindings::OpError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => {
            tracing::error!("{what} task failed: {e}");
            Err(crate::bindings::OpError::Internal(format!("{what} task failed")))
        }
    }
}

/// The data of one call's `Store`: who is calling, what the operation may use, and its limits.
pub struct CallState {
    pub(crate) services: Arc<Services>,
    pub(crate) grants: Grants,
    pub(crate) operation: String,
    pub(crate) request_id: String,
    pub(crate) limits: Limiter,
    pub(crate) effects: CallEffects,
    /// Who is calling (empty while a component describes itself).
    pub(crate) caller: Caller,
    /// The job this call runs as, if any.
    pub(crate) job_id: Option<String>,
    /// WASI state, made on first use by a component granted `wasi`.
    pub(crate) wasi: Option<Box<wasi::WasiState>>,
    /// Resources the guest holds handles to (storage cursors).
    pub(crate) table: wasmtime::component::ResourceTable,
    /// The host functions this call entered, for the answer cache (answers.rs).
    pub(crate) trace: crate::answers::Trace,
}

impl CallState {
    pub fn new(
        services: Arc<Services>,
        grants: Grants,
        operation: String,
        request_id: String,
        limits: CallLimits,
    ) -> Self {
        Self {
            services,
            grants,
            operation,
            request_id,
            limits: Limiter { inner: Self::store_limits(limits), memory_denied: false },
            effects: CallEffects::default(),
            caller: Caller::default(),
            job_id: None,
            wasi: None,
            table: wasmtime::component::ResourceTable::new(),
            trace: Default::default(),
        }
    }

    pub fn with_caller(mut self, caller: Caller, job_id: Option<String>) -> Self {
        self.caller = caller;
        self.job_id = job_id;
        self
    }

    /// The store's data as a host function sees it: every host function of every interface
    /// is entered through here (the linker's getter), so the answer cache counts them all.
    pub(crate) fn entered(&mut self) -> &mut Self {
        self.trace.entered();
        self
    }

    /// `Ok` when the operation was granted `interface`, else the error the guest receives.
    fn check(&self, interface: &str) -> Result<(), crate::bindings::OpError> {
        if self.grants.has(interface) {
            Ok(())
        } else {
            Err(crate::bindings::OpError::Forbidden(format!(
                "operation '{}' is not granted the '{interface}' capability",
                self.operation
            )))
        }
    }
}

/// The authenticated caller of one call, as capabilities need them (job visibility,
/// table permissions, tokens).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub username: String,
    pub super_user: bool,
    /// The role's permissions, for non-super users.
    pub permissions: Option<std::sync::Arc<crate::services::users::Permissions>>,
    /// The refresh token this request authenticated with, for `refresh_operation_token`.
    pub refresh_token: Option<String>,
}

pub use crate::services::grants::{Grants, INTERFACES};

/// Per-call limits, read from `operationsApi.limits` (re-read on restart).
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Largest linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// Wall-clock CPU budget of one call; the guest traps when it is spent.
    pub timeout: Duration,
}

/// What a call asked the host to do after it answers.
#[derive(Default, Debug)]
pub struct CallEffects {
    pub restart: bool,
    /// A service the operation asked to restart (`restart_service`).
    pub restart_service: Option<String>,
    /// Table permissions the caller lacked (HarperDB's `unauthorized_access` entries).
    pub denied: Vec<serde_json::Value>,
    /// The problems of a refused role permission JSON (HarperDB's `main_permissions`).
    pub role_problems: Vec<String>,
}

impl CallEffects {
    /// Nothing asked of the host after the answer.
    pub fn is_empty(&self) -> bool {
        !self.restart && self.restart_service.is_none() && self.denied.is_empty() && self.role_problems.is_empty()
    }
}

impl CallState {
    pub(crate) fn store_limits(limits: CallLimits) -> wasmtime::StoreLimits {
        wasmtime::StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(8)
            .build()
    }
}

/// Services report plain errors; this is where they become the WIT error a guest receives
/// (services never see WIT types).
impl From<ServiceError> for crate::bindings::OpError {
    fn from(e: ServiceError) -> Self {
        use crate::bindings::OpError;
        match e {
            ServiceError::BadRequest(t) => OpError::BadRequest(t),
            ServiceError::NotFound(t) => OpError::NotFound(t),
            ServiceError::Conflict(t) => OpError::Conflict(t),
            e @ ServiceError::RolePermissions(_) => OpError::BadRequest(e.to_string()),
            ServiceError::Unavailable(t) => OpError::Other(format!("{}{t}", crate::services::UNAVAILABLE_TAG)),
            ServiceError::Internal(e) => {
                tracing::error!("service failure: {e:#}");
                OpError::Internal("internal error; see the server log".into())
            }
        }
    }
}

impl crate::bindings::opshost::host::types::Host for CallState {}

/// `StoreLimits` that also remembers a refused memory growth, so a guest that aborts after
/// running out of memory is reported as such rather than as a plain trap.
pub struct Limiter {
    inner: wasmtime::StoreLimits,
    pub(crate) memory_denied: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
