//! Start-up and the serve loop: first-start set-up (root folder, configuration, super_user),
//! the listener, restart in place (reload configuration and components, rebind only when the
//! address changed), and clean shutdown on SIGTERM/SIGINT.

use crate::api::auth::Authenticator;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::services::config::ConfigService;
use crate::services::storage::Storage;
use crate::services::users::UserService;
use crate::services::Services;
use crate::AppState;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::{reload, EnvFilter};

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

type LogHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

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
        state.registry.store(Arc::new(registry));
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
    state.registry.store(Arc::new(registry));
    if settings.operations_addr != listener.addr {
        let next = Listener::bind(state.clone(), settings.operations_addr).await?;
        let previous = std::mem::replace(listener, next);
        tokio::spawn(previous.stop());
    }
    tracing::info!("restarted in {:?}", started.elapsed());
    Ok(())
}

/// A changed `.wasm` counts as written once nothing has touched it for this long...
const QUIET: Duration = Duration::from_millis(100);
/// ...and its size and modification time hold still over this much longer (a slow copy).
const SETTLE: Duration = Duration::from_millis(40);

/// Hot swap: watches the built-in folder and `componentsRoot`; after a burst of changes has
/// settled, rebuilds the registry from the previous one (unchanged files reused, a failing
/// file keeps its previous version) and publishes it atomically. Calls in flight finish on
/// the version they started with. Returns None (and logs) when watching is unavailable.
fn watch_components(state: &Arc<AppState>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)) {
                for path in event.paths.into_iter().filter(|p| crate::registry::is_component_file(p)) {
                    let _ = tx.send(path);
                }
            }
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the component folders, hot swap is off until restart: {e}");
            return None;
        }
    };
    let settings = state.settings.load();
    for dir in [&state.builtin_dir, &settings.components_root] {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {}: {e}", dir.display());
        }
    }
    let state = state.clone();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = std::collections::BTreeSet::from([first]);
            loop {
                // Debounce: wait for a quiet moment, then for the files to hold still.
                while let Ok(Some(path)) = tokio::time::timeout(QUIET, rx.recv()).await {
                    changed.insert(path);
                }
                let before: Vec<_> = changed.iter().map(|p| file_stamp(p)).collect();
                tokio::time::sleep(SETTLE).await;
                let after: Vec<_> = changed.iter().map(|p| file_stamp(p)).collect();
                if before == after && rx.is_empty() {
                    break;
                }
            }
            let started = Instant::now();
            let _reloading = state.reload.lock().await;
            let loader = state.clone();
            let previous = state.registry.load_full();
            match tokio::task::spawn_blocking(move || loader.load_registry(Some(&previous))).await {
                Ok(next) => {
                    state.registry.store(Arc::new(next));
                    tracing::info!("hot swap of {} file(s) published in {:?}", changed.len(), started.elapsed());
                }
                Err(e) => tracing::error!("hot swap failed, the previous operations keep serving: {e}"),
            }
        }
    });
    Some(watcher)
}

fn file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// `restart_service http_workers`: a fresh listener on the same address takes new connections,
/// then the previous one stops accepting and lets its requests finish.
async fn rebind(state: &Arc<AppState>, listener: &mut Listener) {
    match Listener::bind(state.clone(), listener.addr).await {
        Ok(next) => {
            let previous = std::mem::replace(listener, next);
            tokio::spawn(previous.stop());
            tracing::info!("HTTP listener on {} replaced", listener.addr);
        }
        Err(e) => tracing::error!("could not replace the HTTP listener, the current one keeps serving: {e:#}"),
    }
}

/// On restart the node certificate is read again (a replaced one is served from the next
/// connection on) and the HTTPS listener moves, starts or stops with `securePort`.
async fn restart_tls(state: &Arc<AppState>, secure: &mut Option<TlsListener>) -> Result<()> {
    let Some(addr) = state.settings.load().secure_addr else {
        if let Some(old) = secure.take() {
            tokio::spawn(old.stop());
        }
        return Ok(());
    };
    // A certificate that cannot be loaded leaves the previous one serving.
    let config = tls_config(state)?;
    match secure {
        Some(current) if current.addr == addr => current.config.store(Arc::new(config)),
        _ => {
            let next = TlsListener::bind(state.clone(), addr, config).await?;
            if let Some(old) = secure.replace(next) {
                tokio::spawn(old.stop());
            }
        }
    }
    Ok(())
}

/// rustls configuration from the node certificate in the certificate store.
fn tls_config(state: &AppState) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let node = state.settings.load().node_name.clone();
    let (cert_pem, key_pem) = state.services.certs.tls_identity(&node)?;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(config)
}

