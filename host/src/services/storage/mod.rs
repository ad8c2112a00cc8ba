//! The storage service: databases, tables and JSON records in RocksDB, with a secondary index
//! on every top-level scalar attribute. Plain Rust; the `storage` capability wraps it.
//!
//! Key layout (one RocksDB instance at `storage.path`):
//! - column family `meta`: `db/<database>` -> `{}`; `table/<database>/<table>` -> table JSON
//!   (`{"primary_key": ..}`); `attr/<database>/<table>/<attribute>` -> empty (every attribute
//!   ever written); `count/<database>/<table>` and `last/<database>/<table>` -> u64 counters
//!   kept by a merge operator (add, max), so concurrent writers need no shared lock.
//! - column family `r/<database>/<table>`: `encode(primary key)` -> the record as JSON.
//! - column family `i/<database>/<table>`: `attribute 0x00 encode(value) encode(primary key)`
//!   -> empty, for each top-level attribute whose value is a scalar (not the primary key).
//!
//! `encode` is the order-preserving encoding of `keys.rs`. Writes to one table take that
//! table's striped locks by primary key (so a record and its index entries change together;
//! other tables' writes never wait on them) and commit in one `WriteBatch`, fsynced unless
//! `storage.writeAsync` is set.
//!
//! Schema changes are crash-safe by repair: `create_table` makes its column families before
//! the catalog entry, `drop_table` deletes the entry before them, and `open` drops column
//! families (and counters, attributes) that have no catalog entry.
//!
//! Where the rest lives: `schema.rs` (databases and tables), `write.rs` (batches, deletes, index
//! entries), `read.rs` (point reads, scan steps), `cursor.rs` (searches), `projection.rs` (result
//! shapes), `bulk_delete.rs`, `raw_read.rs`, `audit.rs`, `backend.rs` (the `StorageBackend` trait
//! the capability and replication use), `tuning.rs` (RocksDB options).

pub mod audit;
pub mod backend;
mod bulk_delete;
mod raw_read;
pub mod keys;
pub mod query;
mod cursor;
mod paged;
mod projection;
mod read;
mod schema;
mod tuning;
mod durable;
pub use tuning::memory_usage;
mod write;
mod batch_rep;

pub use cursor::Cursor;
pub use paged::Paged;
use projection::Projection;
use write::{index_key, SortedOps};
pub use write::{parse_records, RecordTexts};

pub use backend::StorageBackend;

use super::ServiceError;
use anyhow::Context as _;
use parking_lot::{Mutex, RwLock};
use query::{Cond, Driver, Query};
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, IteratorMode, MergeOperands, MultiThreaded, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

type Db = DBWithThreadMode<MultiThreaded>;

pub const SYSTEM_DATABASE: &str = "system";
const META: &str = "meta";
const CREATED: &str = "__createdtime__";
const UPDATED: &str = "__updatedtime__";
/// Key locks per table. A write holds its keys' stripes until its batch is written (and, but for
/// the capability's writes, which await their sync after, durable.rs, until its WAL fsync), so
/// two concurrent writes of different keys in one stripe wait for each other:
/// with 256, 16 clients inserting one record each collided often enough to spend ~6% of the
/// server's CPU in lock waits (issue 18). A stripe is a one-byte mutex: 4 KiB per table.
const STRIPES: usize = 4096;
/// Largest batch a cursor hands out at once.
pub const MAX_BATCH: usize = 10_000;
/// Records (or index keys) one cursor step may examine, divided by the condition's size: a
/// step is a few milliseconds whatever the filter, so a search that matches nothing still
/// returns to its caller (and its time limit) regularly.
const STEP_WORK: usize = 200_000;
/// Rows a sorted search may hold while it sorts (offset + limit, or every match without a
/// limit), and their sort keys' approximate bytes: past either it is refused with a 400.
pub const MAX_SORT_ROWS: usize = 100_000;
const MAX_SORT_BYTES: usize = 64 << 20;

