//! The HTTP and HTTPS listeners: binding, TLS configuration, the accept loop with connection
//! slots and graceful stop, and moving or replacing them on restart.

use crate::AppState;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `restart_service http_workers`: a fresh listener on the same address takes new connections,
/// then the previous one stops accepting and lets its requests finish.
pub(super) async fn rebind(state: &Arc<AppState>, listener: &mut Listener) {
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
pub(super) async fn restart_tls(state: &Arc<AppState>, secure: &mut Option<TlsListener>) -> Result<()> {
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
pub(super) fn tls_config(state: &AppState) -> Result<rustls::ServerConfig> {
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
pub(super) struct TlsListener {
    pub(super) addr: SocketAddr,
    pub(super) config: Arc<ArcSwap<rustls::ServerConfig>>,
    pub(super) stop: tokio::sync::oneshot::Sender<()>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(super) async fn bind(state: Arc<AppState>, addr: SocketAddr, config: rustls::ServerConfig) -> Result<Self> {
        let config = Arc::new(ArcSwap::from_pointee(config));
        let socket = listen(addr)?;
        let addr = socket.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(socket, state, Some(config.clone()), stopped));
        println!("opshost listening on https://{addr}");
        Ok(Self { addr, config, stop, task })
    }

    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// One bound listener serving the app, stoppable gracefully.
pub(super) struct Listener {
    pub(super) addr: SocketAddr,
    pub(super) stop: tokio::sync::oneshot::Sender<()>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

/// A listening socket with SO_REUSEPORT, so a replacement listener can bind the same address
/// before the current one stops (restart_service http_workers): no connection is refused in
/// between.
pub(super) fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr).with_context(|| format!("binding {addr}"))?;
    socket.listen(1024).with_context(|| format!("listening on {addr}"))
}

impl Listener {
    pub(super) async fn bind(state: Arc<AppState>, addr: SocketAddr) -> Result<Self> {
        let socket = listen(addr)?;
        let addr = socket.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(socket, state, None, stopped));
        // The line tests and operators wait for.
        println!("opshost listening on http://{addr}");
        Ok(Self { addr, stop, task })
    }

    /// Stops accepting, lets requests in flight finish (bounded), then returns.
    pub(super) async fn stop(self) {
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
pub(super) fn connection_slots(state: &AppState) -> Arc<tokio::sync::Semaphore> {
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

pub(super) async fn accept_loop(
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
pub(super) async fn serve_connection<I, S>(io: I, service: S, headers_timeout: Duration, mut stopping: tokio::sync::watch::Receiver<bool>)
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
