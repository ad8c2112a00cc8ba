//! The `StorageBackend` trait: what the storage capability and the host's services need from a
//! store (schema, writes, deletes, reads, searches), implemented by the RocksDB [`Storage`] and
//! by the cluster's replicated store that wraps it (DESIGN.md "Storage", "Beyond one machine").
//!
//! Besides the caller-facing calls, a backend can `merge` full record versions and
//! `merge_deletes`: the idempotent, order-independent writes replication applies (last writer
//! wins by `__updatedtime__`, a tie goes to the greater serialized record, so every node that
//! has seen the same versions holds the same bytes, whatever order they arrived in).

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
    /// Deletes by primary key; keys that do not exist are reported as skipped.
    fn delete(&self, db: &str, table: &str, ids: Vec<Value>) -> Result<WriteOutcome, ServiceError>;
    /// Records by primary key in the order asked, missing ones left out, projected.
    fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError>;
    /// Starts a search (called through `<dyn StorageBackend>::search`).
    fn start_search(self: Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError>;
    /// Stores full record versions (with their own `__createdtime__`/`__updatedtime__`), each
    /// only when it is newer than the stored one: `written` are the versions kept, `skipped`
    /// the ones older than (or identical to) what is stored.
    fn merge(&self, db: &str, table: &str, records: Vec<Value>) -> Result<WriteOutcome, ServiceError>;
    /// Deletes the records whose `__updatedtime__` is at most `time` (a delete made at `time`
    /// does not remove a version written after it).
    fn merge_deletes(&self, db: &str, table: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError>;
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
    fn delete(&self, db: &str, table: &str, ids: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        Storage::delete(self, db, table, ids)
    }
    fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError> {
        Storage::get(self, db, table, ids, attributes)
    }
    fn start_search(self: Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError> {
        Storage::search(&self, db, table, query)
    }
    fn merge(&self, db: &str, table: &str, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        self.merge_versions(db, table, records)
    }
    fn merge_deletes(&self, db: &str, table: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError> {
        self.delete_versions(db, table, ids, time)
    }
    fn versions(&self, db: &str, table: &str, ids: &[Value]) -> Result<Vec<Value>, ServiceError> {
        self.table_meta(db, table)?;
        let (rcf, _) = self.cfs(db, table)?;
        let keys: Vec<Vec<u8>> = ids.iter().filter(|id| keys::exact_value(id)).map(keys::encoded).collect();
        let mut out = Vec::with_capacity(keys.len());
        for found in self.db.batched_multi_get_cf(&rcf, &keys, false) {
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

fn updated_time(record: &Map<String, Value>) -> u64 {
    record.get(UPDATED).and_then(Value::as_u64).unwrap_or(0)
}

/// Whether `new` replaces `old`: a later `__updatedtime__`, or the same time and greater bytes.
pub fn newer(new: &Map<String, Value>, new_bytes: &[u8], old: &Map<String, Value>, old_bytes: &[u8]) -> bool {
    match updated_time(new).cmp(&updated_time(old)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => new_bytes > old_bytes,
    }
}

impl Storage {
    /// [`StorageBackend::merge`] over RocksDB: the same locks, index and counter upkeep as
    /// `write`, but the versions keep their timestamps and only newer ones replace.
    fn merge_versions(&self, db: &str, table: &str, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        let locks = self.locks(db, table);
        let _schema = locks.schema.read();
        let meta_info = self.table_meta(db, table)?;
        let pk_name = meta_info.primary_key.clone();
        let mut prepared = Vec::with_capacity(records.len());
        for (n, record) in records.into_iter().enumerate() {
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
            prepared.push((pk, map));
        }
        let (rcf, icf) = self.cfs(db, table)?;
        let meta = self.meta().map_err(internal)?;
        let keys: Vec<Vec<u8>> = prepared.iter().map(|(pk, _)| keys::encoded(pk)).collect();
        let _stripes = locks.lock_keys(keys.iter());
        let existing = self.db.batched_multi_get_cf(&rcf, &keys, false);
        let (mut records, mut index) = (SortedOps::default(), SortedOps::default());
        let mut outcome = WriteOutcome::default();
        let mut pending: std::collections::HashMap<Vec<u8>, (Map<String, Value>, Vec<u8>)> = Default::default();
        let mut new_attributes = BTreeSet::new();
        let (mut added, mut last) = (0i64, 0u64);
        for (((pk, map), key), old) in prepared.into_iter().zip(keys).zip(existing) {
            let old: Option<(Map<String, Value>, Vec<u8>)> = match pending.get(&key) {
                Some(p) => Some(p.clone()),
                None => match old.map_err(internal)? {
                    Some(bytes) => Some((serde_json::from_slice(&bytes).map_err(internal)?, bytes.to_vec())),
                    None => None,
                },
            };
            let bytes = serde_json::to_vec(&map).map_err(internal)?;
            if let Some((old_map, old_bytes)) = &old {
                if !newer(&map, &bytes, old_map, old_bytes) {
                    outcome.skipped.push(pk);
                    continue;
                }
            } else {
                added += 1;
            }
            for attr in map.keys() {
                if attr != CREATED && attr != UPDATED && !meta_info.attributes.contains(attr) {
                    new_attributes.insert(attr.clone());
                }
            }
            last = last.max(updated_time(&map));
            self.reindex(&mut index, &pk_name, &key, old.as_ref().map(|(m, _)| m), Some(&map));
            records.put(key.clone(), bytes.clone());
            pending.insert(key, (map, bytes));
            outcome.written.push(pk);
        }
        if outcome.written.is_empty() {
            return Ok(outcome);
        }
        let mut batch = WriteBatch::default();
        records.apply(&mut batch, &rcf);
        index.apply(&mut batch, &icf);
        for attr in &new_attributes {
            batch.put_cf(&meta, format!("attr/{db}/{table}/{attr}"), b"");
        }
        if added != 0 {
            batch.merge_cf(&meta, format!("count/{db}/{table}"), added.to_le_bytes());
        }
        batch.merge_cf(&meta, format!("last/{db}/{table}"), (last as i64).to_le_bytes());
        self.db.write_opt(batch, &self.write_options()).map_err(internal)?;
        if !new_attributes.is_empty() {
            if let Some(t) = self.catalog.write().get_mut(db).and_then(|d| d.get_mut(table)) {
                t.attributes.extend(new_attributes);
            }
        }
        Ok(outcome)
    }

    /// [`StorageBackend::merge_deletes`] over RocksDB.
    fn delete_versions(&self, db: &str, table: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError> {
        let locks = self.locks(db, table);
        let _schema = locks.schema.read();
        let meta_info = self.table_meta(db, table)?;
        let (rcf, icf) = self.cfs(db, table)?;
        let meta = self.meta().map_err(internal)?;
        let keys: Vec<Vec<u8>> = ids.iter().map(keys::encoded).collect();
        let _stripes = locks.lock_keys(keys.iter());
        let (mut records, mut index) = (SortedOps::default(), SortedOps::default());
        let mut outcome = WriteOutcome::default();
        let mut seen = BTreeSet::new();
        let found = self.db.batched_multi_get_cf(&rcf, &keys, false);
        for ((id, key), old) in ids.into_iter().zip(keys).zip(found) {
            let old = if keys::exact_value(&id) && seen.insert(key.clone()) { old.map_err(internal)? } else { None };
            let old: Option<Map<String, Value>> = match old {
                Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(internal)?),
                None => None,
            };
            match old {
                Some(old) if updated_time(&old) <= time => {
                    self.reindex(&mut index, &meta_info.primary_key, &key, Some(&old), None);
                    records.delete(key);
                    outcome.written.push(id);
                }
                _ => outcome.skipped.push(id),
            }
        }
        if !outcome.written.is_empty() {
            let mut batch = WriteBatch::default();
            records.apply(&mut batch, &rcf);
            index.apply(&mut batch, &icf);
            batch.merge_cf(&meta, format!("count/{db}/{table}"), (-(outcome.written.len() as i64)).to_le_bytes());
            self.db.write_opt(batch, &self.write_options()).map_err(internal)?;
        }
        Ok(outcome)
    }
}