/// How a batch of records is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Insert,
    Update,
    Upsert,
}

/// What a write or delete did, by primary key.
#[derive(Debug, Default, PartialEq)]
pub struct WriteOutcome {
    pub written: Vec<Value>,
    pub skipped: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub database: String,
    pub table: String,
    pub primary_key: String,
    pub attributes: Vec<String>,
    pub record_count: u64,
    pub table_size: u64,
    pub last_updated: Option<u64>,
    /// Whether the table is audited, and its audit log's bytes (audit.rs).
    pub audit: bool,
    pub audit_size: u64,
}

#[derive(Clone, Debug)]
struct TableMeta {
    primary_key: String,
    attributes: BTreeSet<String>,
}

pub struct Storage {
    db: Db,
    sync: bool,
    /// database -> table -> metadata; mirrors the `meta` column family.
    catalog: RwLock<BTreeMap<String, BTreeMap<String, TableMeta>>>,
    /// Serializes schema changes (create/drop), which are rare.
    schema_lock: Mutex<()>,
    /// "db/table" -> that table's locks (made on first use, kept: one per table name).
    table_locks: Mutex<HashMap<String, Arc<TableLocks>>>,
    /// Whether user tables are audited, and for how long (audit.rs).
    audit: audit::AuditSettings,
    /// The WAL sync that unsynced writes await (durable.rs).
    group: durable::GroupSync,
    /// Changes to what reads see, counted for the answer cache (`Storage::settled_version`).
    changes: Changes,
}

/// Changes to what reads see (records, indexes, the catalog), counted when they start and when
/// they end. A read taken while the two counts are equal saw a settled state, and that state
/// still holds while no change has started since; the answer cache (`answers.rs`) keeps a
/// storage read's answer on exactly that condition. Every RocksDB write and every catalog
/// update holds a [`Changing`] across itself (a write followed by a catalog update is two
/// changes: a read between them sees a settled state that the second one then ends).
#[derive(Default)]
struct Changes {
    started: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicU64,
}

/// A change under way; counted as finished when dropped (also on an error or a panic).
pub(super) struct Changing<'a>(&'a Changes);

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One table's locks. Writes hold `schema` shared and a drop holds it exclusively, so a write
/// racing `drop_table` cannot merge its counters or attributes back into the catalog after the
/// drop. `stripes` are per table, so a bulk write that locks all of them blocks only writes to
/// the same table, never the system tables or other tables.
struct TableLocks {
    schema: RwLock<()>,
    stripes: Vec<Mutex<()>>,
}

impl TableLocks {
    /// Locks the stripes of `keys` in a fixed order (no deadlock between two batches).
    fn lock_keys<'a>(&self, keys: impl Iterator<Item = &'a Vec<u8>>) -> Vec<parking_lot::MutexGuard<'_, ()>> {
        stripes(keys).into_iter().map(|s| self.stripes[s].lock()).collect()
    }

    /// [`TableLocks::lock_keys`] without waiting: `None` when another write holds one of them.
    fn try_lock_keys<'a>(&self, keys: impl Iterator<Item = &'a Vec<u8>>) -> Option<Vec<parking_lot::MutexGuard<'_, ()>>> {
        stripes(keys).into_iter().map(|s| self.stripes[s].try_lock()).collect()
    }
}

/// The stripes of some keys' locks, each once, in the order every write takes them.
fn stripes<'a>(keys: impl Iterator<Item = &'a Vec<u8>>) -> Vec<usize> {
    use std::hash::{Hash, Hasher};
    let mut stripes: Vec<usize> = keys
        .map(|k| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            k.hash(&mut h);
            (h.finish() as usize) % STRIPES
        })
        .collect();
    stripes.sort_unstable();
    stripes.dedup();
    stripes
}

/// `[A-Za-z0-9_]+`, for databases, tables and attributes (deviations.md: no path tricks).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn records_cf(db: &str, table: &str) -> String {
    format!("r/{db}/{table}")
}

