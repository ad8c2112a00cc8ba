//! opshost: a HarperDB Operations API server in which every operation is a WebAssembly
//! component. This library holds the whole server; `main.rs` only parses the command line.

pub mod answers;
pub mod api;
pub mod bindings;
pub mod capabilities;
pub mod compile_cache;
pub mod deployer;
pub mod memtrace;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod services;

use arc_swap::ArcSwap;
use axum::routing::post;
use axum::Router;
use registry::Registry;
use runtime::{CallLimits, Runtime};
use services::config::Settings;
use services::Services;
use std::path::PathBuf;
use std::sync::Arc;

/// What the server loop restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Configuration, components, listeners whose address changed (`restart`).
    Full,
    /// The HTTP listener only (`restart_service http_workers`).
    Listeners,
}

/// Everything a request needs, shared by all of them.
pub struct AppState {
    pub services: Arc<Services>,
    pub auth: api::auth::Authenticator,
    pub runtime: Arc<Runtime>,
    /// Swapped whole on restart; a call holds the registry it started with.
    pub registry: ArcSwap<Registry>,
    pub settings: ArcSwap<Settings>,
    /// Bounds concurrent guest calls to what the instance pool can hold.
    pub call_slots: Arc<tokio::sync::Semaphore>,
    /// Asks the server loop to restart in place.
    pub restart: tokio::sync::mpsc::UnboundedSender<Restart>,
    pub builtin_dir: PathBuf,
    /// Serializes registry rebuilds (restart, hot swap) so none publishes over a newer one.
    pub reload: tokio::sync::Mutex<()>,
    /// Answers of built-in operations kept while what they read holds (answers.rs).
    pub answers: answers::Answers,
}

impl AppState {
    pub fn call_limits(&self) -> CallLimits {
        let s = self.settings.load();
        CallLimits { memory_bytes: s.call_memory, timeout: s.call_timeout }
    }

    /// A job's run: the same memory limit, the (longer) job time limit.
    pub fn job_limits(&self) -> CallLimits {
        let s = self.settings.load();
        CallLimits { memory_bytes: s.call_memory, timeout: s.job_timeout }
    }

    /// Loads every component with the current settings (blocking: compiles on a cache miss).
    /// With `previous`, unchanged files keep their loaded version and a failing file keeps
    /// serving its previous one.
    pub fn load_registry(&self, previous: Option<&Registry>) -> Registry {
        let settings = self.settings.load();
        let policy = self.policy();
        let sources = registry::Sources {
            builtin_dir: &self.builtin_dir,
            components_root: &settings.components_root,
            policy: &policy,
            limits: self.call_limits(),
        };
        Registry::load(&self.runtime, &self.services, &sources, previous)
    }

    /// The loading policy now: the configuration's, plus the components deployed through the
    /// API (their grants follow their deployed bytes).
    pub fn policy(&self) -> services::grants::Policy {
        let mut policy = self.settings.load().policy.clone();
        match self.services.components.deployed() {
            Ok(deployed) => policy.deployed = deployed,
            Err(e) => tracing::error!("cannot read the deployed components; loading without their grants: {e}"),
        }
        policy
    }

    /// Serves `registry` from now on. Kept answers are forgotten: they were made under the
    /// previous operations' limits (a restart may have lowered them) and grants.
    pub fn publish(&self, registry: Registry) {
        self.registry.store(Arc::new(registry));
        self.answers.clear();
    }

    /// Rebuilds the registry from disk (unchanged files reused, a failing file keeps its
    /// previous version) and publishes it; one rebuild at a time.
    pub async fn reload_registry(self: &Arc<Self>, why: &str) {
        let started = std::time::Instant::now();
        let _reloading = self.reload.lock().await;
        let loader = self.clone();
        let previous = self.registry.load_full();
        match tokio::task::spawn_blocking(move || loader.load_registry(Some(&previous))).await {
            Ok(next) => {
                self.publish(next);
                tracing::info!("registry rebuilt after {why}, published in {:?}", started.elapsed());
            }
            Err(e) => tracing::error!("rebuilding the registry after {why} failed, the previous operations keep serving: {e}"),
        }
    }
}

/// The HTTP application: `POST /` runs an operation.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        // GET / and /studio/*: the Studio's static files (no login, never the POST pipeline).
        .route("/", post(api::routes::operation).get(api::studio::index))
        .route("/studio/{file}", axum::routing::get(api::studio::file))
        // The handler reads the body itself, after authentication, with its own limits
        // (64 KiB before logging in, operationsApi.network.maxBodySize after).
        .with_state(state)
}
