//! Storage service tests over a temporary RocksDB folder, without wasm.

use super::query::{Cmp, Cond, Query};
use super::*;
use serde_json::json;

use super::conformance::{temp_storage, Temp};

fn open() -> (Temp, Arc<Storage>) {
    let (temp, storage) = temp_storage();
    (temp, Arc::new(storage))
}

fn all(cursor: &mut Cursor) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let batch = cursor.next_batch(3).expect("batch");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn leaf(attribute: &str, cmp: Cmp, value: Value) -> Cond {
    Cond::Leaf { attribute: attribute.into(), cmp, value, upper: None }
}

fn dogs(s: &Storage) {
    s.create_table("dev", "dog", "id").expect("table");
    let records = vec![
        json!({"id": 1, "name": "Penny", "age": 5, "breed": "Beagle"}),
        json!({"id": 2, "name": "Harper", "age": 3, "breed": "Mutt"}),
        json!({"id": 3, "name": "Billy", "age": "3", "breed": "Beagle"}),
        json!({"id": "x", "name": "Kato", "age": 9}),
    ];
    let out = s.write("dev", "dog", WriteMode::Insert, records).expect("insert");
    assert_eq!(out.written.len(), 4);
}

impl Storage {
    /// Every record's index entries are exactly what its attributes say, and the counter is
    /// the number of records.
    fn check_consistency(&self, db: &str, table: &str) {
        let meta = self.table_meta(db, table).expect("meta");
        let (rcf, icf) = self.cfs(db, table).expect("cfs");
        let mut expected = BTreeSet::new();
        let mut count = 0;
        for item in self.db.iterator_cf(&rcf, IteratorMode::Start) {
            let (key, value) = item.expect("record");
            count += 1;
            let rec: Map<String, Value> = serde_json::from_slice(&value).expect("json");
            for (attr, v) in &rec {
                if *attr != meta.primary_key && !v.is_object() && !v.is_array() {
                    expected.insert(index_key(attr, v, &key));
                }
            }
        }
        let actual: BTreeSet<Vec<u8>> =
            self.db.iterator_cf(&icf, IteratorMode::Start).map(|i| i.expect("index").0.to_vec()).collect();
        assert_eq!(actual, expected, "index differs from records");
        assert_eq!(self.describe_table(db, table).expect("describe").record_count, count);
    }
}

#[test]
fn creates_describes_and_drops() {
    let (_t, s) = open();
    s.create_database("dev").expect("db");
    assert!(matches!(s.create_database("dev"), Err(ServiceError::BadRequest(m)) if m == "database 'dev' already exists"));
    assert!(matches!(s.create_database("bad name!"), Err(ServiceError::BadRequest(_))));
    dogs(&s);
    assert!(matches!(s.create_table("dev", "dog", "id"), Err(ServiceError::BadRequest(m)) if m == "Table 'dog' already exists in 'dev'"));
    let info = s.describe_table("dev", "dog").expect("describe");
    assert_eq!(info.attributes, ["age", "breed", "id", "name"]);
    assert_eq!(info.record_count, 4);
    assert!(info.last_updated.is_some());
    assert_eq!(s.list_databases(), vec![("dev".to_string(), vec!["dog".to_string()])]);
    s.drop_table("dev", "dog").expect("drop");
    assert!(matches!(s.describe_table("dev", "dog"), Err(ServiceError::NotFound(_))));
    s.drop_database("dev").expect("drop db");
    assert!(s.list_databases().is_empty());
}

