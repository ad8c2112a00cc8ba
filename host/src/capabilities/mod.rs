//! Capability modules: one per WIT interface, each a thin `Host` impl over a service.
//! An operation is linked only against the interfaces it was granted (`runtime::granted_linker`);
//! every function still checks the grant first (a second line of defence), then calls the service.

mod catalog;
mod certs;
mod config;
mod control;
mod filesystem;
mod jobs;
mod log;
mod objectstore;
mod packages;
mod storage;
mod sysinfo;
mod users;
mod wasi;

use crate::runtime::{CallEffects, CallLimits};
use crate::services::Services;
use std::sync::Arc;

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
        }
    }

    pub fn with_caller(mut self, caller: Caller, job_id: Option<String>) -> Self {
        self.caller = caller;
        self.job_id = job_id;
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

/// The host interfaces an operation may import. Deny by default. A bit set, so copying it
/// into every call's store costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Grants(u32);

/// Every interface of `opshost:host` the host implements; a grant is an index into this.
pub const INTERFACES: [&str; 14] = [
    "types", "log", "config", "sysinfo", "control", "storage", "certs", "jobs", "filesystem", "objectstore", "users",
    "catalog", "packages", "wasi",
];
/// Interfaces every operation may import: shared types and its own log.
const ALWAYS: [&str; 2] = ["types", "log"];

impl Grants {
    /// Nothing at all, not even the log (used while a component describes itself).
    pub fn none() -> Self {
        Self(0)
    }

    /// Every interface (the upper bound for built-in operations, which ship with the server).
    pub fn all() -> Self {
        Self(INTERFACES.iter().filter_map(|name| bit(name)).fold(0, |acc, b| acc | b))
    }

    /// Both sets.
    pub fn union(self, other: Grants) -> Self {
        Self(self.0 | other.0)
    }

    /// The always-granted interfaces plus `extra` (unknown names grant nothing).
    pub fn with(extra: &[&str]) -> Self {
        let bits = ALWAYS.iter().chain(extra).filter_map(|name| bit(name)).fold(0, |acc, b| acc | b);
        Self(bits)
    }

    pub fn has(&self, interface: &str) -> bool {
        bit(interface).is_some_and(|b| self.0 & b != 0)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        INTERFACES.iter().copied().filter(|name| self.has(name))
    }

    /// Whether a component import such as `opshost:host/config@0.1.0` is allowed.
    pub fn allows_import(&self, import: &str) -> bool {
        match import.strip_prefix("opshost:host/") {
            Some(rest) => {
                let interface = rest.split('@').next().unwrap_or(rest);
                self.has(interface)
            }
            // Standard WASI interfaces come as one grant; anything else is never linked.
            None => import.starts_with("wasi:") && self.has("wasi"),
        }
    }
}

fn bit(interface: &str) -> Option<u32> {
    INTERFACES.iter().position(|i| *i == interface).map(|i| 1 << i)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_checked_by_interface_name() {
        let g = Grants::with(&["config"]);
        assert!(g.allows_import("opshost:host/config@0.1.0"));
        assert!(g.allows_import("opshost:host/log@0.1.0"));
        assert!(!g.allows_import("opshost:host/control@0.1.0"));
        assert!(!g.allows_import("wasi:cli/stdout@0.2.0"));
        assert!(Grants::with(&["wasi"]).allows_import("wasi:cli/stdout@0.2.0"));
        assert!(!Grants::with(&["wasi"]).allows_import("other:pkg/iface"));
        assert!(!Grants::none().allows_import("opshost:host/log@0.1.0"));
    }
}
