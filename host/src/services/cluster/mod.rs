//! Clustering over NATS JetStream (HarperDB 4.0–4.3's engine): every node keeps the whole data
//! set in its RocksDB; committed changes are published on one stream (`clustering.nats.stream`,
//! default `OPSHOST`, subjects `opshost.>`: the name in lower case) and every node applies the
//! others' changes, last writer wins, so all nodes converge. Each node reads the stream from
//! the position it stored as applied, through an unacknowledged one-replica consumer of its own
//! (`node_<name>_<time>`, made for each read), so a node that was down resumes where it
//! stopped. Node registrations (`add_node` and friends, HarperDB's
//! `system.hdb_nodes`) filter what is applied and published per database and table.
//!
//! Configuration (`clustering.*`, read at start and by `restart_service clustering`):
//! `enabled` (default false: nothing here runs and the store is plain RocksDB), `nodeName`,
//! `nats.servers` (comma-separated URLs), `nats.replicas` (copies of the stream, 1 for a lone
//! server), `nats.stream` (nodes on one stream form one cluster), `user`/`password`, `tls.certificateAuthority`.

pub mod change;
pub mod components;
pub mod snapshot;
pub mod store;

use crate::services::storage::{Storage, StorageBackend, WriteMode, SYSTEM_DATABASE};
use crate::services::ServiceError;
use anyhow::Context as _;
use async_nats::jetstream;
use change::{Change, Kind};
use futures::{FutureExt as _, StreamExt as _};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Node registrations, local to each node (HarperDB's table name).
pub const NODES_TABLE: &str = "hdb_nodes";
/// How long a write waits for JetStream to take its change (NATS failover included) before
/// the caller gets a 503 (`clustering.publishTimeout`, ms); the change keeps being retried in
/// the background after that. Below the default `callTimeout`, so the caller hears why.
const PUBLISH_WAIT_DEFAULT_MS: u64 = 5_000;
/// How long the background publisher keeps retrying one change before it logs it as lost
/// to the stream (the local write stays).
const PUBLISH_RETRY_LOG: Duration = Duration::from_secs(30);
/// Most remote changes applied together (those already received when the first arrives).
const APPLY_BATCH: usize = 512;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `clustering.*` as the host uses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterSettings {
    pub enabled: bool,
    pub node_name: String,
    pub servers: Vec<String>,
    pub replicas: usize,
    /// The JetStream stream; its lower-case name is the subject prefix.
    pub stream: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub ca: Option<PathBuf>,
    /// How long a write waits for JetStream's acknowledgement before answering 503.
    pub publish_timeout: Duration,
    /// The stream's message limit (`clustering.nats.maxMsgs`, made with the stream; -1: none):
    /// past it the oldest changes go, and a node that had not applied them catches up by
    /// snapshot.
    pub max_msgs: i64,
    /// Batches of changes in flight to JetStream at once (`clustering.publishInFlight`).
    pub publish_in_flight: usize,
}

impl ClusterSettings {
    /// From the configuration file's value (missing keys take their defaults).
    pub fn from_config(config: &Value, fallback_name: &str) -> Self {
        let get = |path: &str| path.split('.').try_fold(config, |v, k| v.get(k)).filter(|v| !v.is_null());
        let text = |path: &str| get(path).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let servers = match get("clustering.nats.servers") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        Self {
            enabled: get("clustering.enabled").and_then(Value::as_bool).unwrap_or(false),
            // A JetStream consumer name: no `.`, `*`, `>` or spaces.
            node_name: text("clustering.nodeName")
                .unwrap_or_else(|| fallback_name.to_string())
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect(),
            servers: if servers.is_empty() { vec!["nats://127.0.0.1:4222".into()] } else { servers },
            replicas: get("clustering.nats.replicas").and_then(Value::as_u64).unwrap_or(1).clamp(1, 5) as usize,
            stream: text("clustering.nats.stream")
                .map(|s| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect())
                .unwrap_or_else(|| "OPSHOST".to_string()),
            user: text("clustering.user"),
            password: text("clustering.password"),
            ca: text("clustering.tls.certificateAuthority").map(PathBuf::from),
            publish_timeout: Duration::from_millis(
                get("clustering.publishTimeout").and_then(Value::as_u64).unwrap_or(PUBLISH_WAIT_DEFAULT_MS).clamp(10, 600_000),
            ),
            max_msgs: get("clustering.nats.maxMsgs").and_then(Value::as_i64).filter(|n| *n > 0).unwrap_or(-1),
            publish_in_flight: get("clustering.publishInFlight").and_then(Value::as_u64).unwrap_or(PUBLISH_IN_FLIGHT as u64).clamp(1, 64) as usize,
        }
    }
}

/// One registered remote node and what flows between it and this node.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeEntry {
    #[serde(alias = "node_name")]
    pub name: String,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

/// HarperDB's subscription: `schema` (NATS era) or `database` (4.4+), a table, and the
/// directions (`subscribe`: remote → local, `publish`: local → remote).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Subscription {
    #[serde(alias = "schema")]
    pub database: String,
    pub table: String,
    #[serde(default)]
    pub subscribe: bool,
    #[serde(default)]
    pub publish: bool,
}

