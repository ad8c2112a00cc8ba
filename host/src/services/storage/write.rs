//! Storage writes: validated batch inserts, updates, upserts and deletes with their index entries, in one RocksDB batch.

use super::*;
use super::batch_rep::{self, CfTag};

/// A write that would have had to wait (for another write's locks, or for RocksDB to catch up)
/// and was refused instead, nothing written: [`Commit::NoWait`].
#[derive(Debug, thiserror::Error)]
#[error("the write would wait")]
struct WouldStall;

fn would_stall() -> ServiceError {
    ServiceError::Internal(WouldStall.into())
}

/// How a write commits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Durable before it returns (unless `storage.writeAsync`).
    Synced,
    /// Written, its WAL sync left to the caller (durable.rs).
    Unsynced,
    /// `Unsynced`, for an async worker: nothing in it may block, so a lock another write holds
    /// (a bulk write holds most of a table's stripes while it commits), a slow write in RocksDB's
    /// queue (durable.rs) or a write stall ends it with [`WouldStall`] instead.
    NoWait,
}

impl Storage {
    /// Writes a batch atomically: all records are validated first (nothing is written when one
    /// is bad), then each is inserted, merged or skipped according to `mode`.
    ///
    /// A large batch (issue 18: a bulk insert hands 10,000 records at once, and its client waits
    /// idle meanwhile) is validated, looked up, merged, indexed and encoded by two threads, each
    /// on its half; only the WAL write and the memtable inserts (RocksDB's) stay on one. The
    /// outcome, the stored bytes and the audit entry are the same as one thread's: halves are
    /// joined in request order, and a batch naming a key twice is done by one thread (a later
    /// record must see the earlier one).
    pub fn write(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        self.write_with(db, table, mode, records, Commit::Synced)
    }

    /// [`Storage::write`] without its WAL sync: the caller passes the sequence number returned
    /// to [`Storage::synced`] and answers only after that (durable.rs: many writers share one
    /// sync there without a thread each waiting). `None` when writes are not synced at all
    /// (`storage.writeAsync`).
    pub fn write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<(WriteOutcome, Option<u64>), ServiceError> {
        let outcome = self.write_with(db, table, mode, records, Commit::Unsynced)?;
        Ok((outcome, self.sync_ticket()))
    }

    /// What a caller of an unsynced write awaits with [`Storage::synced`]: the sequence number
    /// of everything written so far, so whatever the write read (a key found, so skipped) is
    /// covered too; `None` when writes are not synced at all.
    fn sync_ticket(&self) -> Option<u64> {
        self.sync.then(|| self.db.latest_sequence_number())
    }

