//! Snapshot catch-up: a node whose place in the stream was discarded (the stream's limits,
//! `clustering.nats.maxMsgs`, dropped changes it had not applied) asks a peer for a snapshot of
//! the replicated tables instead of silently missing those changes.
//!
//! Each node keeps the last stream sequence it applied (node-local `system.hdb_cluster_position`,
//! stored at most once a second: a stale, lower value only costs an unneeded snapshot). When the
//! stream's first sequence is past it + 1 (checked when the consumer starts, and whenever a
//! delivered sequence jumps), the node requests `<stream>-snapshot` (NATS request/reply, outside
//! the stream's subjects). A peer that is not catching up itself writes every replicated table
//! (records with the node that wrote each version, tombstones with their node and time) as one
//! array of changes into the stream's object store and answers its name; the asker merges it
//! through the same last-writer-wins path as stream changes (subscriptions and `publish: false`
//! respected), deletes the object and goes on with the stream. No answer: logged, reported by
//! `cluster_status` (`catch_up`), retried; the node applies nothing from the stream until then.

use super::change::{Change, Kind};
use super::{now_ms, read_changes, store, Cluster, ClusterSettings};
use crate::services::storage::{StorageBackend, WriteMode, SYSTEM_DATABASE};
use crate::services::ServiceError;
use anyhow::Context as _;
use async_nats::jetstream;
use futures::StreamExt as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// The node-local table of the last applied stream sequence (key: the stream's name).
pub const POSITION_TABLE: &str = "hdb_cluster_position";
/// How long a node waits for a peer's snapshot (building and uploading it included).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);
/// Pause after a failed catch-up before the next request.
const RETRY_PAUSE: Duration = Duration::from_secs(3);
/// Records per change in a snapshot.
const CHUNK: usize = 1_000;

fn subject(settings: &ClusterSettings) -> String {
    format!("{}-snapshot", settings.stream.to_lowercase())
}

/// Whether changes were discarded between what this node applied (`applied`, 0 for none) and
/// the stream's first remaining sequence.
pub fn missed(applied: u64, first: u64) -> bool {
    first > applied.saturating_add(1)
}

impl Cluster {
    pub(super) fn ensure_position_table(storage: &crate::services::storage::Storage) -> anyhow::Result<()> {
        if storage.describe_table(SYSTEM_DATABASE, POSITION_TABLE).is_err() {
            storage.create_table(SYSTEM_DATABASE, POSITION_TABLE, "stream").map_err(ServiceError::into_anyhow).context("creating system.hdb_cluster_position")?;
        }
        Ok(())
    }

    /// The last stream sequence this node stored as applied (0: none).
    pub(super) fn stored_position(&self, stream: &str) -> u64 {
        let found = StorageBackend::get(&*self.storage, SYSTEM_DATABASE, POSITION_TABLE, &[json!(stream)], &["sequence".into()]);
        found.ok().and_then(|rows| rows.first().and_then(|r| r.get("sequence")).and_then(Value::as_u64)).unwrap_or(0)
    }

    pub(super) fn store_position(&self, stream: &str, sequence: u64) {
        let record = json!({"stream": stream, "sequence": sequence});
        if let Err(e) = self.storage.write(SYSTEM_DATABASE, POSITION_TABLE, WriteMode::Upsert, vec![record]) {
            tracing::warn!("clustering: storing the stream position failed: {e}");
        }
    }

    /// Requests a snapshot and merges it; `first` is the stream's first sequence (the
    /// position stored afterwards). Errors after a pause (the caller retries).
    pub(super) async fn catch_up(self: &Arc<Self>, js: &jetstream::Context, settings: &ClusterSettings, applied: u64, first: u64) -> anyhow::Result<()> {
        let why = format!("the stream starts at sequence {first}, this node applied up to {applied}");
        tracing::warn!("clustering: changes were discarded before this node applied them ({why}); requesting a snapshot");
        self.status.lock().catch_up = Some(format!("requesting a snapshot: {why}"));
        match self.fetch_and_merge(js, settings).await {
            Ok((from, changes)) => {
                self.store_position(&settings.stream, first.saturating_sub(1));
                tracing::info!("clustering: merged a snapshot of {changes} changes from {from}");
                let mut status = self.status.lock();
                status.catch_up = None;
                status.snapshots += 1;
                status.last_snapshot = Some(json!({"from": from, "changes": changes, "time": now_ms()}));
                Ok(())
            }
            Err(e) => {
                let text = format!("snapshot needed ({why}) but not merged, retrying: {e:#}");
                tracing::error!("clustering: {text}");
                self.status.lock().catch_up = Some(text);
                tokio::time::sleep(RETRY_PAUSE).await;
                Err(e)
            }
        }
    }