/// What `cluster_status` reports about the connection.
#[derive(Default)]
struct Status {
    connected: bool,
    last_error: Option<String>,
    /// Changes in the stream this node has not applied yet.
    pending: u64,
    applied: u64,
    /// Replication lag of the last applied change (its publish → applied here), ms.
    last_lag_ms: Option<u64>,
    /// Remote nodes seen on the stream, with the time of their last change.
    seen: BTreeMap<String, u64>,
    /// Each remote node's replication lag: its last change applied here (publish → applied), ms.
    node_lag_ms: BTreeMap<String, u64>,
    /// Why this node is catching up by snapshot, while it is (snapshot.rs).
    catch_up: Option<String>,
    snapshots: u64,
    last_snapshot: Option<Value>,
}

/// A change waiting for JetStream, and who waits for the answer.
struct Outgoing {
    subject: String,
    payload: Vec<u8>,
    done: Option<std::sync::mpsc::SyncSender<Result<(), String>>>,
}

pub struct Cluster {
    settings: RwLock<ClusterSettings>,
    storage: Arc<Storage>,
    nodes: RwLock<BTreeMap<String, NodeEntry>>,
    status: Mutex<Status>,
    outbox: Mutex<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    /// The outbox's other end until [`Cluster::start`] hands it to the publisher: changes made
    /// before (the first start's users and roles) wait there.
    pending: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Outgoing>>>,
    /// Whether the publisher runs (then a write waits for its change's acknowledgement).
    running: std::sync::atomic::AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// JetStream once connected (the component bytes' object store uses it).
    js: Mutex<Option<jetstream::Context>>,
    /// Applies other nodes' component deploys and drops (components.rs).
    components: std::sync::OnceLock<std::sync::Weak<crate::services::components::ComponentService>>,
    /// Writes other nodes' cluster-wide configuration keys into this node's file.
    config: std::sync::OnceLock<Arc<crate::services::config::ConfigService>>,
    /// Stream sequences of this node's own messages not yet passed by its consumer: the stream
    /// discarding only these is no gap (nothing of another node's was missed).
    own: Arc<Mutex<OwnSequences>>,
    /// The consumer of the current read of the stream (deleted when the next read starts).
    reader: Mutex<Option<String>>,
}

/// This node's published sequences above its consumer's position ([`Cluster::own`]), bounded:
/// past the bound they are forgotten, and a gap over them then asks for a snapshot (safe, only
/// unneeded).
#[derive(Default)]
struct OwnSequences {
    sequences: std::collections::BTreeSet<u64>,
}

const OWN_SEQUENCES_MAX: usize = 1 << 20;

impl OwnSequences {
    fn add(&mut self, sequence: u64) {
        if self.sequences.len() >= OWN_SEQUENCES_MAX {
            self.sequences.clear();
        }
        self.sequences.insert(sequence);
    }

    /// Forgets the sequences the consumer has passed.
    fn passed(&mut self, applied: u64) {
        if self.sequences.first().is_some_and(|s| *s <= applied) {
            self.sequences = self.sequences.split_off(&(applied + 1));
        }
    }

    /// Whether every sequence from `applied + 1` up to `next - 1` is this node's own.
    fn covers(&self, applied: u64, next: u64) -> bool {
        let from = applied.saturating_add(1);
        let wanted = next.saturating_sub(from);
        wanted == 0 || (wanted <= self.sequences.len() as u64 && self.sequences.range(from..next).count() as u64 == wanted)
    }
}