    /// [`Storage::write_unsynced`] for an async worker: when the write would wait (for locks
    /// another write holds, or a write stall while flushes catch up) it returns `Ok(None)` at
    /// once, nothing written, and the caller writes on a blocking thread instead.
    pub fn try_write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<Option<(WriteOutcome, Option<u64>)>, ServiceError> {
        match self.write_with(db, table, mode, records, Commit::NoWait) {
            Ok(outcome) => Ok(Some((outcome, self.sync_ticket()))),
            Err(ServiceError::Internal(e)) if e.is::<WouldStall>() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_with(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>, commit: Commit) -> Result<WriteOutcome, ServiceError> {
        if commit == Commit::NoWait && self.slow_writes_in_flight() {
            return Err(would_stall());
        }
        let locks = self.locks(db, table);
        let _schema = match commit {
            Commit::NoWait => locks.schema.try_read().ok_or_else(would_stall)?,
            _ => locks.schema.read(),
        };
        let meta_info = self.table_meta(db, table)?;
        let pk_name = meta_info.primary_key.as_str();
        let ways = ways(records.len());
        let mut prepared: Vec<Prepared> = Vec::with_capacity(records.len());
        let mut offset = 0;
        let parts: Vec<(usize, Vec<Value>)> = split(records, ways)
            .into_iter()
            .map(|part| {
                let at = offset;
                offset += part.len();
                (at, part)
            })
            .collect();
        for part in in_parallel(parts, |(at, part)| prepare(part, at, pk_name, mode)) {
            prepared.extend(part?);
        }

        let (rcf, icf) = self.cfs(db, table)?;
        let meta = self.meta().map_err(internal)?;
        let _stripes = match commit {
            Commit::NoWait => locks.try_lock_keys(prepared.iter().map(|p| &p.key)).ok_or_else(would_stall)?,
            _ => locks.lock_keys(prepared.iter().map(|p| &p.key)),
        };
        let repeats = {
            let mut seen = std::collections::HashSet::with_capacity(prepared.len());
            !prepared.iter().all(|p| seen.insert(p.key.as_slice()))
        };
        let now = now_ms();
        let operation = match mode {
            WriteMode::Insert => "insert",
            WriteMode::Update => "update",
            WriteMode::Upsert => "upsert",
        };
        let mut audit = self.audit_begin(db, table, operation);
        let ctx = ChunkContext { mode, now, pk_name, known: &meta_info.attributes, audited: audit.is_some(), repeats };
        let parts = if repeats { vec![prepared] } else { split(prepared, ways) };
        let chunks = in_parallel(parts, |part| self.write_chunk(&rcf, part, &ctx));
        let mut outcome = WriteOutcome::default();
        let (mut records, mut index) = (Vec::with_capacity(chunks.len()), Vec::with_capacity(chunks.len()));
        let mut new_attributes = BTreeSet::new();
        let mut added: i64 = 0;
        for chunk in chunks {
            let chunk = chunk?;
            if let Some(a) = audit.as_mut() {
                for (pk, (stored, old)) in chunk.written.iter().zip(chunk.audited) {
                    a.written_raw(pk, stored, old);
                }
            }
            outcome.written.extend(chunk.written);
            outcome.skipped.extend(chunk.skipped);
            records.push(chunk.records);
            index.push(chunk.index);
            new_attributes.extend(chunk.new_attributes);
            added += chunk.added;
        }
        if outcome.written.is_empty() {
            return Ok(outcome);
        }
        // Sized up front: growing a batch of megabytes copies it again and again.
        let audit_bytes = audit.as_ref().map_or(0, |a| a.record_bytes() * 2 + 4096);
        // The table's bookkeeping and the audit entry, after the records in the same batch.
        let tail = |batch: &mut WriteBatch| -> Result<(), ServiceError> {
            for attr in &new_attributes {
                batch.put_cf(&meta, format!("attr/{db}/{table}/{attr}"), b"");
            }
            if added != 0 {
                batch.merge_cf(&meta, format!("count/{db}/{table}"), added.to_le_bytes());
            }
            batch.merge_cf(&meta, format!("last/{db}/{table}"), (now as i64).to_le_bytes());
            match audit {
                Some(a) => a.commit(self, batch),
                None => Ok(()),
            }
        };
        // A write on an async worker (`NoWait`) is a few records, never split: the parts'
        // threads below would be joined on the worker.
        debug_assert!(commit != Commit::NoWait || ways == 1, "a NoWait write was split");
        let tags = if ways > 1 { CfTag::of(&rcf).zip(CfTag::of(&icf)) } else { None };
        let batch = match tags {
            // A large write: its parts' threads encode the batch (batch_rep.rs).
            Some((record_tag, index_tag)) => {
                let mut rest = WriteBatch::with_capacity_bytes(audit_bytes + 4096);
                tail(&mut rest)?;
                batch_rep::encode(records.into_iter().zip(index).collect(), record_tag, index_tag, &rest)
                    .ok_or_else(|| internal(anyhow::anyhow!("the write does not fit one RocksDB batch (or no memory could be mapped for it)")))?
            }
            None => {
                let ops_bytes: usize = records.iter().chain(&index).map(SortedOps::bytes).sum();
                let mut batch = WriteBatch::with_capacity_bytes(ops_bytes + audit_bytes + 4096);
                SortedOps::apply_runs(&records, &mut batch, &rcf);
                SortedOps::apply_runs(&index, &mut batch, &icf);
                drop((records, index));
                tail(&mut batch)?;
                batch
            }
        };
        self.commit_as(batch, commit)?;
        if !new_attributes.is_empty() {
            let _changing = self.changing();
            if let Some(t) = self.catalog.write().get_mut(db).and_then(|d| d.get_mut(table)) {
                t.attributes.extend(new_attributes);
            }
        }
        Ok(outcome)
    }

    /// Writes a finished batch as `commit` says.
    fn commit_as(&self, batch: WriteBatch, commit: Commit) -> Result<(), ServiceError> {
        match commit {
            Commit::Synced => self.commit(batch).map_err(internal),
            Commit::Unsynced => {
                let _changing = self.changing();
                let _slow = self.slow_write(batch.size_in_bytes() >= durable::LARGE_BATCH);
                self.db.write_opt(batch, &Self::unsynced_write_options()).map_err(internal)
            }
            Commit::NoWait => {
                // Checked again just before queueing: one may have started meanwhile.
                if self.slow_writes_in_flight() {
                    return Err(would_stall());
                }
                let _changing = self.changing();
                let mut options = Self::unsynced_write_options();
                options.set_no_slowdown(true);
                self.db.write_opt(batch, &options).map_err(|e| match e.kind() {
                    rocksdb::ErrorKind::Incomplete => would_stall(),
                    _ => internal(e),
                })
            }
        }
    }

    /// Looks up, merges, indexes and encodes one part of a write's records (in request order),
    /// its record and index operations sorted. With `ctx.repeats` a key written earlier in the
    /// part is what later records of the part see.
    fn write_chunk(&self, rcf: &Arc<BoundColumnFamily<'_>>, part: Vec<Prepared>, ctx: &ChunkContext<'_>) -> Result<Chunk, ServiceError> {
        let keys: Vec<&[u8]> = part.iter().map(|p| p.key.as_slice()).collect();
        let existing = self.get_many(rcf, &keys);
        drop(keys);
        let mut chunk = Chunk {
            records: SortedOps(Vec::with_capacity(part.len())),
            index: SortedOps(Vec::with_capacity(part.len() * 6)),
            ..Chunk::default()
        };
        let mut pending: std::collections::HashMap<Vec<u8>, Option<Map<String, Value>>> = Default::default();
        let stamp = Value::from(ctx.now);
        for (Prepared { pk, map, key }, old) in part.into_iter().zip(existing) {
            let old: Option<Map<String, Value>> = match pending.get(&key) {
                Some(p) => p.clone(),
                None => match old.map_err(internal)? {
                    Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(internal)?),
                    None => None,
                },
            };
            if old.is_none() && ctx.mode != WriteMode::Update && !ctx.repeats {
                // A new record (no later record of the part looks at it): stored as the
                // request's attributes and then the two times, encoded from the request's map
                // as it is. Inserting the times into the map first grew nearly every map (a
                // reallocation and a rehash each: ~5% of a bulk insert's CPU); the text is the
                // same (a map keeps insertion order, and `prepare` removed any times the
                // request sent).
                chunk.added += 1;
                note_new_attributes(&mut chunk.new_attributes, map.keys(), ctx.known);
                self.reindex(&mut chunk.index, ctx.pk_name, &key, None, Some(&map));
                chunk.index.put(index_key(CREATED, &stamp, &key), Vec::new());
                chunk.index.put(index_key(UPDATED, &stamp, &key), Vec::new());
                let stored = stored_text(&Stamped { map: &map, now: ctx.now }, ctx.audited.then_some(&mut chunk.audited), None)?;
                chunk.records.put(key, stored);
                chunk.written.push(pk);
                continue;
            }
            let new = match (ctx.mode, &old) {
                (WriteMode::Insert, Some(_)) | (WriteMode::Update, None) => {
                    chunk.skipped.push(pk);
                    continue;
                }
                (_, None) => {
                    let mut rec = map;
                    rec.insert(CREATED.into(), ctx.now.into());
                    rec.insert(UPDATED.into(), ctx.now.into());
                    chunk.added += 1;
                    rec
                }
                (_, Some(old)) => {
                    let mut rec = old.clone();
                    for (k, v) in map {
                        rec.insert(k, v);
                    }
                    // Strictly after the version replaced (which may be a replicated one from
                    // the same millisecond), so last-writer-wins agrees everywhere (cluster).
                    let after = old.get(UPDATED).and_then(Value::as_u64).map_or(ctx.now, |t| ctx.now.max(t + 1));
                    rec.insert(UPDATED.into(), after.into());
                    rec
                }
            };
            note_new_attributes(&mut chunk.new_attributes, new.keys().filter(|a| *a != CREATED && *a != UPDATED), ctx.known);
            self.reindex(&mut chunk.index, ctx.pk_name, &key, old.as_ref(), Some(&new));
            let stored = stored_text(&new, ctx.audited.then_some(&mut chunk.audited), old)?;
            if ctx.repeats {
                chunk.records.put(key.clone(), stored);
                pending.insert(key, Some(new));
            } else {
                chunk.records.put(key, stored);
            }
            chunk.written.push(pk);
        }
        if ctx.repeats {
            chunk.records.sort();
            chunk.index.sort();
        } else {
            // No key twice in this part (every record's own primary key, and an index entry
            // names its record's key): an unstable sort orders them the same, faster.
            chunk.records.sort_distinct();
            chunk.index.sort_distinct();
        }
        Ok(chunk)
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
        let found = self.get_many(&rcf, &keys);
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
            self.commit(batch).map_err(internal)?;
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


/// Puts and deletes for one column family, added to the write batch in key order (a large
/// write's two parts as two ascending runs, `apply_runs`): RocksDB's
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
        self.sort();
        for (key, value) in self.0 {
            put(batch, cf, &key, value.as_deref());
        }
    }

    /// Sorts by key (stable).
    pub(super) fn sort(&mut self) {
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// Sorts by key like [`SortedOps::sort`], faster, for the operations of records with
    /// distinct primary keys: there a key comes twice only as one record's index entry deleted
    /// and put again (two values with one encoding, `1` and `1.0`), the delete first (as
    /// `reindex` adds them), which is the order this sort keeps too.
    pub(super) fn sort_distinct(&mut self) {
        self.0.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.is_some().cmp(&b.1.is_some())));
    }

