//! The audit log of every user table (HarperDB's `logging.auditLog`, on by default): each
//! insert, update, upsert and delete records the operation, the user, a timestamp, the primary
//! keys and the records after and before, written into the SAME RocksDB `WriteBatch` as the
//! change, so a crash never leaves a change without its entry or an entry without its change.
//!
//! Layout: column family `audit`, key `<database>/<table>/` + the entry's time in microseconds
//! (big-endian u64, unique and increasing within the process) -> the entry as JSON, already in
//! HarperDB's `read_audit_log` shape. Names are `[A-Za-z0-9_]+`, so one table's entries are
//! exactly the key range [`<db>/<table>/`, `<db>/<table>0`). The bytes of each table's entries
//! are counted in `meta` under `auditsize/<db>/<table>` (the counter merge operator adds), for
//! `describe_table`'s `db_audit_size`.
//!
//! The caller's name reaches storage through [`as_user`], which the storage capability wraps
//! around each write on its blocking thread: the storage API (and its backend trait) carries
//! no caller, and host-internal writes have none. The `system` database is not audited (jobs
//! and logins would flood it).

use super::{internal, not_found_table, Storage, SYSTEM_DATABASE};
use crate::services::ServiceError;
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, ReadOptions, WriteBatch};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The column family holding every table's entries.
pub const CF: &str = "audit";
/// HarperDB's `logging.auditRetention` default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3 * 86_400);
/// Largest `read_audit_log` answer: past it the caller is asked to narrow the time range
/// (the answer travels into a guest whose memory is bounded).
pub const MAX_READ_BYTES: usize = 32 << 20;

/// Whether tables are audited and for how long entries are kept; set from the configuration
/// at start and on `restart`.
pub struct AuditSettings {
    enabled: AtomicBool,
    retention_ms: AtomicU64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { enabled: AtomicBool::new(true), retention_ms: AtomicU64::new(DEFAULT_RETENTION.as_millis() as u64) }
    }
}

impl AuditSettings {
    pub fn set(&self, enabled: bool, retention: Duration) {
        self.enabled.store(enabled, Ordering::Relaxed);
        self.retention_ms.store(retention.as_millis().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms.load(Ordering::Relaxed))
    }
}