/// The HTTPS listener: the same app behind TLS, served by the same accept loop as plain HTTP
/// (handshakes run in each connection's own task, bounded by [`TLS_HANDSHAKE_TIMEOUT`], with
/// the configuration current at accept).
struct TlsListener {
    addr: SocketAddr,
    config: Arc<ArcSwap<rustls::ServerConfig>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    async fn bind(state: Arc<AppState>, addr: SocketAddr, config: rustls::ServerConfig) -> Result<Self> {
        let config = Arc::new(ArcSwap::from_pointee(config));
        let socket = listen(addr)?;
        let addr = socket.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(socket, state, Some(config.clone()), stopped));
        println!("opshost listening on https://{addr}");
        Ok(Self { addr, config, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// One bound listener serving the app, stoppable gracefully.
struct Listener {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// A listening socket with SO_REUSEPORT, so a replacement listener can bind the same address
/// before the current one stops (restart_service http_workers): no connection is refused in
/// between.
fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr).with_context(|| format!("binding {addr}"))?;
    socket.listen(1024).with_context(|| format!("listening on {addr}"))
}

impl Listener {
    async fn bind(state: Arc<AppState>, addr: SocketAddr) -> Result<Self> {
        let socket = listen(addr)?;
        let addr = socket.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(socket, state, None, stopped));
        // The line tests and operators wait for.
        println!("opshost listening on http://{addr}");
        Ok(Self { addr, stop, task })
    }

    /// Stops accepting, lets requests in flight finish (bounded), then returns.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// How long a client has for the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept (EMFILE, ENFILE, ENOBUFS): retrying at once would spin a
/// core and flood the log while descriptors stay exhausted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Open client connections, both listeners and every rebind together
/// (`operationsApi.network.maxConnections`, read once per process).
fn connection_slots(state: &AppState) -> Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(state.settings.load().max_connections))).clone()
}

/// Accepts and serves connections until `stopped`, then lets the open ones finish their
/// request in flight. A connection first takes a slot of `maxConnections` (past it, new
/// connections wait in the kernel backlog), must send each request's headers within
/// `headersTimeout` (also the most a kept-alive connection may sit idle), and over TLS must
/// finish its handshake within [`TLS_HANDSHAKE_TIMEOUT`]. Each request carries the peer
/// address (`ConnectInfo`) for the login throttle.
/// How long a stopping listener keeps accepting what the kernel already queued on it.
const DRAIN_QUIET: Duration = Duration::from_millis(50);
/// ...and at most this long in all, under a steady stream of new connections.
const DRAIN_MAX: Duration = Duration::from_millis(500);

