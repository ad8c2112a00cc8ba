//! The `StorageBackend` trait: what the storage capability and the host's services need from a
//! store (schema, writes, deletes, reads, searches), implemented by the RocksDB [`Storage`] and
//! by the cluster's replicated store that wraps it (DESIGN.md "Storage", "Beyond one machine").
//!
//! Besides the caller-facing calls, a backend can `merge_from` full record versions and
//! `merge_deletes_from`: the idempotent, order-independent writes replication applies. Last
//! writer wins by `__updatedtime__`; a tie goes to the greater node name (HarperDB's rule), and
//! between versions of one node at one time (only a repeat) to the greater serialized record,
//! so every node that has seen the same changes holds the same bytes, whatever order they
//! arrived in. A delete leaves a tombstone with its time and node, so an older version arriving
//! after it does not bring the record back.
//!
//! Replication metadata lives in its own column family, `replication` (made on first use), never
//! in the records: key `database 0x00 table 0x00 encode(primary key)`, value one byte (`v`: the
//! stored version came from another node, `t`: a tombstone), the version's or delete's time
//! (u64 big-endian) and the node's name. A `v` entry counts only while the stored record's
//! `__updatedtime__` equals its time: a local write always stamps a later time, so a record
//! without a matching entry is this node's own. Entries older than the purge horizon
//! ([`TOMBSTONE_HORIZON_MS`]) are removed by [`Storage::purge_replication_marks`].

