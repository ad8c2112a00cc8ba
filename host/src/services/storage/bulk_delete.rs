//! Deletes of many records that lie next to each other in primary-key order (issue 18: a
//! `delete_records_before` of a table loaded in key order hands `delete` 10,000 neighbours at a
//! time). The records are read with one forward scan instead of point lookups, and where every
//! stored record between two keys goes, their records and their index entries go as RocksDB
//! range deletes: one tombstone for a run of records, and in the index one per attribute value
//! of the run (the entries `attribute 0x00 value pk` of one value are ordered by primary key,
//! so those of a run's records are contiguous). One tombstone per key was most of a bulk
//! delete's cost (memtable inserts). The audit entry is the same as a key-by-key delete's,
//! in the same write batch as the change.

use super::{index_key, internal, keys, SortedOps, Storage, TableLocks, TableMeta, WriteOutcome};
use super::projection::borrow_fields;
use crate::services::ServiceError;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Fewer keys than this take the key-by-key path (a scan and all of the table's stripes are
/// not worth it).
const MIN_KEYS: usize = 64;
/// A run of records (or of one attribute value's index entries within a run) at least this
/// long becomes one range delete; shorter ones are deleted key by key.
const MIN_RUN: usize = 8;

/// The smallest key after `key` (range ends are exclusive).
fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

impl Storage {
    /// Deletes `ids` by ranges when they are dense in key order (the stored records between
    /// the smallest and largest key are mostly ones being deleted), with the same outcome,
    /// audit entry and counters as [`Storage::delete`]. None when they are not dense: the
    /// caller then deletes key by key. Holds every stripe of the table while it runs, so no
    /// record can be written between two keys of a run while the run is range-deleted.
    pub(super) fn delete_dense(
        &self,
        db: &str,
        table: &str,
        meta_info: &TableMeta,
        locks: &TableLocks,
        ids: &[Value],
        mark: Option<&super::backend::DeleteMark>,
    ) -> Result<Option<WriteOutcome>, ServiceError> {
        if ids.len() < MIN_KEYS {
            return Ok(None);
        }
        let encoded: Vec<Vec<u8>> = ids.iter().map(keys::encoded).collect();
        // Key order, each key once (the first time it is named; a repeat is reported skipped).
        // An inexact number (beyond 2^53) can never have been stored: its key is a neighbour's.
        let mut order: Vec<usize> = (0..ids.len()).filter(|&i| keys::exact_value(&ids[i])).collect();
        order.sort_by(|&a, &b| encoded[a].cmp(&encoded[b]).then(a.cmp(&b)));
        order.dedup_by(|later, earlier| encoded[*later] == encoded[*earlier]);
        let (Some(&lo), Some(&hi)) = (order.first(), order.last()) else { return Ok(None) };
        let (rcf, icf) = self.cfs(db, table)?;
        let meta = self.meta().map_err(internal)?;
        // Stripes in index order, as `lock_keys` takes them: no deadlock with a batch write.
        let _stripes: Vec<_> = locks.stripes.iter().map(|s| s.lock()).collect();

        // One scan over [lo, hi]: the stored records to delete, grouped into runs of
        // neighbours (a stored record that is not being deleted ends a run).
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(successor(&encoded[hi]));
        let limit = 2 * order.len() + MIN_KEYS;
        let mut stored: Vec<Option<Box<[u8]>>> = vec![None; ids.len()];
        let mut runs: Vec<Vec<usize>> = Vec::new();
        let (mut next, mut open, mut examined) = (0, false, 0);
        for item in self.db.iterator_cf_opt(&rcf, opts, IteratorMode::From(&encoded[lo], rocksdb::Direction::Forward)) {
            let (key, value) = item.map_err(internal)?;
            examined += 1;
            if examined > limit {
                // Sparse: mostly records that stay. Key by key is cheaper.
                return Ok(None);
            }
            while next < order.len() && encoded[order[next]][..] < key[..] {
                next += 1;
            }
            if next < order.len() && encoded[order[next]][..] == key[..] {
                let i = order[next];
                stored[i] = Some(value);
                match runs.last_mut() {
                    Some(run) if open => run.push(i),
                    _ => runs.push(vec![i]),
                }
                open = true;
                next += 1;
            } else {
                open = false;
            }
        }

        let pk_name = meta_info.primary_key.as_str();
        // The audit entry copies every record; tombstones and index keys are small.
        let stored_bytes: usize = stored.iter().flatten().map(|b| b.len()).sum();
        let mut batch = WriteBatch::with_capacity_bytes(stored_bytes + 64 * order.len());
        let (mut records, mut index) = (SortedOps::default(), SortedOps::default());
        // Index entries of a run by `attribute 0x00 value`: their positions in the run, which
        // arrive in increasing (= primary-key) order, so grouping needs no sort.
        let mut entries: HashMap<Vec<u8>, Positions> = HashMap::new();
        let mut prefix = Vec::new();
        for run in &runs {
            let (first, last) = (&encoded[run[0]], &encoded[run[run.len() - 1]]);
            if run.len() >= MIN_RUN {
                batch.delete_range_cf(&rcf, first, &successor(last));
            } else {
                for &i in run {
                    records.delete(encoded[i].clone());
                }
            }
            entries.clear();
            for (at, &i) in run.iter().enumerate() {
                let bytes = stored[i].as_deref().unwrap_or_default();
                // Looked up by slice: a prefix is copied only the first time it is seen in a run.
                index_prefixes(bytes, pk_name, &mut prefix, |prefix| match entries.get_mut(prefix) {
                    Some(group) => group.push(at as u32),
                    None => entries.entry(prefix.to_vec()).or_default().push(at as u32),
                })?;
            }
            for (prefix, group) in &entries {
                if group.count >= MIN_RUN {
                    let from = [prefix.as_slice(), &encoded[run[group.first() as usize]]].concat();
                    let to = [prefix.as_slice(), &successor(&encoded[run[group.last as usize]])].concat();
                    batch.delete_range_cf(&icf, from, to);
                } else {
                    for &at in &group.few[..group.count] {
                        index.delete([prefix.as_slice(), &encoded[run[at as usize]]].concat());
                    }
                }
            }
        }
        records.apply(&mut batch, &rcf);
        index.apply(&mut batch, &icf);

        let mut outcome = WriteOutcome::default();
        let mut audit = self.audit_begin(db, table, "delete");
        for (id, old) in ids.iter().zip(stored) {
            match old {
                Some(old) => {
                    if let Some(a) = audit.as_mut() {
                        a.deleted_raw(id, old);
                    }
                    outcome.written.push(id.clone());
                }
                None => outcome.skipped.push(id.clone()),
            }
        }
        if !outcome.written.is_empty() {
            batch.merge_cf(&meta, format!("count/{db}/{table}"), (-(outcome.written.len() as i64)).to_le_bytes());
            self.put_tombstones(&mut batch, db, table, &outcome.written, mark)?;
            if let Some(a) = audit {
                a.commit(self, &mut batch)?;
            }
            self.commit(batch).map_err(internal)?;
        }
        Ok(Some(outcome))
    }
}

/// The positions in a run of the records sharing one index value: all of them while there
/// are fewer than [`MIN_RUN`] (each is deleted by key), then only the count and the last (the
/// group becomes one range from the first to the last).
#[derive(Default)]
struct Positions {
    count: usize,
    few: [u32; MIN_RUN],
    last: u32,
}

impl Positions {
    fn push(&mut self, at: u32) {
        if self.count < MIN_RUN {
            self.few[self.count] = at;
        }
        self.count += 1;
        self.last = at;
    }

    fn first(&self) -> u32 {
        self.few[0]
    }
}

/// Calls `f` with the index prefix (`attribute 0x00 value`) of each indexed attribute of a
/// stored record (as `reindex`: every top-level scalar but the primary key), reading the
/// record's fields in place and parsing only their scalar values (a string without escapes
/// not even that). `buf` holds each prefix in turn (no allocation per field).
fn index_prefixes(bytes: &[u8], pk_name: &str, buf: &mut Vec<u8>, mut f: impl FnMut(&[u8])) -> Result<(), ServiceError> {
    let mut fields = Vec::new();
    if borrow_fields(bytes, &mut fields) {
        for (attr, text) in fields {
            if attr != pk_name && !text.starts_with(['{', '[']) {
                buf.clear();
                buf.extend_from_slice(attr.as_bytes());
                buf.push(0);
                match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                    Some(plain) if !plain.contains('\\') => keys::encode_str(plain, buf),
                    _ => keys::encode(&serde_json::from_str::<Value>(text).map_err(internal)?, buf),
                }
                f(buf);
            }
        }
        return Ok(());
    }
    // Keys with escapes cannot be borrowed (never written by this store); parse it all.
    let record: Map<String, Value> = serde_json::from_slice(bytes).map_err(internal)?;
    for (attr, value) in &record {
        if attr.as_str() != pk_name && !value.is_object() && !value.is_array() {
            f(&index_key(attr, value, &[]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Storage, StorageBackend};
    use rocksdb::IteratorMode;
    use serde_json::{json, Value};

    use super::super::conformance::temp_table as open;

    /// Every key and value of the table's records and index, and its record count.
    fn contents(s: &Storage) -> (Vec<(Box<[u8]>, Box<[u8]>)>, Vec<Box<[u8]>>, u64) {
        let (rcf, icf) = s.cfs("p", "t").expect("cfs");
        let records = s.db.iterator_cf(&rcf, IteratorMode::Start).map(|i| i.expect("record")).collect();
        let index = s.db.iterator_cf(&icf, IteratorMode::Start).map(|i| i.expect("index").0).collect();
        (records, index, s.describe_table("p", "t").expect("describe").record_count)
    }

    /// What the audit log says was deleted, entry boundaries aside: (key, record before).
    fn audited_deletes(s: &Storage) -> Vec<(Value, Value)> {
        let log = s.read_audit_log("p", "t", super::super::audit::SearchType::Timestamp, &[]).expect("audit");
        let mut out = Vec::new();
        for entry in log.as_array().expect("list") {
            if entry["operation"] == "delete" {
                let keys = entry["hash_values"].as_array().expect("keys");
                let before = entry["original_records"].as_array().expect("originals");
                assert_eq!(keys.len(), before.len());
                assert!(entry["records"].as_array().expect("records").iter().all(Value::is_null));
                out.extend(keys.iter().cloned().zip(before.iter().cloned()));
            }
        }
        out
    }

    /// Range deletes leave exactly the state, outcome and audit trail that deleting key by
    /// key leaves: the same store is driven through the dense path (one call) and through
    /// the key-by-key path (calls below `MIN_KEYS`), over contiguous runs, runs with
    /// survivors between, sparse picks, repeated, missing and inexact keys, and re-inserts
    /// into deleted ranges (a range tombstone must not hide a later write).
    #[test]
    fn range_deletes_match_key_by_key_deletes() {
        let (_a, dense) = open();
        let (_b, keyed) = open();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let record = |i: u64, round: u64| {
            // Fixed timestamps (written with `merge`), so both stores hold the same bytes.
            let t = 1_700_000_000_000 + round;
            let mut r = json!({"id": i, "name": format!("dog-{i}"), "group": i % 7, "flag": i % 3 == 0, "round": round,
                "__createdtime__": t, "__updatedtime__": t});
            if i % 5 == 0 {
                r["nested"] = json!({"a": [i]});
            }
            if i % 11 == 0 {
                r["odd"] = json!(null);
            }
            r
        };
        let strings: Vec<Value> = (0..150)
            .map(|i| json!({"id": format!("k{i:03}"), "group": i % 4, "__createdtime__": 1, "__updatedtime__": 1}))
            .collect();
        for s in [&dense, &keyed] {
            let all: Vec<Value> = (0..3000).map(|i| record(i, 0)).collect();
            s.merge("p", "t", all).expect("insert");
            s.merge("p", "t", strings.clone()).expect("insert strings");
        }
        for round in 1..=12u64 {
            let start = next(2800);
            let mut ids: Vec<Value> = match round % 4 {
                // A contiguous run.
                0 => (start..start + 100 + next(400)).map(|i| json!(i)).collect(),
                // A run with survivors between.
                1 => (start..start + 600).filter(|i| i % 9 != 0).map(|i| json!(i)).collect(),
                // Sparse picks over the whole table.
                2 => (0..200).map(|_| json!(next(3000))).collect(),
                // String keys, some missing.
                _ => (0..120).map(|_| json!(format!("k{:03}", next(170)))).collect(),
            };
            // Repeats, missing and inexact keys.
            ids.push(ids[0].clone());
            ids.push(json!(5000 + round));
            ids.push(json!(9_007_199_254_740_993u64));
            ids.reverse();
            let one = dense.delete("p", "t", ids.clone()).expect("dense delete");
            let mut by_key = super::super::WriteOutcome::default();
            for chunk in ids.chunks(super::MIN_KEYS - 1) {
                let o = keyed.delete("p", "t", chunk.to_vec()).expect("delete");
                by_key.written.extend(o.written);
                by_key.skipped.extend(o.skipped);
            }
            assert_eq!(one, by_key, "round {round}");
            // Some deleted keys come back.
            let back: Vec<Value> = (0..30).map(|_| record(start + next(300), round)).collect();
            for s in [&dense, &keyed] {
                s.merge("p", "t", back.clone()).expect("re-insert");
            }
            let (a, b) = (contents(&dense), contents(&keyed));
            assert!(a == b, "round {round}: {} records and {} index entries against {} and {}", a.0.len(), a.1.len(), b.0.len(), b.1.len());
        }
        assert!(audited_deletes(&dense) == audited_deletes(&keyed), "audit logs differ");
        assert!(!audited_deletes(&dense).is_empty());
    }
}