#[test]
fn writes_follow_insert_update_upsert_semantics() {
    let (_t, s) = open();
    dogs(&s);
    let out = s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1, "name": "dup"})]).expect("insert");
    assert_eq!(out, WriteOutcome { written: vec![], skipped: vec![json!(1)] });
    let out = s.write("dev", "dog", WriteMode::Update, vec![json!({"id": 1, "age": 6}), json!({"id": 99, "age": 1})]).expect("update");
    assert_eq!(out, WriteOutcome { written: vec![json!(1)], skipped: vec![json!(99)] });
    let got = s.get("dev", "dog", &[json!(1)], &["name".into(), "age".into()]).expect("get");
    assert_eq!(got, vec![json!({"name": "Penny", "age": 6})]);
    let out = s.write("dev", "dog", WriteMode::Upsert, vec![json!({"id": 7, "name": "New"})]).expect("upsert");
    assert_eq!(out.written, vec![json!(7)]);
    // A generated key for a record without one.
    let out = s.write("dev", "dog", WriteMode::Insert, vec![json!({"name": "Anon"})]).expect("insert");
    assert!(out.written[0].as_str().is_some_and(|k| k.len() == 36));
    // Validation failure writes nothing.
    let before = s.describe_table("dev", "dog").expect("d").record_count;
    let bad = s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 50}), json!({"id": {"x": 1}})]);
    assert!(matches!(bad, Err(ServiceError::BadRequest(_))));
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, before);
    let out = s.delete("dev", "dog", vec![json!(1), json!(1000)]).expect("delete");
    assert_eq!(out, WriteOutcome { written: vec![json!(1)], skipped: vec![json!(1000)] });
    s.check_consistency("dev", "dog");
}

#[test]
fn searches_are_type_sensitive_and_use_indexes() {
    let (_t, s) = open();
    dogs(&s);
    let q = |cond: Cond| Query { cond: Some(cond), attributes: vec!["id".into()], ..Default::default() };
    let ids = |mut c: Cursor| all(&mut c).into_iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(s.search("dev", "dog", q(leaf("age", Cmp::Equals, json!(3)))).expect("s")), vec![json!(2)]);
    assert_eq!(ids(s.search("dev", "dog", q(leaf("age", Cmp::Equals, json!("3")))).expect("s")), vec![json!(3)]);
    assert_eq!(ids(s.search("dev", "dog", q(leaf("name", Cmp::StartsWith, json!("P")))).expect("s")), vec![json!(1)]);
    assert_eq!(ids(s.search("dev", "dog", q(leaf("age", Cmp::GreaterThan, json!(4)))).expect("s")), vec![json!(1), json!("x")]);
    let and = Cond::And(vec![leaf("breed", Cmp::Equals, json!("Beagle")), leaf("age", Cmp::LessThan, json!(10))]);
    assert_eq!(ids(s.search("dev", "dog", q(and)).expect("s")), vec![json!(1)]);
    let or = Cond::Or(vec![leaf("name", Cmp::EndsWith, json!("to")), leaf("id", Cmp::Equals, json!(2))]);
    assert_eq!(ids(s.search("dev", "dog", q(or)).expect("s")), vec![json!(2), json!("x")]);
    let sorted = Query { attributes: vec!["name".into()], sort: vec![("name".into(), true)], offset: 1, limit: Some(2), ..Default::default() };
    let names: Vec<Value> = all(&mut s.search("dev", "dog", sorted).expect("s")).into_iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, vec![json!("Kato"), json!("Harper")]);
    assert!(matches!(s.search("dev", "dog", q(leaf("nosuch", Cmp::Equals, json!(1)))), Err(ServiceError::BadRequest(m)) if m == "unknown attribute 'nosuch'"));
}

#[test]
fn star_projection_is_key_times_then_attributes() {
    let (_t, s) = open();
    dogs(&s);
    let r = s.get("dev", "dog", &[json!("x")], &["*".into()]).expect("get");
    let keys: Vec<&str> = r[0].as_object().expect("obj").keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "__createdtime__", "__updatedtime__", "age", "breed", "name"]);
    assert_eq!(r[0]["breed"], Value::Null);
}

#[test]
fn data_survives_reopen() {
    let dir = std::env::temp_dir().join(format!("opshost-storage-{}", uuid::Uuid::new_v4().simple()));
    let _t = Temp(dir.clone());
    {
        let s = Storage::open(&dir, false).expect("open");
        dogs(&s);
    }
    let s = Storage::open(&dir, false).expect("reopen");
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 4);
    assert_eq!(s.get("dev", "dog", &[json!(2)], &["name".into()]).expect("get"), vec![json!({"name": "Harper"})]);
}