    /// Adds already sorted parts to the batch one after another, each in its key order. They
    /// are not merged into one order: the memtable's skip list starts each insert from where
    /// the last one went, so a second ascending run (whose keys fall between the first's) costs
    /// about what one merged run does. Parts come from records with distinct primary keys (a
    /// batch naming a key twice is one part), so no key is in two parts and their order does not
    /// matter: a record key is its primary key, and an index key ends with it (`index_key`,
    /// after a prefix-free value encoding). The batch copies what it is given, so the parts
    /// stay the caller's to drop.
    pub(super) fn apply_runs(parts: &[SortedOps], batch: &mut WriteBatch, cf: &Arc<BoundColumnFamily<'_>>) {
        for (key, value) in parts.iter().flat_map(|p| &p.0) {
            put(batch, cf, key, value.as_deref());
        }
    }
}

fn put(batch: &mut WriteBatch, cf: &Arc<BoundColumnFamily<'_>>, key: &[u8], value: Option<&[u8]>) {
    match value {
        Some(v) => batch.put_cf(cf, key, v),
        None => batch.delete_cf(cf, key),
    }
}

/// Batches at least this large are written by two threads (below it a thread costs more than
/// it saves).
const PARALLEL_MIN: usize = 1_000;

/// How many threads write a batch of `n` records.
fn ways(n: usize) -> usize {
    if n < PARALLEL_MIN {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |p| p.get().min(2))
}