use super::query::Query;
use super::{internal, keys, Cursor, SortedOps, Storage, TableInfo, WriteMode, WriteOutcome, CREATED, UPDATED};
use crate::services::ServiceError;
use rocksdb::WriteBatch;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A store of databases, tables and JSON records. Every call is synchronous (callers run it
/// on a blocking thread); errors are the service's 4xx/5xx kinds.
pub trait StorageBackend: Send + Sync {
    fn create_database(&self, db: &str) -> Result<(), ServiceError>;
    fn drop_database(&self, db: &str) -> Result<(), ServiceError>;
    /// Creates a table, and its database when missing (as HarperDB does).
    fn create_table(&self, db: &str, table: &str, primary_key: &str) -> Result<(), ServiceError>;
    fn drop_table(&self, db: &str, table: &str) -> Result<(), ServiceError>;
    /// Every user database with its tables (the `system` database is the host's own).
    fn list_databases(&self) -> Vec<(String, Vec<String>)>;
    fn describe_table(&self, db: &str, table: &str) -> Result<TableInfo, ServiceError>;
    /// Writes a batch atomically, each record inserted, merged or skipped according to `mode`.
    fn write(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<WriteOutcome, ServiceError>;
    /// [`StorageBackend::write`] that may leave its WAL sync to the caller: a sequence number
    /// to await with [`Storage::synced`] before answering, or `None` when the write is already
    /// as durable as it will be (this default: the write itself).
    fn write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<(WriteOutcome, Option<u64>), ServiceError> {
        self.write(db, table, mode, records).map(|outcome| (outcome, None))
    }
    /// [`StorageBackend::write_unsynced`] on an async worker, for a few records: `Ok(None)`,
    /// nothing written, when it could block (this default: always).
    fn try_write_unsynced(&self, _db: &str, _table: &str, _mode: WriteMode, _records: Vec<Value>) -> Result<Option<(WriteOutcome, Option<u64>)>, ServiceError> {
        Ok(None)
    }
    /// Deletes by primary key; keys that do not exist are reported as skipped.
    fn delete(&self, db: &str, table: &str, ids: Vec<Value>) -> Result<WriteOutcome, ServiceError>;
    /// Records by primary key in the order asked, missing ones left out, projected.
    fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError>;
    /// Starts a search (called through `<dyn StorageBackend>::search`).
    fn start_search(self: Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError>;
    /// Stores full record versions (with their own `__createdtime__`/`__updatedtime__`), each
    /// with the node that wrote it, only when it is newer than the stored one or the key's
    /// tombstone (a record without a recorded origin is `local`'s, this node's name): `written`
    /// are the versions kept, `skipped` the ones older than (or identical to) what is stored.
    fn merge_from(&self, db: &str, table: &str, local: &str, versions: Vec<(String, Value)>) -> Result<WriteOutcome, ServiceError>;
    /// Deletes made by `origin` at `time`: a record is removed when its version is not newer
    /// (a version written after the delete survives), and the key keeps a tombstone so that an
    /// older version arriving later is refused. `written` are the records removed.
    fn merge_deletes_from(&self, db: &str, table: &str, local: &str, origin: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError>;
    /// [`StorageBackend::merge_from`] with no node names (ties go to the greater bytes).
    fn merge(&self, db: &str, table: &str, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        self.merge_from(db, table, "", records.into_iter().map(|r| (String::new(), r)).collect())
    }
    /// [`StorageBackend::merge_deletes_from`] with no node names.
    fn merge_deletes(&self, db: &str, table: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError> {
        self.merge_deletes_from(db, table, "", "", ids, time)
    }
    /// The stored records of these keys as they are (every attribute a record has, with its
    /// timestamps; no projection), missing ones left out: what replication publishes.
    fn versions(&self, db: &str, table: &str, ids: &[Value]) -> Result<Vec<Value>, ServiceError>;
    /// The RocksDB store underneath (itself for RocksDB): for the host's own local records
    /// that must not replicate (jobs, node registrations).
    fn local(self: Arc<Self>) -> Arc<Storage>;
}

impl dyn StorageBackend {
    /// Starts a search; the cursor streams matches in batches.
    pub fn search(self: &Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError> {
        self.clone().start_search(db, table, query)
    }
}

impl StorageBackend for Storage {
    fn create_database(&self, db: &str) -> Result<(), ServiceError> {
        Storage::create_database(self, db)
    }
    fn drop_database(&self, db: &str) -> Result<(), ServiceError> {
        Storage::drop_database(self, db)
    }
    fn create_table(&self, db: &str, table: &str, primary_key: &str) -> Result<(), ServiceError> {
        Storage::create_table(self, db, table, primary_key)
    }
    fn drop_table(&self, db: &str, table: &str) -> Result<(), ServiceError> {
        Storage::drop_table(self, db, table)
    }
    fn list_databases(&self) -> Vec<(String, Vec<String>)> {
        Storage::list_databases(self)
    }
    fn describe_table(&self, db: &str, table: &str) -> Result<TableInfo, ServiceError> {
        Storage::describe_table(self, db, table)
    }
    fn write(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        Storage::write(self, db, table, mode, records)
    }
    fn write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<(WriteOutcome, Option<u64>), ServiceError> {
        Storage::write_unsynced(self, db, table, mode, records)
    }
    fn try_write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<Option<(WriteOutcome, Option<u64>)>, ServiceError> {
        Storage::try_write_unsynced(self, db, table, mode, records)
    }
    fn delete(&self, db: &str, table: &str, ids: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        Storage::delete(self, db, table, ids)
    }
    fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError> {
        Storage::get(self, db, table, ids, attributes)
    }
    fn start_search(self: Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError> {
        Storage::search(&self, db, table, query)
    }
    fn merge_from(&self, db: &str, table: &str, local: &str, versions: Vec<(String, Value)>) -> Result<WriteOutcome, ServiceError> {
        self.merge_versions(db, table, local, versions)
    }
    fn merge_deletes_from(&self, db: &str, table: &str, local: &str, origin: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError> {
        self.delete_versions(db, table, local, origin, ids, time)
    }
    fn versions(&self, db: &str, table: &str, ids: &[Value]) -> Result<Vec<Value>, ServiceError> {
        self.table_meta(db, table)?;
        let (rcf, _) = self.cfs(db, table)?;
        let keys: Vec<Vec<u8>> = ids.iter().filter(|id| keys::exact_value(id)).map(keys::encoded).collect();
        let mut out = Vec::with_capacity(keys.len());
        for found in self.get_many(&rcf, &keys) {
            if let Some(bytes) = found.map_err(internal)? {
                out.push(serde_json::from_slice(&bytes).map_err(internal)?);
            }
        }
        Ok(out)
    }
    fn local(self: Arc<Self>) -> Arc<Storage> {
        self
    }
}

/// How long a tombstone (and the origin of a replicated version) is kept: a change older than
/// this that arrives later (a node back after a week away) is judged without it, so a delete
/// older than the horizon no longer stops an even older version. Seven days.
pub const TOMBSTONE_HORIZON_MS: u64 = 7 * 24 * 3600 * 1000;
/// The column family of replication metadata (module docs).
const REPLICATION_CF: &str = "replication";
/// Serializes the lazy creation of [`REPLICATION_CF`].
static CREATE_CF: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn updated_time(record: &Map<String, Value>) -> u64 {
    record.get(UPDATED).and_then(Value::as_u64).unwrap_or(0)
}

/// One table in a catch-up snapshot ([`Storage::replication_snapshot`]).
pub struct TableSnapshot {
    pub primary_key: String,
    /// Each record with the node that wrote its version.
    pub records: Vec<(String, Value)>,
    /// Each tombstone: the deleting node, the delete's time, the primary key.
    pub tombstones: Vec<(String, u64, Value)>,
}

/// Who made a local delete and when: its tombstones go into the delete's own write batch.
pub struct DeleteMark<'a> {
    pub origin: &'a str,
    pub time: u64,
}

/// What the `replication` column family says about one key.
#[derive(Clone, Debug, PartialEq)]
struct Mark {
    tombstone: bool,
    time: u64,
    origin: String,
}

impl Mark {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.origin.len());
        out.push(if self.tombstone { b't' } else { b'v' });
        out.extend_from_slice(&self.time.to_be_bytes());
        out.extend_from_slice(self.origin.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&kind, rest) = bytes.split_first()?;
        let time = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let origin = String::from_utf8(rest[8..].to_vec()).ok()?;
        Some(Self { tombstone: kind == b't', time, origin })
    }
}

/// The key of a record's mark: its table's prefix, then the record's key.
fn mark_key(db: &str, table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = mark_prefix(db, Some(table));
    out.extend_from_slice(key);
    out
}

/// The marks of a database, or of one of its tables.
fn mark_prefix(db: &str, table: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(db.len() + 32);
    out.extend_from_slice(db.as_bytes());
    out.push(0);
    if let Some(table) = table {
        out.extend_from_slice(table.as_bytes());
        out.push(0);
    }
    out
}

/// A stored record as last-writer-wins sees it.
#[derive(Clone)]
struct Stored {
    map: Map<String, Value>,
    bytes: Vec<u8>,
    origin: String,
}

/// A key's state before a merge: a record, or none (with the tombstone of its delete, if any).
#[derive(Clone)]
enum Current {
    Record(Stored),
    Gone(Option<Mark>),
}

impl Current {
    fn read(stored: Option<Vec<u8>>, mark: Option<Mark>, local: &str) -> Result<Self, ServiceError> {
        Ok(match stored {
            Some(bytes) => {
                let map: Map<String, Value> = serde_json::from_slice(&bytes).map_err(internal)?;
                // The mark names the origin only of the version it was written with.
                let origin = match mark {
                    Some(m) if !m.tombstone && m.time == updated_time(&map) => m.origin,
                    _ => local.to_string(),
                };
                Current::Record(Stored { map, bytes, origin })
            }
            None => Current::Gone(mark.filter(|m| m.tombstone)),
        })
    }
}

/// Whether a version at `time` by `origin` (`bytes` for a version, `None` for a delete) wins
/// over one at `old_time` by `old_origin` (`old_bytes`, `None` for a tombstone): the later
/// time, then the greater node name; one node's two versions at one time (a repeat) by their
/// bytes; a delete wins a full tie with a version (it came after it on that node).
pub fn wins(time: u64, origin: &str, bytes: Option<&[u8]>, old_time: u64, old_origin: &str, old_bytes: Option<&[u8]>) -> bool {
    match (time, origin).cmp(&(old_time, old_origin)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match (bytes, old_bytes) {
            (Some(new), Some(old)) => new > old,
            (None, Some(_)) => true,
            (_, None) => false,
        },
    }
}

impl Storage {
    /// A table's primary key from the catalog in memory (`describe_table` also reads its
    /// counters, whose merge operands pile up under a write load: far too slow per write).
    pub fn primary_key(&self, db: &str, table: &str) -> Result<String, ServiceError> {
        Ok(self.table_meta(db, table)?.primary_key)
    }

    /// The `replication` column family, made the first time it is needed.
    fn replication_cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>, ServiceError> {
        if let Some(cf) = self.db.cf_handle(REPLICATION_CF) {
            return Ok(cf);
        }
        let _guard = CREATE_CF.lock();
        if self.db.cf_handle(REPLICATION_CF).is_none() {
            self.db.create_cf(REPLICATION_CF, &rocksdb::Options::default()).map_err(internal)?;
        }
        self.db.cf_handle(REPLICATION_CF).ok_or_else(|| internal(anyhow::anyhow!("the replication column family is missing")))
    }

    fn marks(&self, db: &str, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Mark>>, ServiceError> {
        let cf = self.replication_cf()?;
        let mark_keys: Vec<Vec<u8>> = keys.iter().map(|k| mark_key(db, table, k)).collect();
        self.db
            .batched_multi_get_cf(&cf, &mark_keys, false)
            .into_iter()
            .map(|found| Ok(found.map_err(internal)?.and_then(|b| Mark::decode(&b))))
            .collect()
    }

    /// [`StorageBackend::merge_from`] over RocksDB: the same locks, index and counter upkeep as
    /// `write`, but the versions keep their timestamps and only winning ones replace; each
    /// kept version's origin is marked in the same batch.
    fn merge_versions(&self, db: &str, table: &str, local: &str, versions: Vec<(String, Value)>) -> Result<WriteOutcome, ServiceError> {
        let locks = self.locks(db, table);
        let _schema = locks.schema.read();
        let meta_info = self.table_meta(db, table)?;
        let pk_name = meta_info.primary_key.clone();
        let mut prepared = Vec::with_capacity(versions.len());
        for (n, (origin, record)) in versions.into_iter().enumerate() {
            let Value::Object(map) = record else {
                return Err(ServiceError::BadRequest(format!("record {n} is not an object")));
            };
            let pk = match map.get(&pk_name) {
                Some(pk @ (Value::String(_) | Value::Number(_))) if keys::exact_value(pk) => pk.clone(),
                _ => return Err(ServiceError::BadRequest(format!("record {n} has no usable primary key '{pk_name}'"))),
            };
            if !map.get(UPDATED).is_some_and(Value::is_u64) || !map.get(CREATED).is_some_and(Value::is_u64) {
                return Err(ServiceError::BadRequest(format!("record {n} lacks '{CREATED}' or '{UPDATED}'")));
            }
            if let Some(bad) = map.keys().find(|k| !super::valid_name(k)) {
                return Err(ServiceError::BadRequest(format!("attribute names must match [A-Za-z0-9_]+, got '{bad}'")));
            }
            prepared.push((pk, origin, map));
        }
        let (rcf, icf) = self.cfs(db, table)?;
        let mcf = self.replication_cf()?;
        let meta = self.meta().map_err(internal)?;
        let keys: Vec<Vec<u8>> = prepared.iter().map(|(pk, _, _)| keys::encoded(pk)).collect();
        let _stripes = locks.lock_keys(keys.iter());
        let existing = self.get_many(&rcf, &keys);
        let marks = self.marks(db, table, &keys)?;
        let (mut records, mut index, mut marked) = (SortedOps::default(), SortedOps::default(), SortedOps::default());
        let mut outcome = WriteOutcome::default();
        let mut pending: std::collections::HashMap<Vec<u8>, Current> = Default::default();
        let mut new_attributes = BTreeSet::new();
        let (mut added, mut last) = (0i64, 0u64);
        for ((((pk, origin, map), key), old), mark) in prepared.into_iter().zip(keys).zip(existing).zip(marks) {
            let current = match pending.get(&key) {
                Some(c) => c.clone(),
                None => Current::read(old.map_err(internal)?.map(|b| b.to_vec()), mark, local)?,
            };
            let bytes = serde_json::to_vec(&map).map_err(internal)?;
            let time = updated_time(&map);
            let old_map = match &current {
                Current::Record(old) => {
                    if !wins(time, &origin, Some(&bytes), updated_time(&old.map), &old.origin, Some(&old.bytes)) {
                        outcome.skipped.push(pk);
                        continue;
                    }
                    Some(&old.map)
                }
                Current::Gone(tomb) => {
                    if tomb.as_ref().is_some_and(|t| !wins(time, &origin, Some(&bytes), t.time, &t.origin, None)) {
                        outcome.skipped.push(pk);
                        continue;
                    }
                    added += 1;
                    None
                }
            };
            for attr in map.keys() {
                if attr != CREATED && attr != UPDATED && !meta_info.attributes.contains(attr) {
                    new_attributes.insert(attr.clone());
                }
            }
            last = last.max(time);
            self.reindex(&mut index, &pk_name, &key, old_map, Some(&map));
            records.put(key.clone(), bytes.clone());
            marked.put(mark_key(db, table, &key), Mark { tombstone: false, time, origin: origin.clone() }.encode());
            pending.insert(key, Current::Record(Stored { map, bytes, origin }));
            outcome.written.push(pk);
        }
        if outcome.written.is_empty() {
            return Ok(outcome);
        }
        let mut batch = WriteBatch::default();
        records.apply(&mut batch, &rcf);
        index.apply(&mut batch, &icf);
        marked.apply(&mut batch, &mcf);
        for attr in &new_attributes {
            batch.put_cf(&meta, format!("attr/{db}/{table}/{attr}"), b"");
        }
        if added != 0 {
            batch.merge_cf(&meta, format!("count/{db}/{table}"), added.to_le_bytes());
        }
        batch.merge_cf(&meta, format!("last/{db}/{table}"), (last as i64).to_le_bytes());
        self.commit(batch).map_err(internal)?;
        if !new_attributes.is_empty() {
            let _changing = self.changing();
            if let Some(t) = self.catalog.write().get_mut(db).and_then(|d| d.get_mut(table)) {
                t.attributes.extend(new_attributes);
            }
        }
        Ok(outcome)
    }

    /// [`StorageBackend::merge_deletes_from`] over RocksDB: a record goes when the delete wins
    /// over its version; every key keeps the winning tombstone.
    fn delete_versions(&self, db: &str, table: &str, local: &str, by: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError> {
        let locks = self.locks(db, table);
        let _schema = locks.schema.read();
        let meta_info = self.table_meta(db, table)?;
        let (rcf, icf) = self.cfs(db, table)?;
        let mcf = self.replication_cf()?;
        let meta = self.meta().map_err(internal)?;
        let keys: Vec<Vec<u8>> = ids.iter().map(keys::encoded).collect();
        let _stripes = locks.lock_keys(keys.iter());
        let (mut records, mut index, mut marked) = (SortedOps::default(), SortedOps::default(), SortedOps::default());
        let mut outcome = WriteOutcome::default();
        let mut seen = BTreeSet::new();
        let found = self.get_many(&rcf, &keys);
        let marks = self.marks(db, table, &keys)?;
        let tombstone = || Mark { tombstone: true, time, origin: by.to_string() }.encode();
        for (((id, key), old), mark) in ids.into_iter().zip(keys).zip(found).zip(marks) {
            // A key named twice is handled once; an inexact number was never stored.
            if !keys::exact_value(&id) || !seen.insert(key.clone()) {
                outcome.skipped.push(id);
                continue;
            }
            match Current::read(old.map_err(internal)?.map(|b| b.to_vec()), mark, local)? {
                Current::Record(old) if wins(time, by, None, updated_time(&old.map), &old.origin, Some(&old.bytes)) => {
                    self.reindex(&mut index, &meta_info.primary_key, &key, Some(&old.map), None);
                    records.delete(key.clone());
                    marked.put(mark_key(db, table, &key), tombstone());
                    outcome.written.push(id);
                }
                Current::Record(_) => outcome.skipped.push(id),
                Current::Gone(tomb) => {
                    if tomb.is_none_or(|t| wins(time, by, None, t.time, &t.origin, None)) {
                        marked.put(mark_key(db, table, &key), tombstone());
                    }
                    outcome.skipped.push(id);
                }
            }
        }
        if !marked.0.is_empty() {
            let mut batch = WriteBatch::default();
            records.apply(&mut batch, &rcf);
            index.apply(&mut batch, &icf);
            marked.apply(&mut batch, &mcf);
            if !outcome.written.is_empty() {
                batch.merge_cf(&meta, format!("count/{db}/{table}"), (-(outcome.written.len() as i64)).to_le_bytes());
            }
            self.commit(batch).map_err(internal)?;
        }
        Ok(outcome)
    }

    /// This node's own delete of a replicated table: deletes like [`Storage::delete`] and, in
    /// the same write batch, leaves a tombstone (made at `time` by `local`) for each record it
    /// deleted, so an older version from another node arriving later does not bring it back
    /// (and a crash keeps both or neither).
    pub fn delete_marked(&self, db: &str, table: &str, ids: Vec<Value>, local: &str, time: u64) -> Result<WriteOutcome, ServiceError> {
        self.delete_with(db, table, ids, Some(&DeleteMark { origin: local, time }))
    }

    /// Puts into a delete's `batch` the tombstones of the records it deletes (`deleted`), when
    /// the delete is marked.
    pub(super) fn put_tombstones(&self, batch: &mut WriteBatch, db: &str, table: &str, deleted: &[Value], mark: Option<&DeleteMark>) -> Result<(), ServiceError> {
        let Some(mark) = mark else { return Ok(()) };
        let cf = self.replication_cf()?;
        let value = Mark { tombstone: true, time: mark.time, origin: mark.origin.to_string() }.encode();
        for id in deleted {
            batch.put_cf(&cf, mark_key(db, table, &keys::encoded(id)), &value);
        }
        Ok(())
    }

    /// Forgets the marks of a dropped table (or of a whole database, `table` `None`).
    pub fn forget_marks(&self, db: &str, table: Option<&str>) -> Result<(), ServiceError> {
        let Some(cf) = self.db.cf_handle(REPLICATION_CF) else { return Ok(()) };
        let from = mark_prefix(db, table);
        let to = super::keys::prefix_end(&from);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&cf, from, to);
        self.commit(batch).map_err(internal)
    }

    /// A table as replication sees it, for a node catching up by snapshot: every record with
    /// the node that wrote its version (`local`, this node's name, when no mark names another),
    /// and every tombstone as (node, time, primary key). Held in memory whole.
    pub fn replication_snapshot(self: &Arc<Self>, db: &str, table: &str, local: &str) -> Result<TableSnapshot, ServiceError> {
        let primary_key = self.primary_key(db, table)?;
        let mut marks = std::collections::HashMap::new();
        let mut tombstones = Vec::new();
        if let Some(cf) = self.db.cf_handle(REPLICATION_CF) {
            let from = mark_prefix(db, Some(table));
            let to = keys::prefix_end(&from);
            let mut read = rocksdb::ReadOptions::default();
            read.set_iterate_upper_bound(to);
            for item in self.db.iterator_cf_opt(&cf, read, rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward)) {
                let (key, value) = item.map_err(internal)?;
                let (Some(mark), Some(id)) = (Mark::decode(&value), key.get(from.len()..)) else { continue };
                if mark.tombstone {
                    if let Some((pk, _)) = keys::decode(id) {
                        tombstones.push((mark.origin, mark.time, pk));
                    }
                } else {
                    marks.insert(id.to_vec(), mark);
                }
            }
        }
        let mut records = Vec::new();
        let all = Query { attributes: vec!["*".into()], ..Default::default() };
        for record in <dyn StorageBackend>::search(&(self.clone() as Arc<dyn StorageBackend>), db, table, all)?.collect_all()? {
            let origin = match (record.get(&primary_key), record.as_object()) {
                (Some(pk), Some(map)) => marks.get(&keys::encoded(pk)).filter(|m| m.time == updated_time(map)).map(|m| m.origin.clone()),
                _ => None,
            };
            records.push((origin.unwrap_or_else(|| local.to_string()), record));
        }
        Ok(TableSnapshot { primary_key, records, tombstones })
    }

    /// Removes tombstones and origins older than `before` (ms); returns how many went.
    pub fn purge_replication_marks(&self, before: u64) -> Result<usize, ServiceError> {
        let Some(cf) = self.db.cf_handle(REPLICATION_CF) else { return Ok(0) };
        let mut batch = WriteBatch::default();
        let mut purged = 0;
        for item in self.db.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
            let (key, value) = item.map_err(internal)?;
            if Mark::decode(&value).is_none_or(|m| m.time < before) {
                batch.delete_cf(&cf, key);
                purged += 1;
            }
            if batch.len() >= 10_000 {
                self.commit(std::mem::take(&mut batch)).map_err(internal)?;
            }
        }
        if !batch.is_empty() {
            self.commit(batch).map_err(internal)?;
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::storage::conformance::temp_rocks;
    use serde_json::json;

    fn v(name: &str, t: u64) -> Value {
        json!({"id": 1, "name": name, "__createdtime__": 100, "__updatedtime__": t})
    }

    fn name_of(s: &Storage) -> Option<Value> {
        s.get("dev", "dog", &[json!(1)], &["name".into()]).expect("get").first().map(|r| r["name"].clone())
    }

    /// Ties in `__updatedtime__` go to the greater node name whatever the order and the bytes
    /// ("b_wins" < "z_loses" as bytes, so the old bytes rule would pick the other one).
    #[test]
    fn ties_go_to_the_greater_node_name_in_any_order() {
        let changes = [("node_b".to_string(), v("b_wins", 400)), ("node_a".to_string(), v("z_loses", 400)), ("node_a".to_string(), v("older", 399))];
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let (s, _keep) = temp_rocks();
            s.create_table("dev", "dog", "id").expect("table");
            for i in order {
                s.merge_from("dev", "dog", "node_c", vec![changes[i].clone()]).expect("merge");
            }
            assert_eq!(name_of(&s), Some(json!("b_wins")), "order {order:?}");
        }
        // One batch holding both: the same answer.
        let (s, _keep) = temp_rocks();
        s.create_table("dev", "dog", "id").expect("table");
        let out = s.merge_from("dev", "dog", "node_c", vec![changes[0].clone(), changes[1].clone()]).expect("merge");
        assert_eq!(out.skipped, vec![json!(1)]);
        assert_eq!(name_of(&s), Some(json!("b_wins")));
    }

    /// The local version (no mark) is this node's: a remote tie wins only from a greater name,
    /// and the two nodes agree.
    #[test]
    fn a_local_version_ties_as_this_node() {
        let (a, _ka) = temp_rocks();
        let (b, _kb) = temp_rocks();
        for s in [&a, &b] {
            s.create_table("dev", "dog", "id").expect("table");
        }
        // Each holds its own version at 500 as if written locally (merged with its own name).
        a.merge_from("dev", "dog", "node_a", vec![("node_a".into(), v("from_a", 500))]).expect("a");
        b.merge_from("dev", "dog", "node_b", vec![("node_b".into(), v("from_b", 500))]).expect("b");
        // Then each receives the other's.
        a.merge_from("dev", "dog", "node_a", vec![("node_b".into(), v("from_b", 500))]).expect("a gets b");
        b.merge_from("dev", "dog", "node_b", vec![("node_a".into(), v("from_a", 500))]).expect("b gets a");
        assert_eq!((name_of(&a), name_of(&b)), (Some(json!("from_b")), Some(json!("from_b"))));
        // A real local write (no mark at all) counts as this node's too.
        let (c, _kc) = temp_rocks();
        c.create_table("dev", "dog", "id").expect("table");
        c.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1, "name": "local"})]).expect("write");
        let t = c.versions("dev", "dog", &[json!(1)]).expect("v")[0]["__updatedtime__"].as_u64().expect("t");
        let out = c.merge_from("dev", "dog", "node_m", vec![("node_a".into(), v("remote_a", t))]).expect("a");
        assert_eq!(out.written.len(), 0, "node_a < node_m: the local version stays");
        c.merge_from("dev", "dog", "node_m", vec![("node_z".into(), v("remote_z", t))]).expect("z");
        assert_eq!(name_of(&c), Some(json!("remote_z")));
    }

    /// A delete leaves a tombstone: an older version arriving after it stays out, a newer one
    /// comes back; a delete arriving before the version it deletes works as well; the counts
    /// follow.
    #[test]
    fn tombstones_keep_deleted_records_deleted() {
        let (s, _keep) = temp_rocks();
        s.create_table("dev", "dog", "id").expect("table");
        s.merge_from("dev", "dog", "me", vec![("node_a".into(), v("first", 100))]).expect("merge");
        let out = s.merge_deletes_from("dev", "dog", "me", "node_b", vec![json!(1)], 300).expect("delete");
        assert_eq!(out.written, vec![json!(1)]);
        for late in [v("older", 200), v("same_time_lesser_node", 300)] {
            let out = s.merge_from("dev", "dog", "me", vec![("node_a".into(), late)]).expect("late");
            assert_eq!(out.written.len(), 0);
            assert_eq!(name_of(&s), None, "an older version does not resurrect the record");
        }
        assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 0);
        // A delete for a key never seen still leaves its tombstone (the version may come later).
        s.merge_deletes_from("dev", "dog", "me", "node_b", vec![json!(2)], 300).expect("delete 2");
        let two = json!({"id": 2, "__createdtime__": 250, "__updatedtime__": 250});
        assert!(s.merge_from("dev", "dog", "me", vec![("node_a".into(), two)]).expect("m").written.is_empty());
        // A later version wins over the tombstone.
        s.merge_from("dev", "dog", "me", vec![("node_a".into(), v("after", 301))]).expect("newer");
        assert_eq!(name_of(&s), Some(json!("after")));
        assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 1);
        // This node's own delete leaves a tombstone too.
        let out = s.delete_marked("dev", "dog", vec![json!(1), json!(9)], "me", 400).expect("local delete");
        assert_eq!((out.written, out.skipped), (vec![json!(1)], vec![json!(9)]));
        s.merge_from("dev", "dog", "me", vec![("node_z".into(), v("stale", 350))]).expect("stale");
        assert_eq!(name_of(&s), None);
        // Past the horizon the tombstones go (and then the old version could come back).
        assert!(s.purge_replication_marks(1_000).expect("purge") >= 2);
        s.merge_from("dev", "dog", "me", vec![("node_z".into(), v("stale", 350))]).expect("stale");
        assert_eq!(name_of(&s), Some(json!("stale")));
        // Dropping the table forgets its marks.
        s.forget_marks("dev", Some("dog")).expect("forget");
        let cf = s.replication_cf().expect("cf");
        assert_eq!(s.db.iterator_cf(&cf, rocksdb::IteratorMode::Start).count(), 0);
    }

    /// A marked local delete leaves one tombstone per deleted record (none for a key it did
    /// not find), whether it deletes key by key or by ranges (many neighbours), so stale
    /// versions stay out on both paths.
    #[test]
    fn a_marked_delete_leaves_tombstones_on_both_paths() {
        for n in [3u64, 200] {
            let (s, _keep) = temp_rocks();
            s.create_table("dev", "dog", "id").expect("table");
            let rows = (0..n).map(|i| json!({"id": i, "name": format!("dog {i}"), "__createdtime__": 100, "__updatedtime__": 100}));
            s.merge_from("dev", "dog", "me", rows.map(|r| ("node_a".to_string(), r)).collect()).expect("load");
            let ids: Vec<Value> = (0..=n).map(|i| json!(i)).collect();
            let out = s.delete_marked("dev", "dog", ids, "me", 500).expect("delete");
            assert_eq!((out.written.len() as u64, out.skipped, s.describe_table("dev", "dog").expect("d").record_count), (n, vec![json!(n)], 0));
            let cf = s.replication_cf().expect("cf");
            let marks: Vec<Mark> = s.db.iterator_cf(&cf, rocksdb::IteratorMode::Start).filter_map(|e| Mark::decode(&e.expect("mark").1)).collect();
            assert_eq!(marks.len() as u64, n, "{n} keys: one tombstone per deleted record");
            assert!(marks.iter().all(|m| *m == Mark { tombstone: true, time: 500, origin: "me".into() }), "{marks:?}");
            let stale: Vec<(String, Value)> = (0..n).map(|i| ("node_z".to_string(), json!({"id": i, "__createdtime__": 100, "__updatedtime__": 400}))).collect();
            assert!(s.merge_from("dev", "dog", "me", stale).expect("stale").written.is_empty(), "{n} keys: stale versions stay out");
        }
    }

    /// A snapshot names each record's writer (another node's by its mark, a local write as
    /// this node's) and carries the table's tombstones, all of them only from that table.
    #[test]
    fn a_replication_snapshot_has_origins_and_tombstones() {
        let (s, _keep) = temp_rocks();
        s.create_table("dev", "dog", "id").expect("table");
        s.create_table("dev", "cat", "id").expect("table");
        s.merge_from("dev", "dog", "me", vec![("node_a".into(), v("remote", 300))]).expect("remote");
        s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": "local"})]).expect("local");
        s.merge_from("dev", "dog", "me", vec![("node_a".into(), json!({"id": 7, "__createdtime__": 1, "__updatedtime__": 1}))]).expect("seven");
        s.merge_deletes_from("dev", "dog", "me", "node_b", vec![json!(7)], 900).expect("delete");
        s.delete_marked("dev", "cat", vec![json!(1)], "me", 901).expect("other table");
        let snap = s.replication_snapshot("dev", "dog", "me").expect("snapshot");
        assert_eq!(snap.primary_key, "id");
        let mut origins: Vec<(String, Value)> = snap.records.iter().map(|(o, r)| (o.clone(), r["id"].clone())).collect();
        origins.sort_by_key(|(o, _)| o.clone());
        assert_eq!(origins, vec![("me".to_string(), json!("local")), ("node_a".to_string(), json!(1))]);
        assert!(snap.records.iter().all(|(_, r)| r.get(UPDATED).is_some()), "versions keep their times");
        assert_eq!(snap.tombstones, vec![("node_b".to_string(), 900, json!(7))]);
    }
}