/// Property: any sequence of insert/update/upsert/delete leaves the indexes exactly
/// consistent with the records (seeded, so a failure reproduces).
#[test]
fn random_write_sequences_keep_indexes_consistent() {
    let (_t, s) = open();
    s.create_table("p", "t", "id").expect("table");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let values = [json!(1), json!("1"), json!(null), json!(true), json!("a\0b"), json!([1, 2]), json!({"k": 1}), json!(2.5)];
    for _round in 0..300 {
        let batch: Vec<Value> = (0..1 + next(4))
            .map(|_| {
                let mut rec = Map::new();
                rec.insert("id".into(), json!(next(20)));
                for attr in ["a", "b", "c"] {
                    if next(2) == 0 {
                        rec.insert(attr.into(), values[next(values.len() as u64) as usize].clone());
                    }
                }
                Value::Object(rec)
            })
            .collect();
        match next(4) {
            0 => drop(s.write("p", "t", WriteMode::Insert, batch).expect("insert")),
            1 => drop(s.write("p", "t", WriteMode::Update, batch).expect("update")),
            2 => drop(s.write("p", "t", WriteMode::Upsert, batch).expect("upsert")),
            _ => drop(s.delete("p", "t", batch.iter().map(|r| r["id"].clone()).collect()).expect("delete")),
        }
    }
    s.check_consistency("p", "t");
}

/// The text path the guests get (raw projection, index-only answers) says exactly what the
/// value path says.
#[test]
fn json_batches_match_value_batches() {
    let (_t, s) = open();
    dogs(&s);
    let queries = vec![
        Query { attributes: vec!["*".into()], ..Default::default() },
        Query { cond: Some(leaf("id", Cmp::Exists, Value::Null)), attributes: vec!["*".into()], ..Default::default() },
        Query { cond: Some(leaf("age", Cmp::LessThan, json!(5))), attributes: vec!["id".into()], ..Default::default() },
        Query { cond: Some(leaf("age", Cmp::LessThanEqual, json!(5))), attributes: vec!["id".into()], ..Default::default() },
        Query { cond: Some(leaf("name", Cmp::StartsWith, json!("P"))), attributes: vec!["id".into()], offset: 0, limit: Some(1), ..Default::default() },
        Query { cond: Some(leaf("breed", Cmp::Equals, json!("Beagle"))), attributes: vec!["name".into(), "id".into()], ..Default::default() },
        Query { cond: Some(leaf("age", Cmp::GreaterThan, json!(1))), attributes: vec!["id".into()], offset: 1, ..Default::default() },
    ];
    for q in queries {
        let expected: Vec<String> = all(&mut s.search("dev", "dog", q.clone()).expect("search")).iter().map(Value::to_string).collect();
        let mut cursor = s.search("dev", "dog", q.clone()).expect("search");
        let mut got = Vec::new();
        loop {
            let batch = cursor.next_batch_json(2).expect("batch");
            if batch.is_empty() {
                break;
            }
            got.extend(batch);
        }
        assert_eq!(got, expected, "{q:?}");
    }
}

/// An interrupted create (column families without a catalog entry) or drop (leftover
/// counters and attributes) is repaired at open: the name can be created again, empty.
#[test]
fn orphans_of_an_interrupted_create_or_drop_are_dropped_at_open() {
    let dir = std::env::temp_dir().join(format!("opshost-storage-{}", uuid::Uuid::new_v4().simple()));
    let _t = Temp(dir.clone());
    {
        let s = Storage::open(&dir, false).expect("open");
        s.db.create_cf(records_cf("dev", "t"), &tuning::options_for(&records_cf("dev", "t"))).expect("cf");
        s.db.create_cf(index_cf("dev", "t"), &tuning::options_for(&index_cf("dev", "t"))).expect("cf");
        let meta = s.meta().expect("meta");
        s.db.merge_cf(&meta, "count/dev/t", 7i64.to_le_bytes()).expect("count");
        s.db.put_cf(&meta, "attr/dev/t/ghost", b"").expect("attr");
        assert!(matches!(s.create_table("dev", "t", "id"), Ok(())), "a live orphan is replaced too");
        s.drop_table("dev", "t").expect("drop");
        s.db.create_cf(records_cf("dev", "t"), &tuning::options_for(&records_cf("dev", "t"))).expect("cf");
    }
    let s = Storage::open(&dir, false).expect("reopen");
    assert!(s.db.cf_handle(&records_cf("dev", "t")).is_none(), "orphan dropped");
    s.create_table("dev", "t", "id").expect("create after repair");
    let info = s.describe_table("dev", "t").expect("describe");
    assert_eq!((info.record_count, info.attributes), (0, vec!["id".to_string()]));
}