/// `items` in `ways` contiguous parts of about equal length, in order.
fn split<T>(mut items: Vec<T>, ways: usize) -> Vec<Vec<T>> {
    if ways <= 1 || items.len() < 2 {
        return vec![items];
    }
    let mut parts = Vec::with_capacity(ways);
    for n in (1..ways).rev() {
        let at = items.len() * n / ways;
        parts.push(items.split_off(at));
    }
    parts.push(items);
    parts.reverse();
    parts
}

/// `f` of each part, in order: the first on this thread, the others on their own threads.
pub(super) fn in_parallel<T: Send, R: Send>(parts: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if parts.len() <= 1 {
        return parts.into_iter().map(f).collect();
    }
    std::thread::scope(|s| {
        let mut parts = parts.into_iter();
        let first = parts.next();
        let f = &f;
        let others: Vec<_> = parts.map(|p| s.spawn(move || f(p))).collect();
        let mut out: Vec<R> = first.into_iter().map(f).collect();
        for handle in others {
            out.push(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        out
    })
}

/// An array text shorter than this is parsed in one pass on one thread: it holds few records,
/// and splitting it first would scan it twice for nothing.
const SPLIT_BYTES: usize = 64 << 10;

/// Records as a guest sends them: one JSON text each, or one JSON array text of them all.
pub enum RecordTexts {
    Each(Vec<String>),
    Array(String),
}

/// Records as the guest sends them, parsed; a large batch's by two threads, each on its half in
/// order (a 10,000-record bulk insert is a megabyte of JSON). Text that is not JSON (or, for an
/// array text, not an array) is the caller's bad request.
pub fn parse_records(texts: RecordTexts) -> Result<Vec<Value>, ServiceError> {
    match texts {
        RecordTexts::Each(texts) => parse_parts(texts, |t| t.as_str()),
        RecordTexts::Array(text) => {
            let not_an_array = |_| ServiceError::BadRequest("the records are not a JSON array".into());
            // A small array (a single insert's) is parsed in one pass on this thread.
            if text.len() < SPLIT_BYTES {
                return serde_json::from_str(&text).map_err(not_an_array);
            }
            // A large one is split into the elements' texts first (a scan, no copies), so the
            // halves can be parsed apart.
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text).map_err(not_an_array)?;
            parse_parts(items, |r| r.get())
        }
    }
}

fn parse_parts<T: Send>(texts: Vec<T>, text: impl Fn(&T) -> &str + Sync) -> Result<Vec<Value>, ServiceError> {
    let parse = |part: Vec<T>| -> Result<Vec<Value>, ServiceError> {
        part.iter()
            .map(|t| serde_json::from_str(text(t)).map_err(|_| ServiceError::BadRequest("a record is not valid JSON".into())))
            .collect()
    };
    let ways = ways(texts.len());
    let mut records = Vec::with_capacity(texts.len());
    for part in in_parallel(split(texts, ways), parse) {
        records.extend(part?);
    }
    Ok(records)
}

/// A validated record: its primary key, its attributes, and its encoded key.
struct Prepared {
    pk: Value,
    map: Map<String, Value>,
    key: Vec<u8>,
}

/// Validates records (`first` is the first one's position in the request, for messages): an
/// object, attribute names, a storable primary key (a missing one is made, except to update).
fn prepare(records: Vec<Value>, first: usize, pk_name: &str, mode: WriteMode) -> Result<Vec<Prepared>, ServiceError> {
    let mut prepared = Vec::with_capacity(records.len());
    for (n, record) in records.into_iter().enumerate() {
        let n = first + n;
        let Value::Object(mut map) = record else {
            return Err(ServiceError::BadRequest(format!("record {n} is not an object")));
        };
        map.remove(CREATED);
        map.remove(UPDATED);
        for key in map.keys() {
            if !valid_name(key) {
                return Err(ServiceError::BadRequest(format!("attribute names must match [A-Za-z0-9_]+, got '{key}'")));
            }
        }
        let pk = match map.get(pk_name) {
            Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
            Some(Value::Number(n)) if keys::exact(n) => Value::Number(n.clone()),
            Some(Value::Number(n)) => {
                return Err(ServiceError::BadRequest(format!(
                    "primary key '{pk_name}' value {n} cannot be stored exactly: integer keys must lie within ±2^53 (send larger ones as strings)"
                )))
            }
            None | Some(Value::Null) if mode != WriteMode::Update => {
                let id = Value::String(uuid::Uuid::new_v4().to_string());
                map.insert(pk_name.to_string(), id.clone());
                id
            }
            None | Some(Value::Null) => {
                return Err(ServiceError::BadRequest(format!("record {n} is missing its primary key '{pk_name}'")))
            }
            Some(other) => {
                return Err(ServiceError::BadRequest(format!("primary key '{pk_name}' must be a string or a number, got {other}")))
            }
        };
        let key = keys::encoded(&pk);
        prepared.push(Prepared { pk, map, key });
    }
    Ok(prepared)
}

/// What every part of one write shares.
struct ChunkContext<'a> {
    mode: WriteMode,
    now: u64,
    pk_name: &'a str,
    /// The table's attributes before this write.
    known: &'a BTreeSet<String>,
    /// Whether the write is audited (each written record's text and original are kept).
    audited: bool,
    /// Whether some key is named twice (then there is one part, and it tracks earlier records).
    repeats: bool,
}

