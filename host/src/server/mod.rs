//! Start-up and the serve loop: first-start set-up (root folder, configuration, super_user),
//! the listener, restart in place (reload configuration and components, rebind only when the
//! address changed), and clean shutdown on SIGTERM/SIGINT.

mod admin;
mod listen;
mod logging;
mod watch;

pub use admin::{add_user, bundled_cache_dir, precompile};

use admin::{compile_cache_dir, default_builtin_dir, ensure_super_user};
use listen::{rebind, restart_tls, tls_config, Listener, TlsListener};
use logging::{init_logging, filter_for, LogHandle};
use watch::watch_components;
use crate::api::auth::Authenticator;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::services::config::ConfigService;
use crate::services::Services;
use crate::AppState;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What the command line and environment say, beyond the configuration file.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub root: PathBuf,
    /// Overrides by dotted configuration path, applied (and written) at start-up.
    pub overrides: Vec<(String, Value)>,
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    /// Built-in operations; default `operations/` beside the binary.
    pub builtin_dir: Option<PathBuf>,
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(options: Options) -> Result<()> {
    let started = Instant::now();
    let config = ConfigService::open(&options.root)?;
    config.apply_overrides(&options.overrides).context("applying environment and flag overrides")?;
    let settings = config.settings()?;
    let log = init_logging(&settings.log_level);
    if let Err(e) = crate::services::logs::configure(&settings.log) {
        tracing::error!("opening the log file in {}: {e:#}", settings.log.root.display());
    }

    std::fs::create_dir_all(&settings.components_root).with_context(|| format!("creating {}", settings.components_root.display()))?;
    // Keys, password hashes (in the database's WAL) and exports: readable by this user only,
    // tightened if an earlier version or another tool created them wider.
    for dir in [&settings.root, &settings.root.join("keys"), &settings.storage_path, &settings.root.join("exports")] {
        crate::services::files::private_dir(dir).with_context(|| format!("creating {} (mode 0700)", dir.display()))?;
    }

    let cache_dir = compile_cache_dir(&settings.root);
    let builtin_dir = options.builtin_dir.clone().unwrap_or_else(default_builtin_dir);
    let runtime = Arc::new(
        Runtime::new(cache_dir, settings.max_concurrent_calls, settings.call_memory)?.with_bundled_cache(bundled_cache_dir(&builtin_dir)),
    );
    let services = Services::open(config, &settings)?;
    ensure_super_user(&services.users, &options)?;
    let (restart_tx, restart_rx) = tokio::sync::mpsc::unbounded_channel();
    let auth = Authenticator::new(services.clone());
    let state = Arc::new(AppState {
        services,
        auth,
        runtime,
        registry: ArcSwap::from_pointee(Registry::default()),
        call_slots: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_calls as usize)),
        settings: ArcSwap::from_pointee(settings.clone()),
        restart: restart_tx,
        builtin_dir,
        reload: tokio::sync::Mutex::new(()),
        answers: Default::default(),
    });
    // deploy_component and friends check and reload through the loader (held weakly: the
    // services live inside the state).
    let deployer: Arc<dyn crate::services::components::Deployer> = state.clone();
    state.services.components.set_deployer(Arc::downgrade(&deployer));

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .enable_all()
        .build()?;
    tokio.block_on(serve(state, restart_rx, log, started))
}

async fn serve(
    state: Arc<AppState>,
    mut restart_rx: tokio::sync::mpsc::UnboundedReceiver<crate::Restart>,
    log: Option<LogHandle>,
    started: Instant,
) -> Result<()> {
    // Watch the component folders before the first scan: a file copied in at any moment after
    // start-up (even before "listening" is printed) is either in the scan or seen by the watcher.
    let mut watcher = watch_components(&state);
    state.services.cluster.start();
    crate::services::storage::audit::start_retention(state.services.storage.clone().local());
    {
        let _loading = state.reload.lock().await;
        let loader = state.clone();
        let registry = tokio::task::spawn_blocking(move || loader.load_registry(None)).await?;
        state.publish(registry);
    }
    tracing::info!(
        "loaded {} operations in {:?} (pooling allocator: {})",
        state.registry.load().operations.len(),
        started.elapsed(),
        state.runtime.pooled()
    );
    let mut listener = Listener::bind(state.clone(), state.settings.load().operations_addr).await?;
    let mut secure = match state.settings.load().secure_addr {
        Some(addr) => Some(TlsListener::bind(state.clone(), addr, tls_config(&state)?).await?),
        None => None,
    };
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(kind) = restart_rx.recv() => {
                // Several restarts asked for at once are one restart (a full one if any is).
                let mut full = kind == crate::Restart::Full;
                while let Ok(next) = restart_rx.try_recv() {
                    full |= next == crate::Restart::Full;
                }
                if !full {
                    rebind(&state, &mut listener).await;
                    continue;
                }
                if let Err(e) = restart(&state, &mut listener, &mut watcher, log.as_ref()).await {
                    tracing::error!("restart failed, still serving the previous configuration: {e:#}");
                }
                if let Err(e) = restart_tls(&state, &mut secure).await {
                    tracing::error!("HTTPS restart failed, still serving the previous certificate: {e:#}");
                }
            }
        }
    }
    tracing::info!("shutting down");
    if let Some(secure) = secure {
        secure.stop().await;
    }
    listener.stop().await;
    Ok(())
}

/// Restart in place: re-read the configuration, reload every component, rebind the listener
/// only when its address changed. Calls in flight finish on what they started with.
async fn restart(
    state: &Arc<AppState>,
    listener: &mut Listener,
    watcher: &mut Option<notify::RecommendedWatcher>,
    log: Option<&LogHandle>,
) -> Result<()> {
    let started = Instant::now();
    let settings = state.services.config.settings()?;
    if let Some(handle) = log {
        let _ = handle.reload(filter_for(&settings.log_level));
    }
    if let Err(e) = crate::services::logs::configure(&settings.log) {
        tracing::error!("re-opening the log file in {}: {e:#}", settings.log.root.display());
    }
    std::fs::create_dir_all(&settings.components_root)?;
    state.services.export_roots.store(Arc::new(crate::services::files::ExportRoots::new(&settings.export_roots)));
    state.services.token_lifetimes.store(Arc::new((settings.operation_token_timeout, settings.refresh_token_timeout)));
    state.services.storage.clone().local().audit_settings().set(settings.audit_log, settings.audit_retention);
    state.settings.store(Arc::new(settings.clone()));
    state.auth.clear();
    // componentsRoot may have moved: watch the (new) folders before reloading, so nothing
    // copied in during the reload is missed.
    drop(watcher.take());
    *watcher = watch_components(state);
    // Running jobs started on the previous operations and configuration; they end here, as
    // ERROR, rather than finishing half on the old world or hanging IN_PROGRESS.
    state.services.jobs.interrupt_all("The job was interrupted by a restart of the server; run it again");
    let loader = state.clone();
    let _reloading = state.reload.lock().await;
    // A component that fails to load now keeps serving the version it had.
    let previous = state.registry.load_full();
    let registry = tokio::task::spawn_blocking(move || loader.load_registry(Some(&previous))).await?;
    state.publish(registry);
    if settings.operations_addr != listener.addr {
        let next = Listener::bind(state.clone(), settings.operations_addr).await?;
        let previous = std::mem::replace(listener, next);
        tokio::spawn(previous.stop());
    }
    tracing::info!("restarted in {:?}", started.elapsed());
    Ok(())
}

/// A changed `.wasm` counts as written once nothing has touched it for this long...

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