impl Cluster {
    /// The cluster service over the local store; nothing connects until [`Cluster::start`].
    pub fn open(storage: Arc<Storage>, settings: ClusterSettings) -> anyhow::Result<Arc<Self>> {
        if storage.describe_table(SYSTEM_DATABASE, NODES_TABLE).is_err() {
            storage.create_table(SYSTEM_DATABASE, NODES_TABLE, "name").map_err(ServiceError::into_anyhow).context("creating system.hdb_nodes")?;
        }
        let rows = storage.search(SYSTEM_DATABASE, NODES_TABLE, Default::default()).and_then(|mut c| c.collect_all());
        let nodes = rows
            .map_err(ServiceError::into_anyhow)?
            .into_iter()
            .filter_map(|v| serde_json::from_value::<NodeEntry>(v).ok())
            .map(|n| (n.name.clone(), n))
            .collect();
        Self::ensure_position_table(&storage)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            settings: RwLock::new(settings),
            storage,
            nodes: RwLock::new(nodes),
            status: Mutex::new(Status::default()),
            outbox: Mutex::new(tx),
            pending: Mutex::new(Some(rx)),
            running: Default::default(),
            tasks: Mutex::new(Vec::new()),
            js: Mutex::new(None),
            components: std::sync::OnceLock::new(),
            config: std::sync::OnceLock::new(),
            own: Default::default(),
            reader: Mutex::new(None),
        }))
    }

    pub fn enabled(&self) -> bool {
        self.settings.read().enabled
    }

    pub fn node_name(&self) -> String {
        self.settings.read().node_name.clone()
    }

    /// Hands in the configuration service that applies other nodes' cluster-wide keys (once,
    /// at start).
    pub fn set_config(&self, config: Arc<crate::services::config::ConfigService>) {
        let _ = self.config.set(config);
    }

    /// After a local `set_configuration` was written: its cluster-wide keys go to every node
    /// (node-local ones stay here). Nothing is published when there are none or clustering is off.
    pub fn publish_configuration(&self, changes: &[(String, String)], user: &str) -> Result<(), ServiceError> {
        let changes = crate::services::config::ConfigService::cluster_wide(changes);
        if changes.is_empty() {
            return Ok(());
        }
        self.publish(Kind::SetConfiguration { changes, user: user.into() })
    }

    /// Writes another node's cluster-wide keys here (each through this node's validation; a
    /// key refused here is logged, the others are written). Never published again: only local
    /// `set_configuration` calls publish.
    fn apply_configuration(&self, origin: &str, changes: &[(String, String)], user: &str) -> Result<(), ServiceError> {
        let config = self.config.get().ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the configuration service is not set")))?;
        for refused in config.set_replicated(changes)? {
            tracing::warn!("clustering: a configuration key set by {user} on {origin} was not applied here: {refused}");
        }
        Ok(())
    }

    /// Connects (in the background, retrying) and starts publishing and applying. Call from
    /// inside the tokio runtime. Does nothing when clustering is off.
    pub fn start(self: &Arc<Self>) {
        let settings = self.settings.read().clone();
        if !settings.enabled {
            return;
        }
        let rx = match self.pending.lock().take() {
            Some(rx) => rx,
            None => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                *self.outbox.lock() = tx;
                rx
            }
        };
        self.running.store(true, std::sync::atomic::Ordering::Release);
        let me = self.clone();
        let task = tokio::spawn(async move { me.run(settings, rx).await });
        self.tasks.lock().push(task);
    }

    /// `restart_service clustering` / `clustering_config`: re-reads `clustering.*` and
    /// reconnects (or stops, when turned off). Call from inside the tokio runtime.
    pub fn reload(self: &Arc<Self>, config: &crate::services::config::ConfigService, fallback_name: &str) {
        match config.file_value() {
            Ok(value) => self.restart(ClusterSettings::from_config(&value, fallback_name)),
            Err(e) => tracing::error!("clustering: reading the configuration failed, keeping the current connection: {e}"),
        }
    }

    /// Drops the connection and connects again with `settings` (changes waiting for
    /// JetStream are lost to their callers, who got or will get an error; the local writes
    /// stay).
    pub fn restart(self: &Arc<Self>, settings: ClusterSettings) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        self.running.store(false, std::sync::atomic::Ordering::Release);
        *self.status.lock() = Status::default();
        *self.settings.write() = settings;
        self.start();
    }

    async fn run(self: Arc<Self>, settings: ClusterSettings, rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
        let client = loop {
            match connect(&settings).await {
                Ok(c) => break c,
                Err(e) => {
                    self.status.lock().last_error = Some(format!("{e:#}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let js = jetstream::new(client.clone());
        *self.js.lock() = Some(js.clone());
        let publisher = tokio::spawn(publish_loop(js.clone(), rx, self.own.clone(), settings.publish_in_flight));
        let watcher = {
            let me = self.clone();
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    me.status.lock().connected = client.connection_state() == async_nats::connection::State::Connected;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        // Tombstones and origins past the horizon go at start and then hourly.
        let purger = {
            let storage = self.storage.clone();
            tokio::spawn(async move {
                loop {
                    let s = storage.clone();
                    let before = now_ms().saturating_sub(crate::services::storage::backend::TOMBSTONE_HORIZON_MS);
                    match tokio::task::spawn_blocking(move || s.purge_replication_marks(before)).await {
                        Ok(Ok(n)) if n > 0 => tracing::info!("clustering: purged {n} tombstones and origins older than the horizon"),
                        Ok(Err(e)) => tracing::warn!("clustering: purging tombstones failed: {e}"),
                        _ => {}
                    }
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            })
        };
        let snapshots = tokio::spawn(self.clone().serve_snapshots(js.clone(), settings.clone()));
        self.tasks.lock().extend([publisher, watcher, purger, snapshots]);
        loop {
            if let Err(e) = self.consume(&js, &settings).await {
                tracing::warn!("clustering: consuming the stream failed, retrying: {e:#}");
                self.status.lock().last_error = Some(format!("{e:#}"));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Applies the other nodes' changes, read from the stream after the last position this node
    /// stored as applied. The consumer is made for this one read: one replica, in memory, no
    /// acknowledgements (an acknowledged, replicated durable consumer made every applied batch
    /// a raft proposal on three NATS servers, the largest part of their CPU per write). The
    /// position lives in RocksDB (`system.hdb_cluster_position`), stored only after what it
    /// covers was applied, so a restart (of this node, of the read after any error, or after
    /// the consumer's NATS server died) resumes at or before the first change not applied and
    /// never skips one; what is applied twice merges to the same bytes.
    async fn consume(self: &Arc<Self>, js: &jetstream::Context, settings: &ClusterSettings) -> anyhow::Result<()> {
        let stream = ensure_stream(js, settings).await?;
        let mut applied = self.stored_position(&settings.stream);
        // Before round 7 each node read through an acknowledged durable consumer `node_<name>`:
        // what it acknowledged was applied; it goes (it would hold its state on three servers).
        let durable = format!("node_{}", settings.node_name);
        if let Ok(old) = stream.get_consumer::<jetstream::consumer::pull::Config>(&durable).await {
            applied = applied.max(old.cached_info().ack_floor.stream_sequence);
            let _ = stream.delete_consumer(&durable).await;
        }
        let previous = self.reader.lock().take();
        if let Some(previous) = previous {
            // The last read's consumer (its server may be gone: then it expires on its own).
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.delete_consumer(&previous)).await;
        }
        // Changes discarded by the stream's limits before this node applied them come by
        // snapshot (snapshot.rs) before the stream goes on.
        let first = stream.get_info().await.map_err(|e| anyhow::anyhow!("reading stream {}: {e}", settings.stream))?.state.first_sequence;
        if self.missed(applied, first) {
            self.catch_up(js, settings, applied, first).await?;
            applied = first.saturating_sub(1);
        }
        let name = format!("node_{}_{}", settings.node_name, now_ms());
        let consumer: jetstream::consumer::PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                name: Some(name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::None,
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: applied + 1 },
                num_replicas: 1,
                memory_storage: true,
                // A read whose node is gone is removed by the servers.
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating consumer {name}: {e}"))?;
        *self.reader.lock() = Some(name);
        // A missing heartbeat (the consumer's server died) ends this read; the next one starts
        // on a live server from the stored position.
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(APPLY_BATCH)
            .expires(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("consuming: {e}"))?;
        self.status.lock().last_error = None;
        let mut last_info = std::time::Instant::now() - Duration::from_secs(10);
        let mut stored = applied;
        loop {
            if last_info.elapsed() > Duration::from_secs(1) {
                if stored != applied {
                    let (me, stream_name) = (self.clone(), settings.stream.clone());
                    tokio::task::spawn_blocking(move || me.store_position(&stream_name, applied)).await?;
                    stored = applied;
                }
                last_info = std::time::Instant::now();
            }
            let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
            let first = match next {
                Err(_) => continue,
                Ok(None) => anyhow::bail!("the consumer's message stream ended"),
                Ok(Some(m)) => m.map_err(|e| anyhow::anyhow!("receiving: {e}"))?,
            };
            // Whatever else has already arrived is applied with it: a run of puts to one
            // table is one RocksDB batch (one WAL sync) instead of one write per change.
            let mut batch = vec![first];
            let mut failure = None;
            while batch.len() < APPLY_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => batch.push(m),
                    Some(Some(Err(e))) => {
                        failure = Some(anyhow::anyhow!("receiving: {e}"));
                        break;
                    }
                    Some(None) => {
                        failure = Some(anyhow::anyhow!("the consumer's message stream ended"));
                        break;
                    }
                    None => break,
                }
            }
            if let Some(info) = batch.last().and_then(|m| m.info().ok()) {
                self.status.lock().pending = info.pending;
            }
            // A delivered sequence past the next one: the stream discarded changes meanwhile.
            let newest = batch.iter().filter_map(|m| m.info().ok().map(|i| i.stream_sequence)).max().unwrap_or(applied);
            let lowest = batch.iter().filter_map(|m| m.info().ok().map(|i| i.stream_sequence)).filter(|s| *s > applied).min();
            if let Some(lowest) = lowest.filter(|l| self.missed(applied, *l)) {
                self.catch_up(js, settings, applied, lowest).await?;
            }
            let through = applied.max(newest);
            // This node's own messages (JetStream gave it their sequences) are not even parsed;
            // one delivered before its acknowledgement reached the publisher is parsed and
            // then skipped by its origin.
            let theirs: Vec<&jetstream::Message> = {
                let mut own = self.own.lock();
                let theirs = batch.iter().filter(|m| !m.info().is_ok_and(|i| own.sequences.contains(&i.stream_sequence))).collect();
                own.passed(through);
                theirs
            };
            let changes: Vec<Change> = theirs
                .into_iter()
                .flat_map(|m| match read_changes(&m.payload) {
                    Ok(changes) => changes,
                    Err(e) => {
                        tracing::warn!("clustering: skipping an unreadable change: {e}");
                        Vec::new()
                    }
                })
                .filter(|c| c.origin != settings.node_name)
                .collect();
            if !changes.is_empty() {
                // Component changes are applied in their place in the stream, between runs of
                // the others (a deploy awaits the loader; the rest is blocking RocksDB work).
                let mut results = Vec::with_capacity(changes.len());
                let mut run = Vec::new();
                for change in changes {
                    if matches!(change.kind, Kind::DeployComponent { .. } | Kind::DropComponent { .. }) {
                        results.extend(self.apply_run(&settings.node_name, std::mem::take(&mut run)).await?);
                        results.push(self.apply_component(js, change).await);
                    } else {
                        run.push(change);
                    }
                }
                results.extend(self.apply_run(&settings.node_name, run).await?);
                let mut status = self.status.lock();
                for (origin, sent, applied) in results {
                    match applied {
                        Ok(true) => {
                            let lag = now_ms().saturating_sub(sent);
                            status.applied += 1;
                            status.last_lag_ms = Some(lag);
                            status.node_lag_ms.insert(origin.clone(), lag);
                        }
                        Ok(false) => {}
                        // Not retried: the same change would fail the same way.
                        Err(e) => tracing::error!("clustering: applying a change from {origin} failed: {e}"),
                    }
                    status.seen.insert(origin, sent);
                }
            }
            // Applied: the position (stored within a second) may pass them.
            applied = through;
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }

    /// Whether changes of other nodes may have been discarded between `applied` and `next`
    /// (the first sequence delivered or kept): a gap of this node's own changes is none.
    fn missed(&self, applied: u64, next: u64) -> bool {
        snapshot::missed(applied, next) && !self.own.lock().covers(applied, next)
    }

    /// [`Cluster::apply_all`] on a blocking thread.
    async fn apply_run(self: &Arc<Self>, me: &str, changes: Vec<Change>) -> anyhow::Result<Vec<(String, u64, Result<bool, String>)>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (this, me) = (self.clone(), me.to_string());
        Ok(tokio::task::spawn_blocking(move || this.apply_all(&me, changes)).await?)
    }

    /// Applies a run of remote changes in stream order, each put joined to the put before it
    /// when both are for the same table (one merge: last writer wins inside it too, each
    /// version with its origin). Each change's origin, publish time and whether it was applied.
    fn apply_all(&self, me: &str, changes: Vec<Change>) -> Vec<(String, u64, Result<bool, String>)> {
        type Group = (String, String, String, Vec<(String, Value)>);
        let mut out = Vec::with_capacity(changes.len());
        let mut group: Option<Group> = None;
        let mut members: Vec<(String, u64)> = Vec::new();
        let flush = |group: &mut Option<Group>, members: &mut Vec<(String, u64)>, out: &mut Vec<(String, u64, Result<bool, String>)>| {
            if let Some((database, table, primary_key, versions)) = group.take() {
                let result = self.apply_put(me, &database, &table, &primary_key, versions).map(|()| true).map_err(|e| format!("{e:#}"));
                out.extend(members.drain(..).map(|(origin, time)| (origin, time, result.clone())));
            }
        };
        for change in changes {
            if !self.wanted(me, &change) {
                out.push((change.origin, change.time, Ok(false)));
                continue;
            }
            let Change { origin, time, kind, .. } = change;
            match kind {
                Kind::Put { database, table, primary_key, records } => {
                    if !group.as_ref().is_some_and(|(d, t, _, _)| *d == database && *t == table) {
                        flush(&mut group, &mut members, &mut out);
                        group = Some((database, table, primary_key, Vec::new()));
                    }
                    if let Some((_, _, _, versions)) = group.as_mut() {
                        versions.extend(records.into_iter().map(|r| (origin.clone(), r)));
                    }
                    members.push((origin, time));
                }
                other => {
                    flush(&mut group, &mut members, &mut out);
                    let result = self.apply_kind(me, &origin, other).map(|()| true).map_err(|e| format!("{e:#}"));
                    out.push((origin, time, result));
                }
            }
        }
        flush(&mut group, &mut members, &mut out);
        out
    }

    /// Whether this node applies `change` (not excluded by the origin, subscribed here).
    fn wanted(&self, me: &str, change: &Change) -> bool {
        !change.exclude.iter().any(|n| n == me) && self.subscribed(&change.origin, &change.kind)
    }

    /// Merges remote record versions (creating the table when its creation was missed).
    fn apply_put(&self, me: &str, database: &str, table: &str, primary_key: &str, versions: Vec<(String, Value)>) -> Result<(), ServiceError> {
        let s: &dyn StorageBackend = &*self.storage;
        if self.storage.primary_key(database, table).is_err() {
            ignore_exists(s.create_table(database, table, primary_key))?;
        }
        let versions = if database == SYSTEM_DATABASE && table == store::CERTIFICATES {
            versions.into_iter().filter(|(_, v)| !v.get("name").is_some_and(|n| self.holds_key(n))).collect()
        } else {
            versions
        };
        s.merge_from(database, table, me, versions)?;
        if database == SYSTEM_DATABASE {
            self.system_changed(table);
        }
        Ok(())
    }

    /// Applies one remote change other than a put through the storage trait.
    fn apply_kind(&self, me: &str, origin: &str, kind: Kind) -> Result<(), ServiceError> {
        let s: &dyn StorageBackend = &*self.storage;
        match kind {
            Kind::CreateDatabase { database } => ignore_exists(s.create_database(&database))?,
            Kind::DropDatabase { database } => {
                ignore_exists(s.drop_database(&database))?;
                self.storage.forget_marks(&database, None)?;
            }
            Kind::CreateTable { database, table, primary_key } => ignore_exists(s.create_table(&database, &table, &primary_key))?,
            Kind::DropTable { database, table } => {
                ignore_exists(s.drop_table(&database, &table))?;
                self.storage.forget_marks(&database, Some(&table))?;
            }
            Kind::Put { database, table, primary_key, records } => {
                self.apply_put(me, &database, &table, &primary_key, records.into_iter().map(|r| (origin.to_string(), r)).collect())?
            }
            Kind::Delete { database, table, ids, at } => {
                let ids = if database == SYSTEM_DATABASE && table == store::CERTIFICATES {
                    ids.into_iter().filter(|n| !self.holds_key(n)).collect()
                } else {
                    ids
                };
                match s.merge_deletes_from(&database, &table, me, origin, ids, at) {
                    Err(ServiceError::NotFound(_)) => {}
                    other => {
                        other?;
                    }
                }
                if database == SYSTEM_DATABASE {
                    self.system_changed(&table);
                }
            }
            // Applied by the consumer between runs, or after a snapshot's merge (components.rs),
            // never here.
            Kind::DeployComponent { .. } | Kind::DropComponent { .. } | Kind::ComponentsKept { .. } => {}
            Kind::SetConfiguration { changes, user } => self.apply_configuration(origin, &changes, &user)?,
        }
        Ok(())
    }

    /// Whether this node holds certificate `name` with a private key of its own: such a
    /// certificate (this node's identity) is not replaced or removed by another node's
    /// certificate of the same name (the default node certificate is named after the host,
    /// which nodes may share).
    fn holds_key(&self, name: &Value) -> bool {
        let local = self.storage.versions(SYSTEM_DATABASE, store::CERTIFICATES, std::slice::from_ref(name));
        local.is_ok_and(|found| found.iter().any(|c| c.get("private_key_name").is_some_and(|k| !k.is_null())))
    }

    /// Hook for services that cache system tables (users, roles, certificates).
    fn system_changed(&self, table: &str) {
        if let Some(hook) = SYSTEM_HOOK.get() {
            hook(table);
        }
    }

    /// Whether a change from `origin` is applied here: yes unless this node registered
    /// `origin` with subscriptions and none subscribes to the change's table.
    fn subscribed(&self, origin: &str, kind: &Kind) -> bool {
        let nodes = self.nodes.read();
        let Some(entry) = nodes.get(origin).filter(|n| !n.subscriptions.is_empty()) else { return true };
        let (db, table) = kind.target();
        if db == SYSTEM_DATABASE {
            return true;
        }
        entry.subscriptions.iter().any(|s| s.subscribe && s.database == db && table.is_none_or(|t| s.table == t))
    }

    /// Registered nodes this change is not published to (`publish: false` for its table).
    fn excluded(&self, kind: &Kind) -> Vec<String> {
        let (db, table) = kind.target();
        if db == SYSTEM_DATABASE {
            return Vec::new();
        }
        self.nodes
            .read()
            .values()
            .filter(|n| !n.subscriptions.is_empty())
            .filter(|n| !n.subscriptions.iter().any(|s| s.publish && s.database == db && table.is_none_or(|t| s.table == t)))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Publishes a committed change and waits for JetStream's acknowledgement. A no-op when
    /// clustering is off.
    pub fn publish(&self, kind: Kind) -> Result<(), ServiceError> {
        let settings = self.settings.read().clone();
        if !settings.enabled {
            return Ok(());
        }
        let change = Change { origin: settings.node_name.clone(), time: now_ms(), exclude: self.excluded(&kind), kind };
        let payload = serde_json::to_vec(&change).map_err(|e| ServiceError::Internal(e.into()))?;
        let subject = change.kind.subject(&settings.stream.to_lowercase());
        if !self.running.load(std::sync::atomic::Ordering::Acquire) {
            // Start-up (before the runtime): sent once the publisher runs.
            let _ = self.outbox.lock().send(Outgoing { subject, payload, done: None });
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.outbox.lock().send(Outgoing { subject, payload, done: Some(tx) }).is_err() {
            return Err(ServiceError::Internal(anyhow::anyhow!("clustering is not running")));
        }
        let wait = || rx.recv_timeout(settings.publish_timeout);
        // A write may come from an async worker (a host service) or a blocking thread.
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(unavailable(&format!("JetStream did not acknowledge within clustering.publishTimeout ({} ms)", settings.publish_timeout.as_millis()))),
        }
    }

    // ---- node registrations ---------------------------------------------------------------

    /// `add_node` (`must_be_new`), `update_node` / `set_node_replication` (`must_exist`).
    pub fn set_node(&self, entry: NodeEntry, must_be_new: bool, must_exist: bool) -> Result<(), ServiceError> {
        if entry.name.is_empty() {
            return Err(ServiceError::BadRequest("'node_name' is required".into()));
        }
        if entry.name == self.node_name() {
            return Err(ServiceError::BadRequest("'node_name' is this node's own name".into()));
        }
        let exists = self.nodes.read().contains_key(&entry.name);
        if must_be_new && exists {
            return Err(ServiceError::BadRequest(format!("Node '{}' has already been added", entry.name)));
        }
        if must_exist && !exists {
            return Err(ServiceError::NotFound(format!("Node '{}' was not found", entry.name)));
        }
        let record = serde_json::to_value(&entry).map_err(|e| ServiceError::Internal(e.into()))?;
        self.storage.write(SYSTEM_DATABASE, NODES_TABLE, WriteMode::Upsert, vec![record])?;
        self.nodes.write().insert(entry.name.clone(), entry);
        Ok(())
    }

    /// The registered remote nodes.
    pub fn nodes(&self) -> Vec<NodeEntry> {
        self.nodes.read().values().cloned().collect()
    }

    pub fn remove_node(&self, name: &str) -> Result<(), ServiceError> {
        if self.nodes.write().remove(name).is_none() {
            return Err(ServiceError::NotFound(format!("Node '{name}' was not found")));
        }
        self.storage.delete(SYSTEM_DATABASE, NODES_TABLE, vec![json!(name)])?;
        Ok(())
    }

    /// `cluster_status` in HarperDB's shape: this node, and each connection with its state,
    /// subscriptions and lag. Nodes reach each other only through NATS, so a connection's
    /// `status` is this node's connection to NATS; its `lag_ms` is the lag of the last change
    /// of that node applied here (none until one was).
    pub fn status(&self) -> Value {
        let settings = self.settings.read().clone();
        let status = self.status.lock();
        let nodes = self.nodes.read();
        let mut names: Vec<String> = nodes.keys().cloned().collect();
        for seen in status.seen.keys() {
            if !names.contains(seen) {
                names.push(seen.clone());
            }
        }
        let connections: Vec<Value> = names
            .iter()
            .map(|name| {
                let subs = nodes.get(name).map(|n| n.subscriptions.clone()).unwrap_or_default();
                json!({
                    "node_name": name,
                    "status": if status.connected { "open" } else { "closed" },
                    "registered": nodes.contains_key(name),
                    "last_change_time": status.seen.get(name),
                    "lag_ms": status.node_lag_ms.get(name),
                    "subscriptions": subs.iter().map(|s| json!({"schema": s.database, "database": s.database, "table": s.table, "subscribe": s.subscribe, "publish": s.publish})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "node_name": settings.node_name,
            "is_enabled": settings.enabled,
            "connected": status.connected,
            "servers": settings.servers,
            "pending_changes": status.pending,
            "applied_changes": status.applied,
            "lag_ms": status.last_lag_ms,
            "last_error": status.last_error,
            "catch_up": {"needed": status.catch_up.is_some(), "state": status.catch_up, "snapshots_merged": status.snapshots, "last_snapshot": status.last_snapshot},
            "connections": connections,
        })
    }
}

/// Opens the cluster service and, when clustering is on, wraps the local store in the
/// replicated one; with clustering off the store is returned as it is.
pub fn wrap(rocks: Arc<Storage>, config: &crate::services::config::ConfigService, fallback_name: &str) -> anyhow::Result<(Arc<dyn StorageBackend>, Arc<Cluster>)> {
    let settings = ClusterSettings::from_config(&config.file_value().map_err(ServiceError::into_anyhow)?, fallback_name);
    let cluster = Cluster::open(rocks.clone(), settings)?;
    // Always wrapped, so `restart_service clustering` can turn it on; while it is off every
    // call goes straight to RocksDB (the wrapper checks one flag).
    let storage: Arc<dyn StorageBackend> = Arc::new(store::ReplicatedStore::new(rocks, cluster.clone()));
    Ok((storage, cluster))
}

/// The 503 a write answers when its change was not acknowledged in time: the local commit
/// stays and the change keeps being published in the background, so the caller need not
/// write again (an identical retry is harmless: upserts merge, inserts of it are skipped).
fn unavailable(why: &str) -> ServiceError {
    ServiceError::Unavailable(format!(
        "clustering: written on this node but not yet replicated ({why}); replication is retried in the background, retry the request later to confirm"
    ))
}

/// A replicated schema change that this node already has (or no longer has) is done: only
/// internal failures count.
fn ignore_exists(r: Result<(), ServiceError>) -> Result<(), ServiceError> {
    match r {
        Err(ServiceError::Internal(e)) => Err(ServiceError::Internal(e)),
        _ => Ok(()),
    }
}

/// Called with a system table's name after a replicated change to it was applied (the user
/// service drops its caches). Set once at start.
pub static SYSTEM_HOOK: std::sync::OnceLock<Box<dyn Fn(&str) + Send + Sync>> = std::sync::OnceLock::new();

async fn connect(settings: &ClusterSettings) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("opshost-{}", settings.node_name))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>);
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &settings.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    options.connect(settings.servers.clone()).await.with_context(|| format!("connecting to NATS at {}", settings.servers.join(",")))
}

async fn ensure_stream(js: &jetstream::Context, settings: &ClusterSettings) -> anyhow::Result<jetstream::stream::Stream> {
    let config = jetstream::stream::Config {
        name: settings.stream.clone(),
        subjects: vec![format!("{}.>", settings.stream.to_lowercase())],
        num_replicas: settings.replicas,
        storage: jetstream::stream::StorageType::File,
        max_messages: settings.max_msgs,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("creating stream {}: {e}", settings.stream))
}

/// Batches of changes in flight to JetStream at once. While they are, new changes queue and
/// leave together in the next batch: under load one JetStream round trip (and one replicated
/// stream entry, one delivery and one ack per consumer) carries many changes.
const PUBLISH_IN_FLIGHT: usize = 4;
/// Most changes, and bytes, in one batch (NATS refuses payloads over 1 MiB by default).
const PUBLISH_BATCH: usize = 256;
const PUBLISH_BATCH_BYTES: usize = 512 << 10;

/// Sends changes to JetStream, a few batches in flight at once; each batch is retried (NATS
/// reconnects to another server meanwhile) until JetStream acknowledges it. A batch is one
/// message: a JSON array of changes (a lone change travels as itself).
async fn publish_loop(js: jetstream::Context, mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>, own: Arc<Mutex<OwnSequences>>, in_flight: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut carried: Option<Outgoing> = None;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let first = match carried.take() {
            Some(out) => out,
            None => match rx.recv().await {
                Some(out) => out,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].payload.len();
        while batch.len() < PUBLISH_BATCH {
            match rx.try_recv() {
                Ok(out) if bytes + out.payload.len() + 1 > PUBLISH_BATCH_BYTES => {
                    carried = Some(out);
                    break;
                }
                Ok(out) => {
                    bytes += out.payload.len() + 1;
                    batch.push(out);
                }
                Err(_) => break,
            }
        }
        let (subject, payload) = joined(&mut batch);
        let mut waiting: Vec<_> = batch.into_iter().filter_map(|o| o.done).collect();
        let (js, own) = (js.clone(), own.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut delay = Duration::from_millis(50);
            let started = std::time::Instant::now();
            loop {
                let attempt = async {
                    let ack = js.publish(subject.clone(), payload.clone().into()).await.map_err(|e| e.to_string())?;
                    ack.await.map_err(|e| e.to_string())
                };
                match attempt.await {
                    Ok(ack) => {
                        own.lock().add(ack.sequence);
                        for done in waiting.drain(..) {
                            let _ = done.send(Ok(()));
                        }
                        return;
                    }
                    Err(e) => {
                        // The waiting callers time out on their own (publishTimeout); past this
                        // the failure is logged louder, still retried.
                        if started.elapsed() > PUBLISH_RETRY_LOG {
                            waiting.clear();
                            tracing::error!("clustering: changes are still not on the stream after {PUBLISH_RETRY_LOG:?}, retrying: {e}");
                        } else {
                            tracing::warn!("clustering: publishing changes failed, retrying: {e}");
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
    }
}

/// One message for a batch of outgoing changes: a lone change as it is, several as a JSON
/// array, on their common subject (or the stream's `batch` subject when they differ).
fn joined(batch: &mut [Outgoing]) -> (String, Vec<u8>) {
    if let [one] = batch {
        return (one.subject.clone(), std::mem::take(&mut one.payload));
    }
    let same = batch.iter().all(|o| o.subject == batch[0].subject);
    let subject = if same {
        batch[0].subject.clone()
    } else {
        let prefix = batch[0].subject.split('.').next().unwrap_or("opshost");
        format!("{prefix}.batch")
    };
    let mut payload = Vec::with_capacity(batch.iter().map(|o| o.payload.len() + 1).sum::<usize>() + 1);
    payload.push(b'[');
    for (n, out) in batch.iter().enumerate() {
        if n > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(&out.payload);
    }
    payload.push(b']');
    (subject, payload)
}

/// The changes in one message: an array (a batch) or a lone change.
pub fn read_changes(payload: &[u8]) -> Result<Vec<Change>, serde_json::Error> {
    if payload.first() == Some(&b'[') {
        serde_json::from_slice(payload)
    } else {
        serde_json::from_slice(payload).map(|c| vec![c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_take_harperdb_keys_and_defaults() {
        let off = ClusterSettings::from_config(&json!({}), "127.0.0.1");
        assert!(!off.enabled);
        assert_eq!(off.node_name, "127_0_0_1");
        let on = ClusterSettings::from_config(
            &json!({"clustering": {"enabled": true, "nodeName": "a", "nats": {"servers": "nats://h:1, nats://h:2", "replicas": 3}}}),
            "x",
        );
        assert_eq!((on.enabled, on.node_name.as_str(), on.servers.len(), on.replicas), (true, "a", 2, 3));
    }

    /// A gap made only of this node's own published sequences is no gap; one with a
    /// sequence it did not publish (another node's change) is.
    #[test]
    fn a_gap_of_own_changes_needs_no_snapshot() {
        let mut own = OwnSequences::default();
        for s in [3, 4, 5, 7] {
            own.add(s);
        }
        assert!(own.covers(2, 6), "3..=5 are all own");
        assert!(own.covers(2, 3), "no gap");
        assert!(!own.covers(2, 8), "6 was another node's");
        assert!(!own.covers(0, 4), "1 and 2 unknown");
        own.passed(5);
        assert_eq!(own.sequences.iter().copied().collect::<Vec<_>>(), vec![7]);
        assert!(own.covers(6, 8));
    }

    /// Queued changes leave as one message (an array) and are read back as they were; a lone
    /// change keeps its own shape and subject.
    #[test]
    fn batched_changes_travel_as_one_message() {
        let change = |table: &str, id: u64| Change {
            origin: "a".into(),
            time: id,
            exclude: vec![],
            kind: Kind::Delete { database: "dev".into(), table: table.into(), ids: vec![json!(id)], at: id },
        };
        let out = |c: &Change| Outgoing { subject: c.kind.subject("t1"), payload: serde_json::to_vec(c).expect("json"), done: None };
        let sent = [change("dog", 1), change("dog", 2), change("cat", 3)];
        let (subject, payload) = joined(&mut [out(&sent[0])]);
        assert_eq!((subject.as_str(), read_changes(&payload).expect("one").len()), ("t1.data.dev.dog", 1));
        let (subject, payload) = joined(&mut [out(&sent[0]), out(&sent[1])]);
        assert_eq!(subject, "t1.data.dev.dog");
        assert_eq!(read_changes(&payload).expect("two").iter().map(|c| c.time).collect::<Vec<_>>(), vec![1, 2]);
        let mut all: Vec<Outgoing> = sent.iter().map(out).collect();
        let (subject, payload) = joined(&mut all);
        assert_eq!(subject, "t1.batch");
        assert_eq!(read_changes(&payload).expect("three").iter().map(|c| c.time).collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