/// Integer keys f64 cannot hold exactly are refused (naming the key), never merged into a
/// neighbour; reads by such a key find nothing; index values compare exactly.
#[test]
fn integer_keys_beyond_2_pow_53_never_collide() {
    let (_t, s) = open();
    s.create_table("dev", "big", "id").expect("table");
    let out = s.write("dev", "big", WriteMode::Insert, vec![json!({"id": 9007199254740992u64, "v": 9007199254740992u64})]).expect("insert");
    assert_eq!(out.written.len(), 1);
    for mode in [WriteMode::Insert, WriteMode::Upsert, WriteMode::Update] {
        let e = s.write("dev", "big", mode, vec![json!({"id": 9007199254740993u64, "name": "b"})]);
        assert!(matches!(e, Err(ServiceError::BadRequest(ref m)) if m.contains("primary key 'id' value 9007199254740993")), "{e:?}");
    }
    assert!(s.get("dev", "big", &[json!(9007199254740993u64)], &["*".into()]).expect("get").is_empty());
    assert_eq!(s.delete("dev", "big", vec![json!(9007199254740993u64)]).expect("delete").written.len(), 0);
    s.write("dev", "big", WriteMode::Insert, vec![json!({"id": 1, "v": 9007199254740993u64})]).expect("insert");
    let q = Query { cond: Some(leaf("v", Cmp::Equals, json!(9007199254740993u64))), attributes: vec!["id".into()], ..Default::default() };
    assert_eq!(s.search("dev", "big", q.clone()).expect("s").next_batch_json(10).expect("b"), vec!["{\"id\":1}".to_string()]);
    let q = Query { cond: Some(leaf("v", Cmp::GreaterThan, json!(9007199254740992u64))), attributes: vec!["id".into()], ..Default::default() };
    assert_eq!(all(&mut s.search("dev", "big", q).expect("s")), vec![json!({"id": 1})]);
    s.check_consistency("dev", "big");
}

fn many(s: &Storage, n: u64) {
    s.create_table("dev", "many", "id").expect("table");
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let records = chunk.iter().map(|i| json!({"id": i, "name": format!("n{}", (i * 7919) % n), "pad": "x"})).collect();
        s.write("dev", "many", WriteMode::Insert, records).expect("insert");
    }
}

/// A sorted search keeps only offset + limit rows; without a limit past the bound it is a
/// 400; a filter matching nothing returns empty, unfinished steps after bounded work.
#[test]
fn sorted_searches_are_bounded_and_steps_return_after_bounded_work() {
    let (_t, s) = open();
    let n = MAX_SORT_ROWS as u64 + 10;
    many(&s, n);
    let q = Query { attributes: vec!["id".into(), "name".into()], sort: vec![("name".into(), true)], offset: 2, limit: Some(3), ..Default::default() };
    let mut c = s.search("dev", "many", q).expect("s");
    let got = all(&mut c);
    let mut names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    names.sort();
    names.reverse();
    assert_eq!(got.iter().map(|r| r["name"].as_str().expect("name").to_string()).collect::<Vec<_>>(), names[2..5].to_vec());
    let q = Query { attributes: vec!["id".into()], sort: vec![("name".into(), false)], ..Default::default() };
    let e = s.search("dev", "many", q).expect("s").next_batch_json(10);
    assert!(matches!(e, Err(ServiceError::BadRequest(ref m)) if m.starts_with("a sorted search may hold at most")), "{e:?}");
    let q = Query { cond: Some(leaf("pad", Cmp::Contains, json!("nomatch"))), attributes: vec!["*".into()], ..Default::default() };
    let mut c = s.search("dev", "many", q).expect("s");
    assert!(c.step_json(1000).expect("step").is_empty());
    assert!(!c.finished(), "one step does not scan the whole table");
    assert!(c.next_batch_json(1000).expect("rest").is_empty() && c.finished());
}

/// Stripes are per table: a batch holding every stripe of one table does not block a write
/// to another.
#[test]
fn a_bulk_write_to_one_table_does_not_block_another() {
    let (_t, s) = open();
    dogs(&s);
    s.create_table("dev", "other", "id").expect("table");
    let locks = s.locks("dev", "dog");
    let keys: Vec<Vec<u8>> = (0..5000).map(|i| keys::encoded(&json!(i))).collect();
    let _held = locks.lock_keys(keys.iter());
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send(writer.write("dev", "other", WriteMode::Insert, vec![json!({"id": 1})]).is_ok());
    });
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)), Ok(true));
}

