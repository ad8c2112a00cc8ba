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

pub mod audit;
pub mod backend;
mod bulk_delete;
mod raw_read;
pub mod keys;
pub mod query;
mod tuning;

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
const STRIPES: usize = 256;
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
        let mut stripes: Vec<usize> = keys
            .map(|k| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut h);
                (h.finish() as usize) % STRIPES
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes.into_iter().map(|s| self.stripes[s].lock()).collect()
    }
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
            descriptors.push(ColumnFamilyDescriptor::new(name, table_cf_options()));
        }
        let db = Db::open_cf_descriptors(&opts, path, descriptors).with_context(|| format!("opening RocksDB at {}", path.display()))?;
        let storage = Self {
            db,
            sync: !write_async,
            catalog: RwLock::new(BTreeMap::new()),
            schema_lock: Mutex::new(()),
            table_locks: Mutex::new(HashMap::new()),
            audit: Default::default(),
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
            self.db.write_opt(batch, &self.write_options())?;
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

    // ---- schema ------------------------------------------------------------------------

    pub fn create_database(&self, db: &str) -> Result<(), ServiceError> {
        check_name("database", db)?;
        let _guard = self.schema_lock.lock();
        if self.catalog.read().contains_key(db) {
            return Err(ServiceError::BadRequest(format!("database '{db}' already exists")));
        }
        let meta = self.meta().map_err(internal)?;
        self.db.put_cf_opt(&meta, format!("db/{db}"), b"{}", &self.write_options()).map_err(internal)?;
        self.catalog.write().insert(db.to_string(), BTreeMap::new());
        Ok(())
    }

    pub fn drop_database(&self, db: &str) -> Result<(), ServiceError> {
        let _guard = self.schema_lock.lock();
        let tables: Vec<String> = {
            let catalog = self.catalog.read();
            let tables = catalog.get(db).ok_or_else(|| ServiceError::NotFound(format!("database '{db}' does not exist")))?;
            tables.keys().cloned().collect()
        };
        for table in &tables {
            self.drop_table_locked(db, table)?;
        }
        let meta = self.meta().map_err(internal)?;
        self.db.delete_cf_opt(&meta, format!("db/{db}"), &self.write_options()).map_err(internal)?;
        self.catalog.write().remove(db);
        Ok(())
    }

    /// Creates a table, and its database when missing (as HarperDB does).
    pub fn create_table(&self, db: &str, table: &str, primary_key: &str) -> Result<(), ServiceError> {
        check_name("database", db)?;
        check_name("table", table)?;
        check_name("primary_key", primary_key)?;
        let _guard = self.schema_lock.lock();
        let locks = self.locks(db, table);
        let _table = locks.schema.write();
        if self.catalog.read().get(db).is_some_and(|t| t.contains_key(table)) {
            return Err(ServiceError::BadRequest(format!("Table '{table}' already exists in '{db}'")));
        }
        // Leftovers of an interrupted drop (only possible if a drop failed mid-way since open).
        for cf in [records_cf(db, table), index_cf(db, table)] {
            if self.db.cf_handle(&cf).is_some() {
                self.db.drop_cf(&cf).map_err(internal)?;
            }
            self.db.create_cf(&cf, &table_cf_options()).map_err(internal)?;
        }
        let meta = self.meta().map_err(internal)?;
        let mut batch = WriteBatch::default();
        self.delete_table_meta(&mut batch, db, table)?;
        batch.put_cf(&meta, format!("db/{db}"), b"{}");
        batch.put_cf(&meta, format!("table/{db}/{table}"), serde_json::json!({ "primary_key": primary_key }).to_string());
        batch.put_cf(&meta, format!("attr/{db}/{table}/{primary_key}"), b"");
        self.db.write_opt(batch, &self.write_options()).map_err(internal)?;
        let mut attributes = BTreeSet::new();
        attributes.insert(primary_key.to_string());
        self.catalog
            .write()
            .entry(db.to_string())
            .or_default()
            .insert(table.to_string(), TableMeta { primary_key: primary_key.to_string(), attributes });
        Ok(())
    }

    pub fn drop_table(&self, db: &str, table: &str) -> Result<(), ServiceError> {
        let _guard = self.schema_lock.lock();
        self.drop_table_locked(db, table)
    }

    /// Deletes (into `batch`) a table's catalog entry, attribute entries and counters.
    fn delete_table_meta(&self, batch: &mut WriteBatch, db: &str, table: &str) -> Result<(), ServiceError> {
        let meta = self.meta().map_err(internal)?;
        let prefix = format!("attr/{db}/{table}/");
        for item in self.db.prefix_iterator_cf(&meta, prefix.as_bytes()) {
            let (key, _) = item.map_err(internal)?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            batch.delete_cf(&meta, key);
        }
        for key in [format!("table/{db}/{table}"), format!("count/{db}/{table}"), format!("last/{db}/{table}")] {
            batch.delete_cf(&meta, key);
        }
        self.audit_forget(batch, db, table)
    }

    fn drop_table_locked(&self, db: &str, table: &str) -> Result<(), ServiceError> {
        let locks = self.locks(db, table);
        // Waits for writes in flight; later ones find the table gone.
        let _table = locks.schema.write();
        self.table_meta(db, table)?;
        let mut batch = WriteBatch::default();
        self.delete_table_meta(&mut batch, db, table)?;
        self.db.write_opt(batch, &self.write_options()).map_err(internal)?;
        if let Some(tables) = self.catalog.write().get_mut(db) {
            tables.remove(table);
        }
        self.db.drop_cf(&records_cf(db, table)).map_err(internal)?;
        self.db.drop_cf(&index_cf(db, table)).map_err(internal)?;
        Ok(())
    }

    /// Every user database with its tables (the `system` database is the host's own).
    pub fn list_databases(&self) -> Vec<(String, Vec<String>)> {
        self.catalog
            .read()
            .iter()
            .filter(|(db, _)| db.as_str() != SYSTEM_DATABASE)
            .map(|(db, tables)| (db.clone(), tables.keys().cloned().collect()))
            .collect()
    }

    pub fn describe_table(&self, db: &str, table: &str) -> Result<TableInfo, ServiceError> {
        let meta_info = self.table_meta(db, table)?;
        let meta = self.meta().map_err(internal)?;
        let counter = |key: String| -> Result<Option<u64>, ServiceError> {
            Ok(self
                .db
                .get_cf(&meta, key)
                .map_err(internal)?
                .and_then(|b| b.as_slice().try_into().ok().map(i64::from_le_bytes))
                .map(|n| n.max(0) as u64))
        };
        let (r, i) = self.cfs(db, table)?;
        let audit_info = self.audit_info(db, table)?;
        let size = |cf: &Arc<BoundColumnFamily<'_>>| {
            ["rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables"]
                .iter()
                .map(|p| self.db.property_int_value_cf(cf, *p).ok().flatten().unwrap_or(0))
                .sum::<u64>()
        };
        Ok(TableInfo {
            database: db.to_string(),
            table: table.to_string(),
            primary_key: meta_info.primary_key,
            attributes: meta_info.attributes.into_iter().collect(),
            record_count: counter(format!("count/{db}/{table}"))?.unwrap_or(0),
            table_size: size(&r) + size(&i),
            last_updated: counter(format!("last/{db}/{table}"))?.filter(|n| *n > 0),
            audit: audit_info.0,
            audit_size: audit_info.1,
        })
    }

    // ---- writes ------------------------------------------------------------------------

    /// Writes a batch atomically: all records are validated first (nothing is written when one
    /// is bad), then each is inserted, merged or skipped according to `mode`.
    pub fn write(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        let locks = self.locks(db, table);
        let _schema = locks.schema.read();
        let meta_info = self.table_meta(db, table)?;
        let pk_name = meta_info.primary_key.clone();
        let mut prepared: Vec<(Value, Map<String, Value>)> = Vec::with_capacity(records.len());
        for (n, record) in records.into_iter().enumerate() {
            let Value::Object(mut map) = record else {
                return Err(ServiceError::BadRequest(format!("record {n} is not an object")));
            };
            map.remove(CREATED);
            map.remove(UPDATED);
            for key in map.keys() {
                if !valid_name(key) {
                    return Err(ServiceError::BadRequest(format!(
                        "attribute names must match [A-Za-z0-9_]+, got '{key}'"
                    )));
                }
            }
            let pk = match map.get(&pk_name) {
                Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
                Some(Value::Number(n)) if keys::exact(n) => Value::Number(n.clone()),
                Some(Value::Number(n)) => {
                    return Err(ServiceError::BadRequest(format!(
                        "primary key '{pk_name}' value {n} cannot be stored exactly: integer keys must lie within ±2^53 (send larger ones as strings)"
                    )))
                }
                None | Some(Value::Null) if mode != WriteMode::Update => {
                    let id = Value::String(uuid::Uuid::new_v4().to_string());
                    map.insert(pk_name.clone(), id.clone());
                    id
                }
                None | Some(Value::Null) => {
                    return Err(ServiceError::BadRequest(format!("record {n} is missing its primary key '{pk_name}'")))
                }
                Some(other) => {
                    return Err(ServiceError::BadRequest(format!(
                        "primary key '{pk_name}' must be a string or a number, got {other}"
                    )))
                }
            };
            prepared.push((pk, map));
        }

        let (rcf, icf) = self.cfs(db, table)?;
        let meta = self.meta().map_err(internal)?;
        let keys: Vec<Vec<u8>> = prepared.iter().map(|(pk, _)| keys::encoded(pk)).collect();
        let _stripes = locks.lock_keys(keys.iter());
        let existing = self.db.batched_multi_get_cf(&rcf, &keys, false);
        let now = now_ms();
        let (mut records, mut index) = (SortedOps::default(), SortedOps::default());
        let mut outcome = WriteOutcome::default();
        // A key written earlier in this batch is what later records of the batch see.
        let mut pending: std::collections::HashMap<Vec<u8>, Option<Map<String, Value>>> = Default::default();
        let mut new_attributes = BTreeSet::new();
        let mut added: i64 = 0;
        let operation = match mode {
            WriteMode::Insert => "insert",
            WriteMode::Update => "update",
            WriteMode::Upsert => "upsert",
        };
        let mut audit = self.audit_begin(db, table, operation);
        for (((pk, map), key), old) in prepared.into_iter().zip(keys).zip(existing) {
            let old: Option<Map<String, Value>> = match pending.get(&key) {
                Some(p) => p.clone(),
                None => match old.map_err(internal)? {
                    Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(internal)?),
                    None => None,
                },
            };
            let new = match (mode, &old) {
                (WriteMode::Insert, Some(_)) | (WriteMode::Update, None) => {
                    outcome.skipped.push(pk);
                    continue;
                }
                (_, None) => {
                    let mut rec = map;
                    rec.insert(CREATED.into(), now.into());
                    rec.insert(UPDATED.into(), now.into());
                    added += 1;
                    rec
                }
                (_, Some(old)) => {
                    let mut rec = old.clone();
                    for (k, v) in map {
                        rec.insert(k, v);
                    }
                    // Strictly after the version replaced (which may be a replicated one from
                    // the same millisecond), so last-writer-wins agrees everywhere (cluster).
                    let after = old.get(UPDATED).and_then(Value::as_u64).map_or(now, |t| now.max(t + 1));
                    rec.insert(UPDATED.into(), after.into());
                    rec
                }
            };
            for attr in new.keys() {
                if attr != CREATED && attr != UPDATED && !meta_info.attributes.contains(attr) {
                    new_attributes.insert(attr.clone());
                }
            }
            self.reindex(&mut index, &pk_name, &key, old.as_ref(), Some(&new));
            let stored = serde_json::to_vec(&new).map_err(internal)?;
            if let Some(a) = audit.as_mut() {
                a.written(&pk, &stored, old)?;
            }
            records.put(key.clone(), stored);
            pending.insert(key, Some(new));
            outcome.written.push(pk);
        }
        if outcome.written.is_empty() {
            return Ok(outcome);
        }
        // Sized up front: growing a batch of megabytes copies it again and again.
        let audit_bytes = audit.as_ref().map_or(0, |a| a.record_bytes() * 2 + 4096);
        let mut batch = WriteBatch::with_capacity_bytes(records.bytes() + index.bytes() + audit_bytes + 4096);
        records.apply(&mut batch, &rcf);
        index.apply(&mut batch, &icf);
        for attr in &new_attributes {
            batch.put_cf(&meta, format!("attr/{db}/{table}/{attr}"), b"");
        }
        if added != 0 {
            batch.merge_cf(&meta, format!("count/{db}/{table}"), added.to_le_bytes());
        }
        batch.merge_cf(&meta, format!("last/{db}/{table}"), (now as i64).to_le_bytes());
        if let Some(a) = audit {
            a.commit(self, &mut batch)?;
        }
        self.db.write_opt(batch, &self.write_options()).map_err(internal)?;
        if !new_attributes.is_empty() {
            if let Some(t) = self.catalog.write().get_mut(db).and_then(|d| d.get_mut(table)) {
                t.attributes.extend(new_attributes);
            }
        }
        Ok(outcome)
    }

    /// Deletes by primary key; keys that do not exist are reported as skipped.
    pub fn delete(&self, db: &str, table: &str, ids: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        self.delete_with(db, table, ids, None)
    }

    /// [`Storage::delete`], with a replicated delete's tombstones (`mark`) in its batch.
    fn delete_with(&self, db: &str, table: &str, ids: Vec<Value>, mark: Option<&backend::DeleteMark>) -> Result<WriteOutcome, ServiceError> {
        let locks = self.locks(db, table);
        let _schema = locks.schema.read();
        let meta_info = self.table_meta(db, table)?;
        let (rcf, icf) = self.cfs(db, table)?;
        let meta = self.meta().map_err(internal)?;
        // Many neighbouring keys go by range deletes (bulk_delete.rs).
        if let Some(outcome) = self.delete_dense(db, table, &meta_info, &locks, &ids, mark)? {
            return Ok(outcome);
        }
        let keys: Vec<Vec<u8>> = ids.iter().map(keys::encoded).collect();
        let _stripes = locks.lock_keys(keys.iter());
        let (mut records, mut index) = (SortedOps::default(), SortedOps::default());
        let mut outcome = WriteOutcome::default();
        let mut seen = BTreeSet::new();
        let mut audit = self.audit_begin(db, table, "delete");
        let found = self.db.batched_multi_get_cf(&rcf, &keys, false);
        for ((id, key), old) in ids.into_iter().zip(keys).zip(found) {
            // A key named twice is deleted once; the second is reported skipped. An inexact
            // number (beyond 2^53) can never have been stored: its key is a neighbour's.
            let old = if keys::exact_value(&id) && seen.insert(key.clone()) { old.map_err(internal)? } else { None };
            match old {
                Some(bytes) => {
                    let old: Map<String, Value> = serde_json::from_slice(&bytes).map_err(internal)?;
                    self.reindex(&mut index, &meta_info.primary_key, &key, Some(&old), None);
                    records.delete(key);
                    if let Some(a) = audit.as_mut() {
                        a.deleted(&id, old);
                    }
                    outcome.written.push(id);
                }
                None => outcome.skipped.push(id),
            }
        }
        if !outcome.written.is_empty() {
            let mut batch = WriteBatch::default();
            records.apply(&mut batch, &rcf);
            index.apply(&mut batch, &icf);
            batch.merge_cf(&meta, format!("count/{db}/{table}"), (-(outcome.written.len() as i64)).to_le_bytes());
            self.put_tombstones(&mut batch, db, table, &outcome.written, mark)?;
            if let Some(a) = audit {
                a.commit(self, &mut batch)?;
            }
            self.db.write_opt(batch, &self.write_options()).map_err(internal)?;
        }
        Ok(outcome)
    }

    /// Index entries: removes the old record's, adds the new record's (unchanged ones stay).
    fn reindex(
        &self,
        ops: &mut SortedOps,
        pk_name: &str,
        key: &[u8],
        old: Option<&Map<String, Value>>,
        new: Option<&Map<String, Value>>,
    ) {
        let indexed = |(attr, value): (&String, &Value)| {
            attr.as_str() != pk_name && !value.is_object() && !value.is_array()
        };
        if let Some(old) = old {
            for (attr, value) in old.iter().filter(|e| indexed(*e)) {
                if new.and_then(|n| n.get(attr)) != Some(value) {
                    ops.delete(index_key(attr, value, key));
                }
            }
        }
        if let Some(new) = new {
            for (attr, value) in new.iter().filter(|e| indexed(*e)) {
                if old.and_then(|o| o.get(attr)) != Some(value) {
                    ops.put(index_key(attr, value, key), Vec::new());
                }
            }
        }
    }

    // ---- reads -------------------------------------------------------------------------

    /// Records by primary key in the order asked, missing ones left out, projected.
    pub fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError> {
        self.get_each(db, table, ids, attributes, |projection, bytes| {
            let record: Value = serde_json::from_slice(bytes).map_err(internal)?;
            Ok(projection.apply(&record))
        })
    }

    /// [`Storage::get`] answering JSON text: each record is projected from its stored bytes
    /// without building a `Value` (the storage capability hands guests text anyway).
    pub fn get_json(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<String>, ServiceError> {
        self.get_each(db, table, ids, attributes, |projection, bytes| projection.json_from_raw(bytes))
    }

    /// The one point-read path of `get` and `get_json`: `each` turns a found record's stored
    /// bytes into the answer.
    fn get_each<T>(
        &self,
        db: &str,
        table: &str,
        ids: &[Value],
        attributes: &[String],
        mut each: impl FnMut(&Projection, &[u8]) -> Result<T, ServiceError>,
    ) -> Result<Vec<T>, ServiceError> {
        let meta_info = self.table_meta(db, table)?;
        let projection = Projection::new(&meta_info, attributes)?;
        let (rcf, _) = self.cfs(db, table)?;
        // An inexact number (beyond 2^53) can never have been stored: its key is a neighbour's.
        let keys: Vec<Vec<u8>> = ids.iter().filter(|id| keys::exact_value(id)).map(keys::encoded).collect();
        let mut out = Vec::with_capacity(ids.len());
        for found in self.db.batched_multi_get_cf(&rcf, &keys, false) {
            if let Some(bytes) = found.map_err(internal)? {
                out.push(each(&projection, &bytes)?);
            }
        }
        Ok(out)
    }

    /// Starts a search; the cursor streams matches in batches.
    pub fn search(self: &Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError> {
        let meta_info = self.table_meta(db, table)?;
        let projection = Projection::new(&meta_info, &query.attributes)?;
        let mut named = Vec::new();
        if let Some(c) = &query.cond {
            c.attributes(&mut named);
        }
        for (attr, _) in &query.sort {
            named.push(attr);
        }
        for attr in named {
            if !meta_info.attributes.contains(attr) && attr != CREATED && attr != UPDATED {
                return Err(ServiceError::BadRequest(format!("unknown attribute '{attr}'")));
            }
        }
        self.cfs(db, table)?;
        // Every stored record has its primary key: `exists` on it (HarperDB's `*`) filters nothing.
        let cond = query.cond.filter(|c| {
            !matches!(c, Cond::Leaf { attribute, cmp: query::Cmp::Exists, .. } if *attribute == meta_info.primary_key)
        });
        let query = Query { cond, ..query };
        let driver = query::plan(query.cond.as_ref(), &meta_info.primary_key);
        let budget = (STEP_WORK / query.cond.as_ref().map_or(1, Cond::size)).clamp(16, MAX_BATCH);
        Ok(Cursor {
            storage: self.clone(),
            db: db.to_string(),
            table: table.to_string(),
            driver,
            cond: query.cond,
            projection,
            sort: query.sort,
            to_skip: query.offset,
            left: query.limit,
            resume: None,
            done: false,
            sorted: None,
            primary_key: meta_info.primary_key.clone(),
            budget,
        })
    }

    /// One step of an index scan that needs no record: the condition is one leaf on the
    /// indexed attribute (checked against the value in the index key) and only the primary
    /// key is asked for, so each match is `{"<pk>": <key>}` without reading the record.
    /// Stops after `max` matches or `budget` examined keys.
    #[allow(clippy::too_many_arguments)]
    fn covered_step(
        &self,
        db: &str,
        table: &str,
        driver: &Driver,
        cond: &Cond,
        pk_name: &str,
        resume: Option<&[u8]>,
        max: usize,
        budget: usize,
    ) -> Result<(Vec<String>, Option<Vec<u8>>), ServiceError> {
        let Driver::Index { attribute, start, end } = driver else { return Ok((Vec::new(), None)) };
        let (rcf, icf) = self.cfs(db, table)?;
        let mut prefix = attribute.as_bytes().to_vec();
        prefix.push(0);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound([prefix.as_slice(), end].concat());
        let from = resume.map(|r| r.to_vec()).unwrap_or_else(|| [prefix.as_slice(), start].concat());
        let mut out = Vec::new();
        let mut examined = 0;
        let mut probe = Map::with_capacity(1);
        // Index keys hold numbers as f64: a number beyond 2^53 (or with a fraction) may not
        // come back as written, so such a key or value is read from its record instead.
        let lossy = |v: &Value| matches!(v, Value::Number(n) if !n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15));
        for item in self.db.iterator_cf_opt(&icf, opts, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
            let (key, _) = item.map_err(internal)?;
            if resume.is_some_and(|r| r == &key[..]) {
                continue;
            }
            examined += 1;
            let Some((value, pk_bytes)) = keys::decode(&key[prefix.len()..]) else { continue };
            let pk = keys::decode(pk_bytes).map(|(pk, _)| pk);
            if lossy(&value) || pk.as_ref().is_some_and(lossy) {
                if let Some(bytes) = self.db.get_cf(&rcf, pk_bytes).map_err(internal)? {
                    let record: Value = serde_json::from_slice(&bytes).map_err(internal)?;
                    if cond.matches(&record) {
                        if let Some(v) = record.get(pk_name) {
                            out.push(format!("{{\"{pk_name}\":{v}}}"));
                        }
                    }
                }
            } else {
                probe.insert(attribute.clone(), value);
                let record = Value::Object(std::mem::take(&mut probe));
                if cond.matches(&record) {
                    if let Some(pk) = pk {
                        out.push(format!("{{\"{pk_name}\":{pk}}}"));
                    }
                }
                if let Value::Object(m) = record {
                    probe = m;
                }
            }
            if out.len() >= max || examined >= budget {
                return Ok((out, Some(key.to_vec())));
            }
        }
        Ok((out, None))
    }

    /// One step of a scan; `accept` turns a stored record (its key and bytes) into a result,
    /// or None when the record does not match. Stops after `max` results or `budget` examined
    /// records or keys, whichever comes first, and says where to resume (None at the end).
    #[allow(clippy::too_many_arguments)]
    fn scan_step_with<T>(
        &self,
        db: &str,
        table: &str,
        driver: &Driver,
        resume: Option<&[u8]>,
        max: usize,
        budget: usize,
        mut accept: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, ServiceError>,
    ) -> Result<(Vec<T>, Option<Vec<u8>>), ServiceError> {
        let (rcf, icf) = self.cfs(db, table)?;
        let mut out = Vec::new();
        match driver {
            Driver::Keys(ids) => {
                // Small by construction: one step returns them all.
                if resume.is_none() {
                    let keys: Vec<Vec<u8>> = ids.iter().filter(|id| keys::exact_value(id)).map(keys::encoded).collect();
                    for (key, found) in keys.iter().zip(self.db.batched_multi_get_cf(&rcf, &keys, false)) {
                        if let Some(bytes) = found.map_err(internal)? {
                            out.extend(accept(key, &bytes)?);
                        }
                    }
                }
                Ok((out, None))
            }
            Driver::FullScan | Driver::PrimaryRange { .. } => {
                let (start, end) = match driver {
                    Driver::PrimaryRange { start, end } => (start.clone(), Some(end.clone())),
                    _ => (Vec::new(), None),
                };
                let mut opts = ReadOptions::default();
                if let Some(end) = end {
                    opts.set_iterate_upper_bound(end);
                }
                let from = resume.map(|r| r.to_vec()).unwrap_or(start);
                let mut examined = 0;
                for item in self.db.iterator_cf_opt(&rcf, opts, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
                    let (key, value) = item.map_err(internal)?;
                    if resume.is_some_and(|r| r == &key[..]) {
                        continue;
                    }
                    examined += 1;
                    out.extend(accept(&key, &value)?);
                    // Stop at a full batch, or after a bounded amount of work so a selective
                    // filter cannot hold the thread for the whole table.
                    if out.len() >= max || examined >= budget {
                        return Ok((out, Some(key.to_vec())));
                    }
                }
                Ok((out, None))
            }
            Driver::Index { attribute, start, end } => {
                let mut prefix = attribute.as_bytes().to_vec();
                prefix.push(0);
                let lower = [prefix.as_slice(), start].concat();
                let upper = [prefix.as_slice(), end].concat();
                let mut opts = ReadOptions::default();
                opts.set_iterate_upper_bound(upper);
                let from = resume.map(|r| r.to_vec()).unwrap_or(lower);
                let mut pks: Vec<Vec<u8>> = Vec::new();
                let mut last = None;
                let mut exhausted = true;
                for item in self.db.iterator_cf_opt(&icf, opts, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
                    let (key, _) = item.map_err(internal)?;
                    if resume.is_some_and(|r| r == &key[..]) {
                        continue;
                    }
                    let rest = &key[prefix.len()..];
                    let Some((_, pk)) = keys::decode(rest) else { continue };
                    pks.push(pk.to_vec());
                    last = Some(key.to_vec());
                    if pks.len() >= max.min(budget) {
                        exhausted = false;
                        break;
                    }
                }
                for (key, found) in pks.iter().zip(self.db.batched_multi_get_cf(&rcf, &pks, false)) {
                    if let Some(bytes) = found.map_err(internal)? {
                        out.extend(accept(key, &bytes)?);
                    }
                }
                Ok((out, if exhausted { None } else { last }))
            }
        }
    }

    /// Records by encoded primary key, in the order given, missing ones left out.
    fn fetch(&self, db: &str, table: &str, keys: &[Vec<u8>]) -> Result<Vec<rocksdb::DBPinnableSlice<'_>>, ServiceError> {
        let (rcf, _) = self.cfs(db, table)?;
        let mut out = Vec::with_capacity(keys.len());
        for found in self.db.batched_multi_get_cf(&rcf, keys, false) {
            if let Some(bytes) = found.map_err(internal)? {
                out.push(bytes);
            }
        }
        Ok(out)
    }
}