thread_local! {
    static USER: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `user` as the name audit entries written by it record.
pub fn as_user<T>(user: &str, f: impl FnOnce() -> T) -> T {
    let previous = USER.with(|u| u.replace(Some(user.to_string())));
    // Restored even if `f` panics, so a pooled blocking thread never carries a stale name.
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            USER.with(|u| *u.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

fn current_user() -> String {
    USER.with(|u| u.borrow().clone()).unwrap_or_default()
}

/// Microseconds since the epoch, strictly increasing within the process (the entry's key).
fn stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

fn prefix(db: &str, table: &str) -> String {
    format!("{db}/{table}/")
}

/// The first key after every entry of the table (`/` + 1 is `0`).
fn end(db: &str, table: &str) -> String {
    format!("{db}/{table}0")
}

fn key(db: &str, table: &str, micros: u64) -> Vec<u8> {
    let mut k = prefix(db, table).into_bytes();
    k.extend_from_slice(&micros.to_be_bytes());
    k
}

fn size_key(db: &str, table: &str) -> String {
    format!("auditsize/{db}/{table}")
}

/// Epoch milliseconds (HarperDB's timestamps, fractions allowed) to the key's microseconds.
fn micros(ms: f64) -> u64 {
    if ms.is_nan() || ms <= 0.0 {
        0
    } else {
        // Rounded: a timestamp this log answered (µs / 1000 as f64) maps back to its own key.
        (ms * 1000.0).round().min(u64::MAX as f64) as u64
    }
}

pub(super) fn descriptor() -> ColumnFamilyDescriptor {
    ColumnFamilyDescriptor::new(CF, super::tuning::audit_options())
}

/// One write's entry, filled record by record, committed into the write's batch.
pub(super) struct Pending {
    db: String,
    table: String,
    operation: &'static str,
    user: String,
    hash_values: Vec<Value>,
    /// Records after, as their stored JSON text (copied, never parsed or re-encoded).
    records: Vec<Box<serde_json::value::RawValue>>,
    originals: Vec<Value>,
    /// Records before, as their stored JSON text (bulk deletes: never parsed into values, nor
    /// checked again: they are this store's own compact JSON).
    raw_originals: Vec<Box<[u8]>>,
}

impl Pending {
    /// A record written: `record` the JSON text stored now (HarperDB 4.7 shows the whole record
    /// after the change; the write encoded it once, it is never re-parsed), `original` the
    /// stored record it replaced.
    pub(super) fn written_raw(&mut self, pk: &Value, record: Box<serde_json::value::RawValue>, original: Option<Map<String, Value>>) {
        self.records.push(record);
        self.hash_values.push(pk.clone());
        if let Some(o) = original {
            self.originals.push(Value::Object(o));
        }
    }

    /// Bytes of the records this entry holds so far (to size the write batch up front).
    pub(super) fn record_bytes(&self) -> usize {
        self.records.iter().map(|r| r.get().len() + 1).sum()
    }

    /// A record deleted: HarperDB 4.7 shows `null` as its record after.
    pub(super) fn deleted(&mut self, pk: &Value, original: Map<String, Value>) {
        self.hash_values.push(pk.clone());
        self.records.push(null());
        self.originals.push(Value::Object(original));
    }

    /// A record deleted, given as its stored bytes (compact JSON, copied into the entry as it
    /// is): the same entry as [`Pending::deleted`] without parsing and re-encoding the record.
    pub(super) fn deleted_raw(&mut self, pk: &Value, original: Box<[u8]>) {
        self.hash_values.push(pk.clone());
        self.records.push(null());
        self.raw_originals.push(original);
    }

    /// Puts the entry (and its size) into `batch`, which the caller then commits with the change.
    pub(super) fn commit(self, storage: &Storage, batch: &mut WriteBatch) -> Result<(), ServiceError> {
        if self.hash_values.is_empty() {
            return Ok(());
        }
        let cf = storage.db.cf_handle(CF).ok_or_else(|| internal(anyhow::anyhow!("the audit column family is missing")))?;
        let meta = storage.meta().map_err(internal)?;
        let at = stamp();
        let entry = Entry {
            operation: self.operation,
            user_name: &self.user,
            timestamp: Value::from(at as f64 / 1000.0),
            hash_values: &self.hash_values,
            records: &self.records,
            // HarperDB's documented `original_records` (4.7 leaves them out): the records before.
            original_records: (!self.originals.is_empty() || !self.raw_originals.is_empty()).then_some(&self.originals),
        };
        let size: usize = self.records.iter().map(|r| r.get().len() + 1).sum();
        let mut bytes = Vec::with_capacity(size + 64 * self.hash_values.len() + 256);
        serde_json::to_writer(&mut bytes, &entry).map_err(internal)?;
        if !self.raw_originals.is_empty() {
            // `original_records` is the entry's last key: its array's closing `]}` is replaced
            // by the raw records (after any parsed ones).
            bytes.truncate(bytes.len() - 2);
            for (n, raw) in self.raw_originals.iter().enumerate() {
                if n > 0 || bytes.last() != Some(&b'[') {
                    bytes.push(b',');
                }
                bytes.extend_from_slice(raw);
            }
            bytes.extend_from_slice(b"]}");
        }
        batch.merge_cf(&meta, size_key(&self.db, &self.table), (bytes.len() as i64).to_le_bytes());
        batch.put_cf(&cf, key(&self.db, &self.table, at), bytes);
        Ok(())
    }
}

/// A stored entry, its keys in this order (an entry's text is what `read_audit_log` answers).
#[derive(serde::Serialize)]
struct Entry<'a> {
    operation: &'a str,
    user_name: &'a str,
    timestamp: Value,
    hash_values: &'a [Value],
    records: &'a [Box<serde_json::value::RawValue>],
    #[serde(skip_serializing_if = "Option::is_none")]
    original_records: Option<&'a Vec<Value>>,
}

/// A deleted record's "after": `null`.
fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::NULL.to_owned()
}

/// How `read_audit_log` selects entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchType {
    Timestamp,
    Username,
    HashValue,
}

impl SearchType {
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        match text {
            "" | "timestamp" => Ok(SearchType::Timestamp),
            "username" => Ok(SearchType::Username),
            "hash_value" => Ok(SearchType::HashValue),
            other => Err(ServiceError::BadRequest(format!("Invalid searchType '{other}'"))),
        }
    }
}