/// `get_json` (the storage capability's read path, projected from the stored bytes) answers
/// exactly the text of `get` serialised: same order, same projection, missing attributes as
/// null, missing and inexact ids left out, escapes and nested values kept.
#[test]
fn get_json_answers_the_text_of_get() {
    let (_t, s) = open();
    dogs(&s);
    let odd = json!({"id": "q\"uote", "name": "line\nbreak \u{e9}\u{1F600}", "nested": {"b": [1, 2.5, null], "a": "x"},
        "weight": 12.75, "big": -9007199254740991i64, "flag": false});
    s.write("dev", "dog", WriteMode::Insert, vec![odd]).expect("write");
    let ids = [json!(3), json!("q\"uote"), json!(99), json!(1), json!(9007199254740993u64), json!(2)];
    for attributes in [vec!["*".to_string()], vec![], vec!["name".into(), "nested".into(), "age".into(), "id".into()], vec![UPDATED.into(), "weight".into()]] {
        let expected: Vec<String> = s.get("dev", "dog", &ids, &attributes).expect("get").iter().map(Value::to_string).collect();
        assert_eq!(s.get_json("dev", "dog", &ids, &attributes).expect("get_json"), expected, "{attributes:?}");
        assert_eq!(expected.len(), 4);
    }
    assert!(matches!(s.get_json("dev", "dog", &ids, &["nope".into()]), Err(ServiceError::BadRequest(_))));
    assert!(matches!(s.get_json("dev", "cat", &ids, &["*".into()]), Err(ServiceError::NotFound(_))));
}

/// A `*` read takes the table's attribute names before it reads records; a write that commits
/// in between (a job finishing with its first `message`) brings names the read did not know.
/// Every path shows such a record whole, in the `*` order, rather than dropping fields.
#[test]
fn a_star_read_shows_attributes_added_after_it_took_the_names() {
    let meta = TableMeta { primary_key: "id".into(), attributes: ["id", "status"].iter().map(|a| a.to_string()).collect() };
    let star = Projection::new(&meta, &["*".into()]).expect("projection");
    let text = r#"{"id":"j","status":"COMPLETE","message":"done","__createdtime__":1,"__updatedtime__":2,"end_datetime":3}"#;
    let record: Value = serde_json::from_str(text).expect("record");
    let whole = r#"{"id":"j","__createdtime__":1,"__updatedtime__":2,"end_datetime":3,"message":"done","status":"COMPLETE"}"#;
    assert_eq!(star.json_from_raw(text.as_bytes()).expect("raw"), whole);
    assert_eq!(star.json_from_value(&record), whole);
    assert_eq!(serde_json::to_string(&star.apply(&record)).expect("text"), whole);
    // A named projection stays as asked.
    let named = Projection::new(&meta, &["status".into()]).expect("projection");
    assert_eq!(named.json_from_raw(text.as_bytes()).expect("raw"), r#"{"status":"COMPLETE"}"#);
}

/// The group commit (durable.rs): 64 concurrent unsynced writes each get a sequence number and
/// each `synced` returns (how many syncs they shared is timing, not asserted); every record is
/// stored and the last sync covers every write's number.
#[test]
fn unsynced_writes_all_become_durable() {
    let (_t, s) = open();
    s.create_table("dev", "dog", "id").expect("table");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let seqs = rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let (out, seq) = s.write_unsynced("dev", "dog", WriteMode::Insert, vec![json!({"id": i})]).expect("write");
                    assert_eq!(out.written, vec![json!(i)]);
                    let seq = seq.expect("a synced store returns a sequence number");
                    s.clone().synced(seq).await.expect("synced");
                    seq
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(tokio::time::timeout(std::time::Duration::from_secs(60), t).await.expect("in time").expect("task"));
        }
        seqs
    });
    assert!(s.group_synced() >= *seqs.iter().max().expect("seqs"));
    assert_eq!(s.get("dev", "dog", &(0..64).map(|i| json!(i)).collect::<Vec<_>>(), &[]).expect("get").len(), 64);
}