/// Puts and deletes for one column family, added to the write batch in key order: RocksDB's
/// memtable inserts a run of ascending keys far faster than scattered ones (the skip list
/// reuses its last position), which halves the cost of a bulk delete or insert. The sort is
/// stable, so two operations on one key keep their order.
#[derive(Default)]
struct SortedOps(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl SortedOps {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.0.push((key, Some(value)));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.0.push((key, None));
    }

    /// About the bytes these operations take in a write batch.
    fn bytes(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 12).sum()
    }

    fn apply(mut self, batch: &mut WriteBatch, cf: &Arc<BoundColumnFamily<'_>>) {
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in self.0 {
            match value {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
    }
}

fn index_key(attr: &str, value: &Value, pk_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(attr.len() + 1 + 16 + pk_key.len());
    k.extend_from_slice(attr.as_bytes());
    k.push(0);
    keys::encode(value, &mut k);
    k.extend_from_slice(pk_key);
    k
}

fn table_cf_options() -> Options {
    tuning::table_options()
}

fn check_name(what: &str, name: &str) -> Result<(), ServiceError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(format!("'{what}' must match [A-Za-z0-9_]+, got '{name}'")))
    }
}

/// Which attributes a result carries, in which order.
#[derive(Clone, Debug)]
struct Projection {
    names: Vec<String>,
    /// `["*"]`: every attribute. The names were the table's attributes when the read began; a
    /// write that committed since can have brought new ones, so a record with fields outside
    /// `names` is shown with them too (see [`Projection::widened`]).
    star: bool,
}

