//! Storage writes: validated batch inserts, updates, upserts and deletes with their index entries, in one RocksDB batch.

use super::*;

impl Storage {
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
    pub(super) fn delete_with(&self, db: &str, table: &str, ids: Vec<Value>, mark: Option<&backend::DeleteMark>) -> Result<WriteOutcome, ServiceError> {
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
    pub(super) fn reindex(
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
}


/// Puts and deletes for one column family, added to the write batch in key order: RocksDB's
/// memtable inserts a run of ascending keys far faster than scattered ones (the skip list
/// reuses its last position), which halves the cost of a bulk delete or insert. The sort is
/// stable, so two operations on one key keep their order.
#[derive(Default)]
pub(super) struct SortedOps(pub(super) Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl SortedOps {
    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.0.push((key, Some(value)));
    }

    pub(super) fn delete(&mut self, key: Vec<u8>) {
        self.0.push((key, None));
    }

    /// About the bytes these operations take in a write batch.
    pub(super) fn bytes(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 12).sum()
    }

    pub(super) fn apply(mut self, batch: &mut WriteBatch, cf: &Arc<BoundColumnFamily<'_>>) {
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in self.0 {
            match value {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
    }
}

pub(super) fn index_key(attr: &str, value: &Value, pk_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(attr.len() + 1 + 16 + pk_key.len());
    k.extend_from_slice(attr.as_bytes());
    k.push(0);
    keys::encode(value, &mut k);
    k.extend_from_slice(pk_key);
    k
}