async fn accept_loop(
    socket: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let app = crate::app(state.clone());
    let slots = connection_slots(&state);
    // Every connection task holds a clone of `open`; once all are dropped, `closed` ends.
    let (open, mut closed) = tokio::sync::mpsc::channel::<()>(1);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let spawn_connection = |stream: tokio::net::TcpStream, peer: SocketAddr, slot: Option<tokio::sync::OwnedSemaphorePermit>| {
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = tls.as_ref().map(|config| tokio_rustls::TlsAcceptor::from(config.load_full()));
        let headers_timeout = state.settings.load().headers_timeout;
        let (open, stopping) = (open.clone(), stopping.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let mut app = app.clone();
                async move { tower_service::Service::call(&mut app, request).await }
            });
            match acceptor {
                None => serve_connection(hyper_util::rt::TokioIo::new(stream), service, headers_timeout, stopping).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => serve_connection(hyper_util::rt::TokioIo::new(tls), service, headers_timeout, stopping).await,
                    Ok(Err(_)) | Err(_) => {}
                },
            }
        });
    };
    loop {
        let slot = tokio::select! {
            _ = &mut stopped => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stopped => break,
            accepted = socket.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed (retrying in {ACCEPT_BACKOFF:?}): {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        spawn_connection(stream, peer, Some(slot));
    }
    // SO_REUSEPORT: until this socket closes, the kernel still queues a share of new connections
    // on it (a replacement listener is already bound). Serve what it queued, until none arrives
    // for a moment, then close; those connections are not reset.
    let drain_until = tokio::time::Instant::now() + DRAIN_MAX;
    while tokio::time::Instant::now() < drain_until {
        match tokio::time::timeout(DRAIN_QUIET, socket.accept()).await {
            Ok(Ok((stream, peer))) => spawn_connection(stream, peer, None),
            _ => break,
        }
    }
    drop(socket);
    let _ = stopping_tx.send(true);
    drop(open);
    let _ = closed.recv().await;
}

/// One HTTP/1.1 connection with hyper's header-read timer on; on stop it finishes the request
/// in flight and closes.
async fn serve_connection<I, S>(io: I, service: S, headers_timeout: Duration, mut stopping: tokio::sync::watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(headers_timeout).keep_alive(true);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

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

/// On first start (no super_user yet), creates the super_user from the options (HDB_ADMIN_USERNAME /
/// HDB_ADMIN_PASSWORD or flags); with no password given, generates one and prints it once.
fn ensure_super_user(users: &UserService, options: &Options) -> Result<()> {
    if users.has_super_user() {
        return Ok(());
    }
    let username = options.admin_username.clone().unwrap_or_else(|| "admin".to_string());
    // The user exists but is no longer an active super_user (or the role lost super_user):
    // repair rather than fail with "already exists".
    if users.repair_super_user(&username, options.admin_password.as_deref()).map_err(|e| e.into_anyhow())? {
        eprintln!(
            "opshost: no active super_user was left; '{username}' is an active super_user again{}",
            if options.admin_password.is_some() { " with the given password" } else { " (password unchanged)" }
        );
        return Ok(());
    }
    let (password, generated) = match &options.admin_password {
        Some(p) => (p.clone(), false),
        None => {
            use rand::Rng;
            let p: String = rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            (p, true)
        }
    };
    users.add_user(&username, &password, "super_user", true).map_err(|e| e.into_anyhow())?;
    if generated {
        println!("opshost: created super_user '{username}' with password '{password}' (shown once; keep it)");
    } else {
        println!("opshost: created super_user '{username}'");
    }
    Ok(())
}

/// `opshost precompile`: fills the compile cache for the given component files and folders,
/// several at a time.
pub fn precompile(root: &std::path::Path, paths: &[PathBuf]) -> Result<usize> {
    // The same engine settings as the server's, or the cache entries would not match its engine.
    let settings = ConfigService::open(root)?.settings()?;
    let runtime = Runtime::new(compile_cache_dir(root), settings.max_concurrent_calls, settings.call_memory)?;
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(crate::registry::wasm_files(path));
        } else {
            files.push(path.clone());
        }
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = files.iter().map(|f| scope.spawn(|| runtime.precompile(f).with_context(|| format!("compiling {}", f.display())))).collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a compile thread panicked"))?)
    })?;
    Ok(files.len())
}

/// `OPSHOST_COMPILE_CACHE` lets several roots share one cache of compiled components (the
/// tests do); entries are keyed by content and engine hash, written atomically.
fn compile_cache_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("OPSHOST_COMPILE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("cache").join("components"))
}

/// `opshost user add`: adds a user to the root's store while the server is stopped (the
/// database is locked by a running server). A role that does not exist yet is created with no
/// permissions, to be granted with `alter_role`.
pub fn add_user(root: &std::path::Path, username: &str, password: &str, role: &str) -> Result<()> {
    let config = ConfigService::open(root)?;
    let settings = config.settings()?;
    let storage = Arc::new(Storage::open(&settings.storage_path, settings.write_async)?);
    let users = UserService::open(root, storage)?;
    users.ensure_role(role).map_err(|e| e.into_anyhow())?;
    users.add_user(username, password, role, true).map_err(|e| e.into_anyhow())?;
    Ok(())
}

/// `precompiled/` beside the built-in operations folder: what `cargo xtask build` compiled.
pub fn bundled_cache_dir(builtin_dir: &std::path::Path) -> PathBuf {
    builtin_dir.parent().map(|d| d.join("precompiled")).unwrap_or_else(|| PathBuf::from("precompiled"))
}

fn default_builtin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("operations")))
        .unwrap_or_else(|| PathBuf::from("operations"))
}

/// HarperDB's level names mapped onto tracing's; `RUST_LOG` wins when set.
fn filter_for(level: &str) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_env("RUST_LOG") {
        return filter;
    }
    let level = match level {
        "notify" | "info" => "info",
        "fatal" | "error" => "error",
        "warn" => "warn",
        "debug" => "debug",
        "trace" => "trace",
        _ => "warn",
    };
    EnvFilter::new(format!("opshost={level},wasmtime=warn"))
}

fn init_logging(level: &str) -> Option<LogHandle> {
    use tracing_subscriber::prelude::*;
    let (filter, handle) = reload::Layer::new(filter_for(level));
    // hdb.log and stderr (services/logs.rs), as `logging.*` says once configured.
    tracing_subscriber::registry().with(filter).with(crate::services::logs::LogLayer).try_init().ok().map(|_| handle)
}