fn index_cf(db: &str, table: &str) -> String {
    format!("i/{db}/{table}")
}

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

fn not_found_table(db: &str, table: &str) -> ServiceError {
    ServiceError::NotFound(format!("Table '{db}.{table}' does not exist"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `count/` keys add, `last/` keys keep the maximum.
fn merge_counters(key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let read = |b: &[u8]| b.try_into().map(i64::from_le_bytes).unwrap_or(0);
    let mut acc = existing.map(read).unwrap_or(0);
    let max = key.starts_with(b"last/");
    for op in operands {
        let v = read(op);
        acc = if max { acc.max(v) } else { acc + v };
    }
    Some(acc.to_le_bytes().to_vec())
}

impl Storage {
    /// Point reads of `keys` in one column family, in order: RocksDB's MultiGet for several
    /// keys, a plain Get for one. MultiGet's set-up (its key contexts, sorting, a read options
    /// object per call) cost more than the read of a single key: ~5 % of a single-record
    /// insert's server time was that call (issue 18).
    pub(super) fn get_many<K: AsRef<[u8]>>(
        &self,
        cf: &impl rocksdb::AsColumnFamilyRef,
        keys: &[K],
    ) -> Vec<Result<Option<rocksdb::DBPinnableSlice<'_>>, rocksdb::Error>> {
        match keys {
            [one] => vec![self.db.get_pinned_cf(cf, one)],
            _ => self.db.batched_multi_get_cf(cf, keys.iter(), false),
        }
    }

    /// Counts a change to what reads see until the guard drops (see [`Changes`]).
    pub(super) fn changing(&self) -> Changing<'_> {
        self.changes.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Changing(&self.changes)
    }

    /// The count of changes so far when none is under way, else `None`: a read that starts
    /// after this saw a state that holds while [`Storage::unchanged_since`] says so.
    pub fn settled_version(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::SeqCst;
        let started = self.changes.started.load(SeqCst);
        (self.changes.finished.load(SeqCst) == started).then_some(started)
    }

    /// Whether no change has started since [`Storage::settled_version`] returned `version`.
    pub fn unchanged_since(&self, version: u64) -> bool {
        self.changes.started.load(std::sync::atomic::Ordering::SeqCst) == version
    }

    /// Opens (or creates) the store at `path` and loads its catalog.
    pub fn open(path: &Path, write_async: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let opts = tuning::db_options();
        let mut meta_opts = Options::default();
        meta_opts.set_merge_operator_associative("counters", merge_counters);
        let existing = Db::list_cf(&opts, path).unwrap_or_default();
        let mut descriptors = vec![ColumnFamilyDescriptor::new(META, meta_opts)];
        descriptors.push(audit::descriptor());
        for name in existing.iter().filter(|n| n.as_str() != META && n.as_str() != "default" && n.as_str() != audit::CF) {
            descriptors.push(ColumnFamilyDescriptor::new(name, tuning::options_for(name)));
        }
        let db = Db::open_cf_descriptors(&opts, path, descriptors).with_context(|| format!("opening RocksDB at {}", path.display()))?;
        let storage = Self {
            db,
            sync: !write_async,
            catalog: RwLock::new(BTreeMap::new()),
            schema_lock: Mutex::new(()),
            table_locks: Mutex::new(HashMap::new()),
            audit: Default::default(),
            group: Default::default(),
            changes: Default::default(),
        };
        storage.load_catalog()?;
        storage.drop_orphans(&existing)?;
        Ok(storage)
    }

    /// Repairs an interrupted `create_table` or `drop_table`: column families, counters and
    /// attribute entries of a table without a catalog entry are removed, so the name can be
    /// created again.
    fn drop_orphans(&self, column_families: &[String]) -> anyhow::Result<()> {
        let known = |db: &str, table: &str| self.catalog.read().get(db).is_some_and(|t| t.contains_key(table));
        for name in column_families {
            let mut parts = name.splitn(3, '/');
            let (Some(kind @ ("r" | "i")), Some(db), Some(table)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if !known(db, table) {
                tracing::warn!("dropping column family {kind}/{db}/{table}: its table has no catalog entry (an interrupted create or drop)");
                let _changing = self.changing();
                self.db.drop_cf(name).with_context(|| format!("dropping orphan column family {name}"))?;
            }
        }
        let meta = self.meta()?;
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(&meta, IteratorMode::Start) {
            let (key, _) = item?;
            let text = String::from_utf8_lossy(&key);
            let parts: Vec<&str> = text.split('/').collect();
            let orphan = match parts.as_slice() {
                ["attr", db, table, _] | ["count", db, table] | ["last", db, table] => !known(db, table),
                _ => false,
            };
            if orphan {
                batch.delete_cf(&meta, &key);
            }
        }
        if !batch.is_empty() {
            self.commit(batch)?;
        }
        Ok(())
    }

    fn locks(&self, db: &str, table: &str) -> Arc<TableLocks> {
        self.table_locks
            .lock()
            .entry(format!("{db}/{table}"))
            .or_insert_with(|| Arc::new(TableLocks { schema: RwLock::new(()), stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }))
            .clone()
    }

    fn load_catalog(&self) -> anyhow::Result<()> {
        let meta = self.meta()?;
        let mut catalog = BTreeMap::new();
        // `attr/` keys sort before `table/` keys: attach them once every table is known.
        let mut attrs = Vec::new();
        for item in self.db.iterator_cf(&meta, IteratorMode::Start) {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let parts: Vec<&str> = key.split('/').collect();
            match parts.as_slice() {
                ["db", db] => {
                    catalog.entry(db.to_string()).or_insert_with(BTreeMap::new);
                }
                ["table", db, table] => {
                    let v: Value = serde_json::from_slice(&value)?;
                    let pk = v["primary_key"].as_str().unwrap_or("id").to_string();
                    let mut attributes = BTreeSet::new();
                    attributes.insert(pk.clone());
                    catalog
                        .entry(db.to_string())
                        .or_insert_with(BTreeMap::new)
                        .insert(table.to_string(), TableMeta { primary_key: pk, attributes });
                }
                ["attr", db, table, attr] => attrs.push((db.to_string(), table.to_string(), attr.to_string())),
                _ => {}
            }
        }
        for (db, table, attr) in attrs {
            if let Some(t) = catalog.get_mut(&db).and_then(|d: &mut BTreeMap<String, TableMeta>| d.get_mut(&table)) {
                t.attributes.insert(attr);
            }
        }
        let _changing = self.changing();
        *self.catalog.write() = catalog;
        Ok(())
    }

    fn meta(&self) -> anyhow::Result<Arc<BoundColumnFamily<'_>>> {
        self.db.cf_handle(META).context("the meta column family is missing")
    }

    fn write_options(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }

    /// Options for a write whose caller awaits its WAL sync itself ([`Storage::synced`]).
    fn unsynced_write_options() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(false);
        w
    }

    fn table_meta(&self, db: &str, table: &str) -> Result<TableMeta, ServiceError> {
        let catalog = self.catalog.read();
        let tables = catalog.get(db).ok_or_else(|| ServiceError::NotFound(format!("database '{db}' does not exist")))?;
        tables.get(table).cloned().ok_or_else(|| not_found_table(db, table))
    }

    fn cfs(&self, db: &str, table: &str) -> Result<(Arc<BoundColumnFamily<'_>>, Arc<BoundColumnFamily<'_>>), ServiceError> {
        let r = self.db.cf_handle(&records_cf(db, table)).ok_or_else(|| not_found_table(db, table))?;
        let i = self.db.cf_handle(&index_cf(db, table)).ok_or_else(|| not_found_table(db, table))?;
        Ok((r, i))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ServiceError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(format!("'{what}' must match [A-Za-z0-9_]+, got '{name}'")))
    }
}


#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod conformance;