/// A waiter leading a sync may be dropped mid-sync (its request timed out): the next waiter
/// must still get its sync, not wait forever for one nobody runs.
#[test]
fn a_dropped_sync_leader_does_not_stop_the_next_sync() {
    let (_t, s) = open();
    s.create_table("dev", "dog", "id").expect("table");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (_, seq) = s.write_unsynced("dev", "dog", WriteMode::Insert, vec![json!({"id": 1})]).expect("write");
        let seq = seq.expect("seq");
        {
            // Polled once: it becomes the leader and starts the sync, then it is dropped.
            let mut leader = Box::pin(s.clone().synced(seq));
            let waker = std::task::Waker::noop();
            let _ = std::future::Future::poll(leader.as_mut(), &mut std::task::Context::from_waker(waker));
        }
        let (_, seq) = s.write_unsynced("dev", "dog", WriteMode::Insert, vec![json!({"id": 2})]).expect("write");
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), s.clone().synced(seq.expect("seq"))).await;
        assert!(matches!(next, Ok(Ok(()))), "the next sync ran");
    });
}

/// A small write on an async worker never waits for another write: it gives way (`Ok(None)`,
/// nothing written) while a bulk write holds the stripe or a slow write is in RocksDB's queue,
/// and writes once they are done.
#[test]
fn a_write_on_a_worker_gives_way_to_held_locks() {
    let (_t, s) = open();
    s.create_table("dev", "dog", "id").expect("table");
    let locks = s.locks("dev", "dog");
    let keys: Vec<Vec<u8>> = (0..STRIPES as i64 * 8).map(|i| keys::encoded(&json!(i))).collect();
    {
        let _held = locks.lock_keys(keys.iter());
        let attempt = s.try_write_unsynced("dev", "dog", WriteMode::Insert, vec![json!({"id": 7})]).expect("no error");
        assert!(attempt.is_none(), "gave way to the held stripe");
        assert!(s.get("dev", "dog", &[json!(7)], &[]).expect("get").is_empty(), "nothing written");
    }
    {
        // A synced or large write in flight holds RocksDB's write queue for its fsync: queued
        // behind it, the worker would wait as long.
        let _slow = s.slow_write(true).expect("counted");
        let attempt = s.try_write_unsynced("dev", "dog", WriteMode::Insert, vec![json!({"id": 7})]).expect("no error");
        assert!(attempt.is_none(), "gave way to a slow write in flight");
    }
    let attempt = s.try_write_unsynced("dev", "dog", WriteMode::Insert, vec![json!({"id": 7})]).expect("no error");
    let (out, seq) = attempt.expect("written once the stripe is free and no slow write is in flight");
    assert_eq!(out.written, vec![json!(7)]);
    assert!(seq.is_some());
    assert_eq!(s.get("dev", "dog", &[json!(7)], &[]).expect("get").len(), 1);
}

/// The answer cache's condition (answers.rs): every write, delete and schema change moves the
/// change count, and a version taken while nothing changes holds until one does.
#[test]
fn every_change_moves_the_change_count() {
    let (_t, s) = open();
    let settled = |s: &Storage| s.settled_version().expect("nothing under way");
    let changed = |what: &str, s: &Storage, before: u64| {
        assert!(!s.unchanged_since(before), "{what} did not move the change count");
        let now = settled(s);
        assert!(s.unchanged_since(now));
        now
    };
    let v = settled(&s);
    s.create_table("dev", "dog", "id").expect("create");
    let v = changed("create_table", &s, v);
    s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1, "name": "Penny"})]).expect("insert");
    let v = changed("insert", &s, v);
    s.get_json("dev", "dog", &[json!(1)], &[]).expect("get");
    assert!(s.unchanged_since(v), "a read is not a change");
    s.write("dev", "dog", WriteMode::Update, vec![json!({"id": 1, "age": 3})]).expect("update");
    let v = changed("update with a new attribute", &s, v);
    s.delete("dev", "dog", vec![json!(1)]).expect("delete");
    let v = changed("delete", &s, v);
    s.drop_table("dev", "dog").expect("drop");
    let v = changed("drop_table", &s, v);
    s.create_database("other").expect("create database");
    let v = changed("create_database", &s, v);
    s.drop_database("other").expect("drop database");
    changed("drop_database", &s, v);
}