/// One part's share of a write.
#[derive(Default)]
struct Chunk {
    records: SortedOps,
    index: SortedOps,
    written: Vec<Value>,
    skipped: Vec<Value>,
    /// Per written record (when audited): its stored text and the record it replaced.
    audited: Vec<(Box<serde_json::value::RawValue>, Option<Map<String, Value>>)>,
    new_attributes: BTreeSet<String>,
    added: i64,
}

/// Adds the attributes among `keys` that the table does not know yet (and the part has not
/// noted already) to `new`.
fn note_new_attributes<'a>(new: &mut BTreeSet<String>, keys: impl Iterator<Item = &'a String>, known: &BTreeSet<String>) {
    for attr in keys {
        if !known.contains(attr) && !new.contains(attr) {
            new.insert(attr.clone());
        }
    }
}

/// A new record as it is stored: its attributes, then its creation and update times (`now`).
struct Stamped<'a> {
    map: &'a Map<String, Value>,
    now: u64,
}

impl serde::Serialize for Stamped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = s.serialize_map(Some(self.map.len() + 2))?;
        for (k, v) in self.map {
            out.serialize_entry(k, v)?;
        }
        out.serialize_entry(CREATED, &self.now)?;
        out.serialize_entry(UPDATED, &self.now)?;
        out.end()
    }
}