impl Storage {
    /// The settings the write path and the retention sweep read.
    pub fn audit_settings(&self) -> &AuditSettings {
        &self.audit
    }

    /// Starts the entry of one write to `db.table`, or `None` when it is not audited.
    pub(super) fn audit_begin(&self, db: &str, table: &str, operation: &'static str) -> Option<Pending> {
        if db == SYSTEM_DATABASE || !self.audit.enabled() {
            return None;
        }
        Some(Pending {
            db: db.to_string(),
            table: table.to_string(),
            operation,
            user: current_user(),
            hash_values: Vec::new(),
            records: Vec::new(),
            originals: Vec::new(),
            raw_originals: Vec::new(),
        })
    }

    /// Deletes (into `batch`) every entry of a table and its size: with a drop, and with a
    /// create (leftovers of a drop interrupted before its catalog change).
    pub(super) fn audit_forget(&self, batch: &mut WriteBatch, db: &str, table: &str) -> Result<(), ServiceError> {
        let cf = self.db.cf_handle(CF).ok_or_else(|| internal(anyhow::anyhow!("the audit column family is missing")))?;
        let meta = self.meta().map_err(internal)?;
        batch.delete_range_cf(&cf, prefix(db, table), end(db, table));
        batch.delete_cf(&meta, size_key(db, table));
        Ok(())
    }

    /// Whether `db.table` is audited, and its entries' approximate bytes.
    pub fn audit_info(&self, db: &str, table: &str) -> Result<(bool, u64), ServiceError> {
        let meta = self.meta().map_err(internal)?;
        let size = self
            .db
            .get_cf(&meta, size_key(db, table))
            .map_err(internal)?
            .and_then(|b| b.as_slice().try_into().ok().map(i64::from_le_bytes))
            .unwrap_or(0)
            .max(0) as u64;
        Ok((db != SYSTEM_DATABASE && self.audit.enabled(), size))
    }