    async fn fetch_and_merge(self: &Arc<Self>, js: &jetstream::Context, settings: &ClusterSettings) -> anyhow::Result<(String, usize)> {
        let request = json!({"node": settings.node_name}).to_string();
        let reply = tokio::time::timeout(SNAPSHOT_WAIT, js.client().request(subject(settings), request.into()))
            .await
            .map_err(|_| anyhow::anyhow!("no node answered the snapshot request within {SNAPSHOT_WAIT:?}"))?
            .map_err(|e| anyhow::anyhow!("no node answered the snapshot request: {e}"))?;
        let answer: Value = serde_json::from_slice(&reply.payload).context("reading the snapshot answer")?;
        let (Some(from), Some(object)) = (answer["node"].as_str(), answer["object"].as_str()) else {
            anyhow::bail!("the snapshot answer names no object: {answer}");
        };
        let objects = self.object_store(js).await?;
        let mut bytes = Vec::new();
        objects.get(object).await.map_err(|e| anyhow::anyhow!("fetching snapshot {object}: {e}"))?.read_to_end(&mut bytes).await.context("reading the snapshot")?;
        let changes = read_changes(&bytes).context("decoding the snapshot")?;
        let count = changes.len();
        let results = self.apply_run(&settings.node_name, changes).await?;
        if let Some(e) = results.iter().find_map(|(_, _, r)| r.as_ref().err()) {
            anyhow::bail!("applying the snapshot from {from}: {e}");
        }
        if let Err(e) = objects.delete(object).await {
            tracing::warn!("clustering: deleting snapshot {object} failed (it expires with the bucket's age limit): {e}");
        }
        Ok((from.to_string(), count))
    }

    /// Answers other nodes' snapshot requests (not its own, nor while catching up itself).
    pub(super) async fn serve_snapshots(self: Arc<Self>, js: jetstream::Context, settings: ClusterSettings) {
        loop {
            let mut requests = match js.client().subscribe(subject(&settings)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("clustering: subscribing to snapshot requests failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply.clone() else { continue };
                let asker = serde_json::from_slice::<Value>(&message.payload).ok().and_then(|v| v["node"].as_str().map(str::to_string));
                let Some(asker) = asker.filter(|a| *a != settings.node_name) else { continue };
                if self.status.lock().catch_up.is_some() {
                    continue;
                }
                match self.offer_snapshot(&js, &asker).await {
                    Ok(object) => {
                        let answer = json!({"node": settings.node_name, "object": object}).to_string();
                        if let Err(e) = js.client().publish(reply, answer.into()).await {
                            tracing::warn!("clustering: answering {asker}'s snapshot request failed: {e}");
                        }
                    }
                    Err(e) => tracing::error!("clustering: building a snapshot for {asker} failed: {e:#}"),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn offer_snapshot(self: &Arc<Self>, js: &jetstream::Context, asker: &str) -> anyhow::Result<String> {
        let me = self.clone();
        let bytes = tokio::task::spawn_blocking(move || me.snapshot_bytes()).await?.map_err(ServiceError::into_anyhow)?;
        let name = format!("snapshot-{asker}-{}", uuid::Uuid::new_v4());
        let objects = self.object_store(js).await?;
        objects.put(name.as_str(), &mut bytes.as_slice()).await.map_err(|e| anyhow::anyhow!("storing the snapshot: {e}"))?;
        Ok(name)
    }

    /// Every replicated table as changes: schema, records grouped by the node that wrote them,
    /// tombstones grouped by node and time.
    fn snapshot_bytes(&self) -> Result<Vec<u8>, ServiceError> {
        let me = self.node_name();
        let time = now_ms();
        let mut changes = Vec::new();
        let mut push = |origin: &str, kind: Kind| {
            let exclude = self.excluded(&kind);
            changes.push(Change { origin: origin.to_string(), time, exclude, kind });
        };
        let mut tables = Vec::new();
        for (database, names) in StorageBackend::list_databases(&*self.storage) {
            push(&me, Kind::CreateDatabase { database: database.clone() });
            tables.extend(names.into_iter().map(|t| (database.clone(), t)));
        }
        for table in store::REPLICATED_SYSTEM_TABLES {
            if self.storage.describe_table(SYSTEM_DATABASE, table).is_ok() {
                tables.push((SYSTEM_DATABASE.to_string(), table.to_string()));
            }
        }
        for (database, table) in tables {
            let snapshot = self.storage.replication_snapshot(&database, &table, &me)?;
            let primary_key = snapshot.primary_key;
            if database != SYSTEM_DATABASE {
                push(&me, Kind::CreateTable { database: database.clone(), table: table.clone(), primary_key: primary_key.clone() });
            }
            let mut by_origin: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (origin, mut record) in snapshot.records {
                if database == SYSTEM_DATABASE && table == store::CERTIFICATES {
                    record["private_key_name"] = Value::Null;
                }
                by_origin.entry(origin).or_default().push(record);
            }
            for (origin, records) in by_origin {
                for chunk in records.chunks(CHUNK) {
                    let kind = Kind::Put { database: database.clone(), table: table.clone(), primary_key: primary_key.clone(), records: chunk.to_vec() };
                    push(&origin, kind);
                }
            }
            let mut deletes: BTreeMap<(String, u64), Vec<Value>> = BTreeMap::new();
            for (origin, at, id) in snapshot.tombstones {
                deletes.entry((origin, at)).or_default().push(id);
            }
            for ((origin, at), ids) in deletes {
                push(&origin, Kind::Delete { database: database.clone(), table: table.clone(), ids, at });
            }
        }
        serde_json::to_vec(&changes).map_err(|e| ServiceError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gap_is_a_first_sequence_past_the_next_one() {
        assert!(!super::missed(0, 1), "a new node on a whole stream");
        assert!(!super::missed(0, 0), "an empty new stream");
        assert!(!super::missed(41, 42));
        assert!(!super::missed(50, 42), "already past the first");
        assert!(super::missed(0, 2), "a new node on a truncated stream");
        assert!(super::missed(40, 42));
    }
}
