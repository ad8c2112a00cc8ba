//! Services: the real work, in plain Rust with no WIT types. Capability modules call them.

pub mod catalog;
pub mod cluster;
pub mod components;
pub mod certs;
pub mod config;
pub mod files;
pub mod fsutil;
pub mod grants;
pub mod imports;
pub mod signing;
pub mod jobs;
pub mod logs;
pub mod objectstore;
pub mod packages;
pub mod storage;
pub mod sysinfo;
pub mod tokens;
pub mod users;

use std::sync::Arc;

/// Everything a call's capabilities can reach.
pub struct Services {
    pub config: Arc<config::ConfigService>,
    pub sysinfo: Arc<sysinfo::SysinfoService>,
    pub storage: Arc<dyn storage::StorageBackend>,
    /// Replication over NATS JetStream (`clustering.enabled`; idle when off).
    pub cluster: Arc<cluster::Cluster>,
    pub certs: Arc<certs::CertService>,
    pub jobs: Arc<jobs::JobService>,
    pub catalog: catalog::Catalog,
    /// Components deployed through the operations API.
    pub components: Arc<components::ComponentService>,
    pub users: Arc<users::UserService>,
    pub tokens: Arc<tokens::TokenService>,
    /// Token lifetimes (`authentication.operationTokenTimeout` / `refreshTokenTimeout`),
    /// replaced on restart.
    pub token_lifetimes: arc_swap::ArcSwap<(std::time::Duration, std::time::Duration)>,
    /// Replaced on restart, with the configuration.
    pub export_roots: arc_swap::ArcSwap<files::ExportRoots>,
}

impl Services {
    /// Opens every service over the root and storage the settings name (first start creates
    /// the system tables, the default certificates and the token signing key).
    pub fn open(config: config::ConfigService, settings: &config::Settings) -> anyhow::Result<Arc<Self>> {
        let storage = Arc::new(storage::Storage::open(&settings.storage_path, settings.write_async)?);
        storage.audit_settings().set(settings.audit_log, settings.audit_retention);
        let (storage, cluster) = cluster::wrap(storage, &config, &settings.node_name)?;
        let certs = Arc::new(certs::CertService::open(&settings.root, storage.clone())?);
        certs.ensure_defaults(&settings.node_name)?;
        objectstore::install_transport();
        let users = users::UserService::open(&settings.root, storage.clone())?;
        let weak = Arc::downgrade(&users);
        let weak_certs = Arc::downgrade(&certs);
        let _ = cluster::SYSTEM_HOOK.set(Box::new(move |table| {
            if let (Some(users), "hdb_user" | "hdb_role") = (weak.upgrade(), table) {
                users.reload_replicated();
            }
            if let (Some(certs), "hdb_certificate") = (weak_certs.upgrade(), table) {
                certs.reload_replicated();
            }
        }));
        let components = components::ComponentService::open(&settings.root, storage.clone())?;
        components.set_cluster(cluster.clone());
        cluster.set_components(Arc::downgrade(&components));
        let config = Arc::new(config);
        cluster.set_config(config.clone());
        Ok(Arc::new(Services {
            config,
            sysinfo: sysinfo::SysinfoService::start(),
            jobs: jobs::JobService::open(storage.clone(), settings.max_concurrent_jobs)?,
            catalog: Default::default(),
            components,
            users,
            tokens: Arc::new(tokens::TokenService::open(&settings.root)?),
            token_lifetimes: arc_swap::ArcSwap::from_pointee((settings.operation_token_timeout, settings.refresh_token_timeout)),
            export_roots: arc_swap::ArcSwap::from_pointee(files::ExportRoots::new(&settings.export_roots)),
            storage,
            cluster,
            certs,
        }))
    }

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
    /// HarperDB's role validation: a 400 whose body lists each problem of the role's
    /// permission JSON (`main_permissions`), not one joined text.
    #[error("Errors in the role permissions JSON provided: {}", .0.join(", "))]
    RolePermissions(Vec<String>),
    /// Detail for the log, never for the client.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
    /// Something this node depends on (NATS for clustering) did not answer in time; the
    /// client may retry (503). The text says what happened to the request.
    #[error("{0}")]
    Unavailable(String),
}

/// Marks an `other` error text a guest receives for [`ServiceError::Unavailable`], so the API
/// answers 503 with the rest of the text (the WIT error has no 503 case; `other` is its
/// open-ended one).
pub const UNAVAILABLE_TAG: &str = "[unavailable] ";

impl ServiceError {
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            ServiceError::Internal(e) => e,
            other => anyhow::anyhow!("{other}"),
        }
    }
}