    /// Calls `f` with every entry of `db.table` whose time lies in [`from_ms`, `to_ms`], oldest
    /// first, until it returns false.
    fn audit_scan(
        &self,
        db: &str,
        table: &str,
        from_ms: Option<f64>,
        to_ms: Option<f64>,
        mut f: impl FnMut(u64, &[u8]) -> Result<bool, ServiceError>,
    ) -> Result<(), ServiceError> {
        let cf = self.db.cf_handle(CF).ok_or_else(|| internal(anyhow::anyhow!("the audit column family is missing")))?;
        let start = key(db, table, from_ms.map(micros).unwrap_or(0));
        let upper = match to_ms {
            Some(to) => key(db, table, micros(to).saturating_add(1)),
            None => end(db, table).into_bytes(),
        };
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(upper);
        let plen = prefix(db, table).len();
        for item in self.db.iterator_cf_opt(&cf, opts, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item.map_err(internal)?;
            let at = k.get(plen..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
            if !f(at, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// HarperDB's `read_audit_log`: by time (`[]` all, `[from]` since, `[from, to]`), as a list
    /// oldest first; by user name or by primary key, as an object keyed by the value searched.
    pub fn read_audit_log(&self, db: &str, table: &str, search: SearchType, values: &[Value]) -> Result<Value, ServiceError> {
        let primary_key = self.table_meta(db, table)?.primary_key;
        let mut budget = MAX_READ_BYTES;
        let mut take = |bytes: &[u8]| -> Result<Map<String, Value>, ServiceError> {
            budget = budget.checked_sub(bytes.len()).ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "the audit log of '{db}.{table}' holds more than {} MiB for this search: narrow it with \"search_type\": \"timestamp\" and \"search_values\": [from, to]",
                    MAX_READ_BYTES >> 20
                ))
            })?;
            serde_json::from_slice(bytes).map_err(internal)
        };
        match search {
            SearchType::Timestamp => {
                let number = |v: &Value| {
                    v.as_f64().ok_or_else(|| ServiceError::BadRequest("'search_values' must be timestamps (epoch milliseconds) for search_type 'timestamp'".into()))
                };
                let (from, to) = match values {
                    [] => (None, None),
                    [from] => (Some(number(from)?), None),
                    [from, to] => (Some(number(from)?), Some(number(to)?)),
                    _ => return Err(ServiceError::BadRequest("'search_values' holds at most two timestamps [from, to] for search_type 'timestamp'".into())),
                };
                let mut out = Vec::new();
                self.audit_scan(db, table, from, to, |_, bytes| {
                    out.push(Value::Object(take(bytes)?));
                    Ok(true)
                })?;
                Ok(Value::Array(out))
            }
            SearchType::Username => {
                let names: Vec<&str> = values
                    .iter()
                    .map(|v| v.as_str().ok_or_else(|| ServiceError::BadRequest("'search_values' must be user names for search_type 'username'".into())))
                    .collect::<Result<_, _>>()?;
                // HarperDB lists only the users that have entries.
                let mut out = Map::new();
                self.audit_scan(db, table, None, None, |_, bytes| {
                    // A cheap pre-check on the raw bytes before decoding the entry.
                    if names.iter().any(|n| contains(bytes, n.as_bytes())) {
                        let entry = take(bytes)?;
                        let user = entry.get("user_name").and_then(Value::as_str).unwrap_or_default().to_string();
                        if names.contains(&user.as_str()) {
                            if let Value::Array(list) = out.entry(user).or_insert_with(|| Value::Array(Vec::new())) {
                                list.push(Value::Object(entry));
                            }
                        }
                    }
                    Ok(true)
                })?;
                Ok(Value::Object(out))
            }
            SearchType::HashValue => {
                let mut out = Map::new();
                let label = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                for v in values {
                    out.insert(label(v), Value::Array(Vec::new()));
                }
                self.audit_scan(db, table, None, None, |_, bytes| {
                    let entry = take(bytes)?;
                    let hashes = entry.get("hash_values").and_then(Value::as_array).cloned().unwrap_or_default();
                    for v in values.iter().filter(|v| hashes.contains(v)) {
                        // HarperDB lists, per key, its entries narrowed to that key: its
                        // `hash_values` and its records only (a deleted one's is `null`).
                        let mut one = entry.clone();
                        one.insert("hash_values".into(), Value::Array(vec![v.clone()]));
                        let at: Vec<usize> = hashes.iter().enumerate().filter(|(_, h)| *h == v).map(|(i, _)| i).collect();
                        if let Some(Value::Array(list)) = one.get_mut("records") {
                            *list = at.iter().filter_map(|i| list.get(*i).cloned()).collect();
                        }
                        if let Some(Value::Array(list)) = one.get_mut("original_records") {
                            list.retain(|r| r.get(&primary_key) == Some(v));
                        }
                        if let Some(Value::Array(list)) = out.get_mut(&label(v)) {
                            list.push(Value::Object(one));
                        }
                    }
                    Ok(true)
                })?;
                Ok(Value::Object(out))
            }
        }
    }