/// A written record's stored text. When the write is audited the entry keeps the same text
/// (encoded once, never re-parsed) with the record it replaced.
fn stored_text(
    record: &impl serde::Serialize,
    audited: Option<&mut Vec<(Box<serde_json::value::RawValue>, Option<Map<String, Value>>)>>,
    old: Option<Map<String, Value>>,
) -> Result<Vec<u8>, ServiceError> {
    match audited {
        Some(audited) => {
            let raw = serde_json::value::to_raw_value(record).map_err(internal)?;
            let bytes = raw.get().as_bytes().to_vec();
            audited.push((raw, old));
            Ok(bytes)
        }
        None => serde_json::to_vec(record).map_err(internal),
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

#[cfg(test)]
mod tests {
    use super::super::conformance::temp_table as open;
    use super::super::{Storage, WriteMode, WriteOutcome};
    use rocksdb::IteratorMode;
    use serde_json::{json, Map, Value};

    /// The table's records (timestamps left out: the two stores write at different times) and
    /// index keys (timestamp entries left out), and its record count.
    fn contents(s: &Storage) -> (Vec<(Vec<u8>, Map<String, Value>)>, Vec<Vec<u8>>, u64) {
        let (rcf, icf) = s.cfs("p", "t").expect("cfs");
        let records = s
            .db
            .iterator_cf(&rcf, IteratorMode::Start)
            .map(|i| {
                let (k, v) = i.expect("record");
                let mut r: Map<String, Value> = serde_json::from_slice(&v).expect("json");
                assert!(r.remove("__createdtime__").is_some() && r.remove("__updatedtime__").is_some());
                (k.to_vec(), r)
            })
            .collect();
        let index = s
            .db
            .iterator_cf(&icf, IteratorMode::Start)
            .map(|i| i.expect("index").0.to_vec())
            .filter(|k| !k.starts_with(b"__createdtime__\0") && !k.starts_with(b"__updatedtime__\0"))
            .collect();
        (records, index, s.describe_table("p", "t").expect("describe").record_count)
    }

    /// Each audit entry's keys and records (timestamps left out).
    fn audited(s: &Storage) -> Vec<(String, Vec<Value>, Vec<Value>, usize)> {
        let log = s.read_audit_log("p", "t", super::super::audit::SearchType::Timestamp, &[]).expect("audit");
        log.as_array()
            .expect("list")
            .iter()
            .map(|e| {
                let records = e["records"]
                    .as_array()
                    .expect("records")
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        if let Some(o) = r.as_object_mut() {
                            o.remove("__createdtime__");
                            o.remove("__updatedtime__");
                        }
                        r
                    })
                    .collect();
                let originals = e.get("original_records").and_then(Value::as_array).map_or(0, Vec::len);
                (e["operation"].as_str().unwrap_or("").to_string(), e["hash_values"].as_array().expect("keys").clone(), records, originals)
            })
            .collect()
    }

    /// `sort_distinct` (unstable) orders operations as the stable `sort` does when no key is
    /// named twice but for a delete and a put of one index entry, which stay delete first.
    #[test]
    fn sort_distinct_matches_the_stable_sort() {
        use super::SortedOps;
        let mut ops = SortedOps::default();
        for i in (0..3000u32).rev() {
            let key = format!("{}-{}", i % 7, i * 7919 % 3001).into_bytes();
            if i % 3 == 0 {
                ops.delete(key);
            } else {
                ops.put(key, vec![i as u8]);
            }
        }
        // One entry deleted and put again (two values of one key encoding), the delete first.
        ops.delete(b"same".to_vec());
        ops.put(b"same".to_vec(), b"new".to_vec());
        let mut stable = SortedOps(ops.0.clone());
        stable.sort();
        ops.sort_distinct();
        assert!(ops.0 == stable.0);
    }

    /// A record whose value is replaced by one with the same key encoding (`1` by `1.0`) keeps
    /// its index entry: the entry's delete and put in one write are applied in that order.
    #[test]
    fn an_index_entry_replaced_by_an_equal_encoding_stays() {
        let (_d, s) = open();
        s.write("p", "t", WriteMode::Insert, vec![json!({"id": 1, "a": 1}), json!({"id": 2, "a": 2})]).expect("insert");
        s.write("p", "t", WriteMode::Upsert, vec![json!({"id": 1, "a": 1.0}), json!({"id": 2, "a": 2})]).expect("upsert");
        let (_, index, _) = contents(&s);
        assert_eq!(index.iter().filter(|k| k.starts_with(b"a\0")).count(), 2, "{index:?}");
    }

    /// A new record is stored as its attributes in request order and then its two times, and
    /// its audit entry holds the same text, whether the write names a key twice (records kept
    /// as maps for later records to see) or not (encoded straight from the request), split
    /// between two threads or not; times the request sends are replaced.
    #[test]
    fn new_records_are_stored_as_sent_then_stamped() {
        let (_d, s) = open();
        let many: Vec<Value> = (0..1500).map(|i| json!({"id": i, "z": i % 3, "a": "x", "__createdtime__": 5})).collect();
        s.write("p", "t", WriteMode::Insert, many).expect("insert many");
        s.write("p", "t", WriteMode::Upsert, vec![json!({"id": "r", "b": [1]}), json!({"id": "r", "c": true}), json!({"id": "q"})]).expect("repeats");
        let (rcf, icf) = s.cfs("p", "t").expect("cfs");
        let (mut seen, mut seventh) = (0, String::new());
        for item in s.db.iterator_cf(&rcf, IteratorMode::Start) {
            let (_, v) = item.expect("record");
            let text = std::str::from_utf8(&v).expect("utf-8");
            let r: Map<String, Value> = serde_json::from_slice(&v).expect("json");
            let t = r["__createdtime__"].as_u64().expect("created");
            assert!(t > 5, "{text}");
            if r["id"] == json!(7) {
                seventh = text.to_string();
            }
            let stamp = format!("\"__createdtime__\":{t},\"__updatedtime__\":{t}}}");
            match &r["id"] {
                // Merged with the write's second record for it, which came later.
                Value::String(id) if id == "r" => {
                    assert_eq!(r.keys().collect::<Vec<_>>(), ["id", "b", "__createdtime__", "__updatedtime__", "c"], "{text}")
                }
                Value::String(id) => assert_eq!(text, format!("{{\"id\":\"{id}\",{stamp}")),
                id => assert_eq!(text, format!("{{\"id\":{id},\"z\":{},\"a\":\"x\",{stamp}", id.as_u64().expect("id") % 3)),
            }
            seen += 1;
        }
        assert_eq!(seen, 1502);
        let times = s.db.iterator_cf(&icf, IteratorMode::Start).filter(|i| i.as_ref().expect("index").0.starts_with(b"__createdtime__\0")).count();
        assert_eq!(times, 1502, "one creation-time entry per record");
        let log = s.read_audit_log("p", "t", super::super::audit::SearchType::Timestamp, &[]).expect("audit");
        let first = &log[0]["records"];
        assert_eq!(first.as_array().map(Vec::len), Some(1500));
        assert_eq!(serde_json::to_string(&first[7]).expect("text"), seventh, "the audit entry holds the stored text");
    }

    /// A large batch's records are parsed by parts into the same values, in order; text that
    /// is not JSON (here in the second half) is a bad request.
    #[test]
    fn records_parse_in_parts_like_one() {
        let texts: Vec<String> = (0..2500).map(|i| format!("{{\"id\": {i}, \"n\": \"x{i}\"}}")).collect();
        let parsed = super::parse_records(super::RecordTexts::Each(texts.clone())).expect("parse");
        let array = format!("[{}]", texts.join(","));
        assert_eq!(super::parse_records(super::RecordTexts::Array(array)).expect("array"), parsed);
        let one: Vec<Value> = texts.iter().map(|t| serde_json::from_str(t).expect("json")).collect();
        assert_eq!(parsed, one);
        let mut bad = texts;
        bad[2222] = "{\"id\": ".into();
        let err = super::parse_records(super::RecordTexts::Each(bad)).expect_err("not JSON");
        assert!(matches!(err, crate::services::ServiceError::BadRequest(ref m) if m == "a record is not valid JSON"), "{err}");
        for not_an_array in ["{\"id\": 1}", "[{\"id\": 1}, {\"id\": ]", ""] {
            let err = super::parse_records(super::RecordTexts::Array(not_an_array.into())).expect_err("not an array");
            assert!(matches!(err, crate::services::ServiceError::BadRequest(ref m) if m == "the records are not a JSON array"), "{err}");
        }
        // Both sides of SPLIT_BYTES (one pass, or split and parsed by two threads) give the
        // same records, and refuse the same bad arrays the same way.
        let many: Vec<String> = (0..8000).map(|i| format!("{{\"id\": {i}, \"n\": \"x{i}\"}}")).collect();
        for n in [1, 2500, 8000] {
            let array = format!("[{}]", many[..n].join(","));
            assert_eq!(array.len() < super::SPLIT_BYTES, n < 8000, "{n} records: {} bytes", array.len());
            let want: Vec<Value> = many[..n].iter().map(|t| serde_json::from_str(t).expect("json")).collect();
            assert_eq!(super::parse_records(super::RecordTexts::Array(array.clone())).expect("array"), want, "{n}");
            let broken = format!("{}, {{\"id\": ]", &array[..array.len() - 1]);
            let err = super::parse_records(super::RecordTexts::Array(broken)).expect_err("broken");
            assert!(matches!(err, crate::services::ServiceError::BadRequest(ref m) if m == "the records are not a JSON array"), "{n}: {err}");
        }
    }

    /// A batch large enough for two threads leaves the same records, index, count, outcome and
    /// audit trail as the same records written by one thread (batches below `PARALLEL_MIN`),
    /// for inserts over existing keys, upserts and updates merging into stored records, new
    /// attributes, records without a key, and a batch naming a key twice (done by one thread,
    /// the later record seeing the earlier). A bad record in the second half fails the whole
    /// batch with its own position.
    #[test]
    fn parallel_writes_match_one_thread() {
        assert!(super::ways(3000) >= 1 && super::ways(10) == 1);
        let (_a, big) = open();
        let (_b, small) = open();
        let record = |i: u64, round: u64| {
            let mut r = json!({"id": i, "name": format!("dog-{i}"), "group": (i + round) % 7, "round": round});
            if i % 5 == 0 {
                r[format!("extra{round}")] = json!([i]);
            }
            if i % 13 == 0 {
                r["flag"] = json!(i % 2 == 0);
            }
            r
        };
        let rounds: Vec<(WriteMode, Vec<Value>)> = vec![
            (WriteMode::Insert, (0..2500).map(|i| record(i, 0)).collect()),
            // Half already there (skipped), half new.
            (WriteMode::Insert, (1250..3750).map(|i| record(i, 1)).collect()),
            // Merges into stored records, adds some.
            (WriteMode::Upsert, (3000..5000).rev().map(|i| record(i, 2)).collect()),
            // Updates, some missing (skipped).
            (WriteMode::Update, (4000..6000).map(|i| json!({"id": i, "group": "g", "round": 3})).collect()),
            // A key twice: the later record sees the earlier one.
            (WriteMode::Upsert, (0..1500).map(|i| record(i % 1200, 4 + i / 1200)).collect()),
        ];
        for (n, (mode, records)) in rounds.into_iter().enumerate() {
            let one = big.write("p", "t", mode, records.clone()).expect("write");
            let mut by_part = WriteOutcome::default();
            for part in records.chunks(super::PARALLEL_MIN - 1) {
                let o = small.write("p", "t", mode, part.to_vec()).expect("write");
                by_part.written.extend(o.written);
                by_part.skipped.extend(o.skipped);
            }
            assert_eq!(one, by_part, "round {n}");
            let (a, b) = (contents(&big), contents(&small));
            assert!(a == b, "round {n}: {} records, {} index entries, count {} against {}, {}, {}", a.0.len(), a.1.len(), a.2, b.0.len(), b.1.len(), b.2);
        }
        // The same audit entries, but for how the writes were cut into batches.
        let flat = |s: &Storage| {
            let (mut keys, mut records, mut originals) = (Vec::new(), Vec::new(), 0);
            for (op, k, r, o) in audited(s) {
                keys.extend(k.into_iter().map(|k| (op.clone(), k)));
                records.extend(r);
                originals += o;
            }
            (keys, records, originals)
        };
        let (fa, fb) = (flat(&big), flat(&small));
        assert!(!fa.0.is_empty() && fa.2 > 0);
        assert!(fa == fb, "audit trails differ");
        // Records without a key get one each (distinct), in both halves.
        let keyless: Vec<Value> = (0..2000).map(|i| json!({"name": format!("nokey-{i}")})).collect();
        let out = big.write("p", "t", WriteMode::Insert, keyless).expect("keyless");
        let distinct: std::collections::BTreeSet<String> = out.written.iter().map(Value::to_string).collect();
        assert_eq!((out.written.len(), distinct.len()), (2000, 2000));
        assert_eq!(big.get("p", "t", &out.written[1999..], &[]).expect("get")[0]["name"], "nokey-1999");
        // A bad record late in a large batch: nothing written, its position named.
        let before = contents(&big);
        let mut bad: Vec<Value> = (10_000..12_000).map(|i| record(i, 9)).collect();
        bad[1777] = json!({"id": 1, "bad-name": 1});
        let err = big.write("p", "t", WriteMode::Insert, bad.clone()).expect_err("bad attribute");
        assert!(err.to_string().contains("bad-name"), "{err}");
        bad[1777] = json!(5);
        let err = big.write("p", "t", WriteMode::Insert, bad).expect_err("not an object");
        assert!(err.to_string().contains("record 1777"), "{err}");
        assert!(contents(&big) == before);
    }
}