impl Projection {
    /// `["*"]` is the primary key, the two timestamps, then every attribute alphabetically
    /// (HarperDB's export order). Unknown names are refused.
    fn new(meta: &TableMeta, attributes: &[String]) -> Result<Self, ServiceError> {
        if attributes.is_empty() || attributes.iter().any(|a| a == "*") {
            let mut names = vec![meta.primary_key.clone(), CREATED.to_string(), UPDATED.to_string()];
            names.extend(meta.attributes.iter().filter(|a| **a != meta.primary_key).cloned());
            return Ok(Self { names, star: true });
        }
        for a in attributes {
            if !meta.attributes.contains(a) && a != CREATED && a != UPDATED {
                return Err(ServiceError::BadRequest(format!("unknown attribute '{a}'")));
            }
        }
        Ok(Self { names: attributes.to_vec(), star: false })
    }

    /// For a `*` projection and a record with `fields` fields of which only `matched` are in
    /// `names`: the projection that shows this record whole. A write adds its new attribute
    /// names to the table after its records are visible, so a reader that took the names just
    /// before would otherwise drop them (a finished job read without its message).
    fn widened<'k>(&self, fields: usize, matched: usize, keys: impl Iterator<Item = &'k str>) -> Option<Projection> {
        if !self.star || matched >= fields {
            return None;
        }
        let mut names = self.names.clone();
        names.extend(keys.filter(|k| !self.names.iter().any(|n| n == k)).map(str::to_string));
        // The first three are the primary key and the timestamps; the rest stay alphabetical.
        names[3.min(self.names.len())..].sort();
        Some(Projection { names, star: false })
    }

    /// The projected record as JSON text, straight from a parsed record.
    fn json_from_value(&self, record: &Value) -> String {
        let mut out = Vec::with_capacity(64 * self.names.len());
        let mut matched = 0;
        out.push(b'{');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Attribute names are `[A-Za-z0-9_]+` (checked on write): no escaping needed.
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match record.get(name) {
                Some(v) => {
                    matched += 1;
                    let _ = serde_json::to_writer(&mut out, v);
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        if let Some(map) = record.as_object() {
            if let Some(wider) = self.widened(map.len(), matched, map.keys().map(String::as_str)) {
                return wider.json_from_value(record);
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The projected record as JSON text, from the stored bytes without building a `Value`:
    /// the stored values are compact JSON already and are copied as they are.
    fn json_from_raw(&self, bytes: &[u8]) -> Result<String, ServiceError> {
        match serde_json::from_slice::<RawFields<'_>>(bytes) {
            Ok(fields) => Ok(self.json_from_fields(&fields, bytes.len())),
            // Keys with escapes cannot be borrowed; take the general path.
            Err(_) => Ok(self.json_from_value(&serde_json::from_slice(bytes).map_err(internal)?)),
        }
    }

    /// The projected record as JSON text, from its fields borrowed from `len` stored bytes.
    fn json_from_fields(&self, fields: &RawFields<'_>, len: usize) -> String {
        let mut out = String::with_capacity(len + 16 * self.names.len());
        let mut matched = 0;
        out.push('{');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            match fields.0.iter().find(|(k, _)| k == name) {
                Some((_, v)) => {
                    matched += 1;
                    out.push_str(v.get());
                }
                None => out.push_str("null"),
            }
        }
        out.push('}');
        if let Some(wider) = self.widened(fields.0.len(), matched, fields.0.iter().map(|(k, _)| *k)) {
            return wider.json_from_fields(fields, len);
        }
        out
    }

    fn apply(&self, record: &Value) -> Value {
        let mut out = Map::with_capacity(self.names.len());
        let mut matched = 0;
        for name in &self.names {
            let value = record.get(name);
            matched += usize::from(value.is_some());
            out.insert(name.clone(), value.cloned().unwrap_or(Value::Null));
        }
        if let Some(map) = record.as_object() {
            if let Some(wider) = self.widened(map.len(), matched, map.keys().map(String::as_str)) {
                return wider.apply(record);
            }
        }
        Value::Object(out)
    }
}

/// Applies a search's offset (`to_skip`) and limit (`left`) to the next matches, mapping the
/// ones kept into `out` (mapping only what is kept: skipped records are never projected).
fn window<T, U>(to_skip: &mut u64, left: &mut Option<u64>, batch: Vec<T>, out: &mut Vec<U>, map: impl Fn(T) -> U) {
    for r in batch {
        if *to_skip > 0 {
            *to_skip -= 1;
            continue;
        }
        match left {
            Some(0) => break,
            Some(l) => *l -= 1,
            None => {}
        }
        out.push(map(r));
    }
}

/// A stored record's top-level fields, borrowed from its bytes.
struct RawFields<'a>(Vec<(&'a str, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawFields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<&'de str, &'de serde_json::value::RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawFields(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A running search. Without a sort it streams (memory stays flat whatever the table size);
/// with one it keeps the best offset + limit matches (their sort keys and primary keys only)
/// while it scans, then fetches those records in order. Every step does a bounded amount of
/// work ([`Cursor::step_json`]), so the caller decides how long to keep going.
pub struct Cursor {
    storage: Arc<Storage>,
    db: String,
    table: String,
    driver: Driver,
    cond: Option<Cond>,
    projection: Projection,
    sort: Vec<(String, bool)>,
    to_skip: u64,
    left: Option<u64>,
    resume: Option<Vec<u8>>,
    done: bool,
    /// For a sorted search: the matches kept so far, then the sorted keys to hand out.
    sorted: Option<Sorted>,
    primary_key: String,
    /// Records or keys one step may examine.
    budget: usize,
}

enum Sorted {
    Collecting(TopK),
    Ready(VecDeque<Vec<u8>>),
}

/// The best `keep` matches seen so far (all of them without a limit), bounded in rows and
/// bytes: the buffer is sorted and cut back to `keep` whenever it doubles.
struct TopK {
    keep: Option<usize>,
    rows: Vec<SortRow>,
    seq: u64,
    bytes: usize,
}

struct SortRow {
    keys: Vec<Value>,
    /// Scan order, so equal keys keep it (a stable sort).
    seq: u64,
    pk: Vec<u8>,
}

fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => 32 + s.len(),
        Value::Array(_) | Value::Object(_) => 32 + v.to_string().len(),
        _ => 32,
    }
}

impl TopK {
    fn push(&mut self, row: SortRow, order: &dyn Fn(&SortRow, &SortRow) -> std::cmp::Ordering) -> Result<(), ServiceError> {
        self.bytes += row.pk.len() + 48 + row.keys.iter().map(approx_size).sum::<usize>();
        self.rows.push(row);
        match self.keep {
            Some(k) if self.rows.len() >= 2 * k.max(512) => self.prune(order),
            _ => {}
        }
        if self.rows.len() > MAX_SORT_ROWS || self.bytes > MAX_SORT_BYTES {
            return Err(ServiceError::BadRequest(format!(
                "a sorted search may hold at most {MAX_SORT_ROWS} rows ({} MB of sort keys): add a limit (offset + limit at most {MAX_SORT_ROWS}) or a narrower condition",
                MAX_SORT_BYTES >> 20
            )));
        }
        Ok(())
    }

    fn prune(&mut self, order: &dyn Fn(&SortRow, &SortRow) -> std::cmp::Ordering) {
        self.rows.sort_by(order);
        if let Some(k) = self.keep {
            self.rows.truncate(k);
        }
        self.bytes = self.rows.iter().map(|r| r.pk.len() + 48 + r.keys.iter().map(approx_size).sum::<usize>()).sum();
    }
}

impl Cursor {
    /// Up to `max` projected records; empty at the end.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Value>, ServiceError> {
        self.next_batch_json(max)?.iter().map(|t| serde_json::from_str(t).map_err(internal)).collect()
    }

    /// Every remaining record (for the host's own small tables).
    pub fn collect_all(&mut self) -> Result<Vec<Value>, ServiceError> {
        let mut all = Vec::new();
        loop {
            let batch = self.next_batch(1000)?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// Up to `max` records as JSON text (the form the guests receive); empty at the end.
    /// Steps until the batch is full, so this is for callers without a time limit to honour;
    /// the `storage` capability calls [`Cursor::step_json`] and checks its deadline between.
    pub fn next_batch_json(&mut self, max: usize) -> Result<Vec<String>, ServiceError> {
        let max = max.clamp(1, MAX_BATCH);
        let mut out = Vec::new();
        while out.len() < max && !self.finished() {
            out.extend(self.step_json(max - out.len())?);
        }
        Ok(out)
    }

    /// Whether the search has nothing more to hand out.
    pub fn finished(&self) -> bool {
        self.left == Some(0) || (self.done && !matches!(&self.sorted, Some(Sorted::Ready(q)) if !q.is_empty()))
    }

    /// A cursor with nothing left, to stand in for this one while a step runs elsewhere.
    pub fn take(&mut self) -> Cursor {
        let placeholder = Cursor {
            storage: self.storage.clone(),
            db: String::new(),
            table: String::new(),
            driver: Driver::FullScan,
            cond: None,
            projection: Projection { names: Vec::new(), star: false },
            sort: Vec::new(),
            to_skip: 0,
            left: Some(0),
            resume: None,
            done: true,
            sorted: None,
            primary_key: String::new(),
            budget: 1,
        };
        std::mem::replace(self, placeholder)
    }

    /// One bounded step: at most `max` records after examining at most a fixed number of
    /// records or keys. The batch may be short or empty while the search is not finished
    /// (see [`Cursor::finished`]). Without a sort or a filter (a whole-table export) records
    /// go from their stored bytes to the projected text without being parsed into values.
    pub fn step_json(&mut self, max: usize) -> Result<Vec<String>, ServiceError> {
        let max = max.clamp(1, MAX_BATCH);
        if self.finished() {
            return Ok(Vec::new());
        }
        if !self.sort.is_empty() {
            return self.sorted_step(max);
        }
        let mut out = Vec::new();
        let (projection, cond) = (&self.projection, self.cond.as_ref());
        let mut named = Vec::new();
        if let Some(c) = cond {
            c.attributes(&mut named);
        }
        let (batch, resume) = if let Some((cond, pk)) = self.covered() {
            self.storage.covered_step(&self.db, &self.table, &self.driver, cond, pk, self.resume.as_deref(), max, self.budget)?
        } else {
            self.storage.scan_step_with(&self.db, &self.table, &self.driver, self.resume.as_deref(), max, self.budget, |_, bytes| match cond {
                None => projection.json_from_raw(bytes).map(Some),
                Some(c) => raw_read::filtered_json(projection, c, &named, bytes),
            })?
        };
        self.done = resume.is_none();
        self.resume = resume;
        window(&mut self.to_skip, &mut self.left, batch, &mut out, |r| r);
        Ok(out)
    }

    /// The condition and primary key name when the index alone answers this search (see
    /// [`Storage::covered_step`]).
    fn covered(&self) -> Option<(&Cond, &str)> {
        let Driver::Index { attribute, .. } = &self.driver else { return None };
        let cond = self.cond.as_ref()?;
        let on_driver = matches!(cond, Cond::Leaf { attribute: a, .. } if a == attribute);
        let pk = self.primary_key.as_str();
        (on_driver && self.projection.names.len() == 1 && self.projection.names[0] == pk).then_some((cond, pk))
    }

    /// The order of sorted rows: by each sort key (nulls first, then by type, then by value),
    /// then by scan order.
    fn order(sort: &[(String, bool)]) -> impl Fn(&SortRow, &SortRow) -> std::cmp::Ordering + '_ {
        move |a, b| {
            for (i, (_, desc)) in sort.iter().enumerate() {
                let o = query::sort_order(&a.keys[i], &b.keys[i]);
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            a.seq.cmp(&b.seq)
        }
    }

    fn sorted_step(&mut self, max: usize) -> Result<Vec<String>, ServiceError> {
        let keep = self.left.map(|l| (self.to_skip.saturating_add(l)).min(usize::MAX as u64) as usize);
        let sorted = self.sorted.get_or_insert_with(|| Sorted::Collecting(TopK { keep, rows: Vec::new(), seq: 0, bytes: 0 }));
        match sorted {
            Sorted::Collecting(top) => {
                let (cond, sort) = (self.cond.as_ref(), &self.sort);
                let (rows, resume) = self.storage.scan_step_with(
                    &self.db,
                    &self.table,
                    &self.driver,
                    self.resume.as_deref(),
                    self.budget,
                    self.budget,
                    |key, bytes| {
                        let r = serde_json::from_slice::<Value>(bytes).map_err(internal)?;
                        if cond.is_some_and(|c| !c.matches(&r)) {
                            return Ok(None);
                        }
                        let keys = sort.iter().map(|(a, _)| r.get(a).cloned().unwrap_or(Value::Null)).collect();
                        Ok(Some((keys, key.to_vec())))
                    },
                )?;
                let order = Self::order(sort);
                for (keys, pk) in rows {
                    top.seq += 1;
                    top.push(SortRow { keys, seq: top.seq, pk }, &order)?;
                }
                self.done = resume.is_none();
                self.resume = resume;
                if self.done {
                    top.prune(&order);
                    let queue = std::mem::take(&mut top.rows).into_iter().map(|r| r.pk).collect();
                    *sorted = Sorted::Ready(queue);
                }
                Ok(Vec::new())
            }
            Sorted::Ready(queue) => {
                // Offset rows are dropped without being read.
                while self.to_skip > 0 && queue.pop_front().is_some() {
                    self.to_skip -= 1;
                }
                let take = self.left.map_or(max, |l| max.min(l as usize));
                let keys: Vec<Vec<u8>> = queue.drain(..take.min(queue.len())).collect();
                let mut out = Vec::with_capacity(keys.len());
                for bytes in self.storage.fetch(&self.db, &self.table, &keys)? {
                    // A record changed since it was sorted is still checked against the filter.
                    if let Some(c) = &self.cond {
                        let r = serde_json::from_slice::<Value>(&bytes).map_err(internal)?;
                        if c.matches(&r) {
                            out.push(self.projection.json_from_value(&r));
                        }
                    } else {
                        out.push(self.projection.json_from_raw(&bytes)?);
                    }
                }
                let mut kept = Vec::with_capacity(out.len());
                window(&mut self.to_skip, &mut self.left, out, &mut kept, |r| r);
                Ok(kept)
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod conformance;