    /// Deletes the entries of `db.table` older than `before_ms`; returns how many.
    pub fn delete_audit_before(&self, db: &str, table: &str, before_ms: f64) -> Result<u64, ServiceError> {
        self.table_meta(db, table)?;
        let (mut count, mut bytes) = (0u64, 0i64);
        let cutoff = micros(before_ms);
        self.audit_scan(db, table, None, None, |at, value| {
            if at >= cutoff {
                return Ok(false);
            }
            count += 1;
            bytes += value.len() as i64;
            Ok(true)
        })?;
        if count == 0 {
            return Ok(0);
        }
        let cf = self.db.cf_handle(CF).ok_or_else(|| not_found_table(db, table))?;
        let meta = self.meta().map_err(internal)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&cf, prefix(db, table).into_bytes(), key(db, table, cutoff));
        batch.merge_cf(&meta, size_key(db, table), (-bytes).to_le_bytes());
        self.commit(batch).map_err(internal)?;
        Ok(count)
    }

    /// Applies `logging.auditRetention` to every table; returns how many entries went.
    pub fn audit_sweep(&self) -> Result<u64, ServiceError> {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as f64).unwrap_or(0.0);
        let cutoff = now_ms - self.audit.retention().as_millis() as f64;
        let tables: Vec<(String, String)> = self
            .catalog
            .read()
            .iter()
            .filter(|(db, _)| db.as_str() != SYSTEM_DATABASE)
            .flat_map(|(db, tables)| tables.keys().map(move |t| (db.clone(), t.clone())))
            .collect();
        let mut removed = 0;
        for (db, table) in tables {
            match self.delete_audit_before(&db, &table, cutoff) {
                Ok(n) => removed += n,
                // Dropped meanwhile.
                Err(ServiceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Applies the retention in the background: at start, then every quarter of the retention
/// (between one second and one hour), reading the setting afresh each time.
pub fn start_retention(storage: Arc<Storage>) {
    tokio::spawn(async move {
        loop {
            let s = storage.clone();
            match tokio::task::spawn_blocking(move || s.audit_sweep()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("audit log retention removed {n} entries"),
                Ok(Err(e)) => tracing::error!("audit log retention failed: {e}"),
                Err(e) => tracing::error!("audit log retention task failed: {e}"),
            }
            let every = (storage.audit_settings().retention() / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
            tokio::time::sleep(every).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::storage::WriteMode;
    use serde_json::json;

    use crate::services::storage::conformance::{temp_storage, Temp};

    fn store() -> (Temp, Storage) {
        let (temp, s) = temp_storage();
        s.create_table("dev", "dog", "id").expect("create");
        (temp, s)
    }

    #[test]
    fn writes_and_deletes_are_recorded_with_the_user() {
        let (_dir, s) = store();
        as_user("alice", || s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1, "name": "Penny"})])).expect("insert");
        as_user("bob", || s.write("dev", "dog", WriteMode::Update, vec![json!({"id": 1, "age": 5})])).expect("update");
        s.delete("dev", "dog", vec![json!(1)]).expect("delete");
        let all = s.read_audit_log("dev", "dog", SearchType::Timestamp, &[]).expect("read");
        let ops: Vec<_> = all.as_array().expect("list").iter().map(|e| (e["operation"].clone(), e["user_name"].clone())).collect();
        assert_eq!(ops, vec![(json!("insert"), json!("alice")), (json!("update"), json!("bob")), (json!("delete"), json!(""))]);
        let update = &all[1];
        assert_eq!((update["records"][0]["age"].clone(), update["records"][0]["name"].clone()), (json!(5), json!("Penny")), "the record after: {update}");
        assert!(update["original_records"][0].get("age").is_none(), "the record before: {update}");
        assert_eq!(all[2]["original_records"][0]["age"], 5);
        assert_eq!(all[2]["records"], json!([null]));
        let by_user = s.read_audit_log("dev", "dog", SearchType::Username, &[json!("bob")]).expect("read");
        assert_eq!(by_user["bob"].as_array().map(Vec::len), Some(1));
        let by_key = s.read_audit_log("dev", "dog", SearchType::HashValue, &[json!(1)]).expect("read");
        assert_eq!(by_key["1"].as_array().map(Vec::len), Some(3));
        assert_eq!(by_key["1"][0]["hash_values"], json!([1]));
        assert_eq!(s.read_audit_log("dev", "dog", SearchType::Username, &[json!("nobody")]).expect("read"), json!({}));
        assert!(s.audit_info("dev", "dog").expect("info").1 > 0);
    }

    #[test]
    fn delete_before_and_drop_remove_entries() {
        let (_dir, s) = store();
        s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1})]).expect("insert");
        s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 2})]).expect("insert");
        // The second entry's time: only the first is older (the two may be microseconds apart).
        let second = s.read_audit_log("dev", "dog", SearchType::Timestamp, &[]).expect("read")[1]["timestamp"].as_f64().expect("ts");
        assert_eq!(s.delete_audit_before("dev", "dog", second).expect("delete"), 1);
        let left = s.read_audit_log("dev", "dog", SearchType::Timestamp, &[]).expect("read");
        assert_eq!(left.as_array().map(Vec::len), Some(1));
        assert_eq!(left[0]["hash_values"], json!([2]));
        s.drop_table("dev", "dog").expect("drop");
        s.create_table("dev", "dog", "id").expect("create");
        assert_eq!(s.read_audit_log("dev", "dog", SearchType::Timestamp, &[]).expect("read"), json!([]));
        assert_eq!(s.audit_info("dev", "dog").expect("info").1, 0);
    }

    #[test]
    fn disabled_audit_records_nothing() {
        let (_dir, s) = store();
        s.audit_settings().set(false, DEFAULT_RETENTION);
        s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1})]).expect("insert");
        assert_eq!(s.read_audit_log("dev", "dog", SearchType::Timestamp, &[]).expect("read"), json!([]));
    }
}
