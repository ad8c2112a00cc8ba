//! The audit log: every insert, update, upsert, delete (also SQL writes and
//! delete_records_before) is recorded with its user, read with `read_audit_log` in HarperDB's
//! shapes, trimmed by `delete_audit_logs_before` and by the retention, and never separated from
//! its change by a kill -9.

use opshost_tests::{basic, err, ok, post_raw, Server, ADMIN, USER};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AUDITOR: (&str, &str) = ("auditor", "auditor-pass");

fn read(server: &Server, extra: Value) -> Value {
    let mut body = json!({"operation": "read_audit_log", "schema": "dev", "table": "dog"});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    ok(server, body)
}

fn ops(entries: &Value) -> Vec<(String, String, Value)> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("a list: {entries}"))
        .iter()
        .map(|e| (e["operation"].as_str().unwrap_or_default().to_string(), e["user_name"].as_str().unwrap_or_default().to_string(), e["hash_values"].clone()))
        .collect()
}

/// Polls `get_job` until the job has finished (60 s at most).
fn wait_job(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = ok(server, json!({"operation": "get_job", "id": id}))[0].clone();
        if job["status"] == "COMPLETE" || job["status"] == "ERROR" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} unfinished after 60 s: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_write_is_audited_with_its_user_in_harpers_shapes() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "add_user", "role": "super_user", "username": AUDITOR.0, "password": AUDITOR.1, "active": true}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Penny"}, {"id": 2, "name": "Harper"}]}));
    let (status, _) = server.post_as(AUDITOR, json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 1, "age": 5}]}));
    assert_eq!(status, 200);
    ok(&server, json!({"operation": "upsert", "database": "dev", "table": "dog", "records": [{"id": 3, "name": "Alby"}]}));
    ok(&server, json!({"operation": "delete", "database": "dev", "table": "dog", "hash_values": [2]}));
    ok(&server, json!({"operation": "sql", "sql": "UPDATE dev.dog SET age = 9 WHERE id = 3"}));
    ok(&server, json!({"operation": "sql", "sql": "DELETE FROM dev.dog WHERE id = 3"}));
    // A skipped write (the key exists) records nothing.
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1}]}));

    let all = read(&server, json!({}));
    let admin = ADMIN.0.to_string();
    assert_eq!(
        ops(&all),
        vec![
            ("insert".into(), admin.clone(), json!([1, 2])),
            ("update".into(), AUDITOR.0.to_string(), json!([1])),
            ("upsert".into(), admin.clone(), json!([3])),
            ("delete".into(), admin.clone(), json!([2])),
            ("update".into(), admin.clone(), json!([3])),
            ("delete".into(), admin.clone(), json!([3])),
        ],
        "{all}"
    );
    let entries = all.as_array().expect("list");
    // HarperDB's entry: the records after (a deleted one is null), and the records before.
    let update = &entries[1];
    for key in ["operation", "user_name", "timestamp", "hash_values", "records", "original_records"] {
        assert!(update.get(key).is_some(), "update entry lacks {key}: {update}");
    }
    assert_eq!((update["records"][0]["name"].clone(), update["records"][0]["age"].clone()), (json!("Penny"), json!(5)));
    assert!(update["records"][0]["__updatedtime__"].is_number());
    assert_eq!(update["original_records"][0]["name"], "Penny");
    assert!(update["original_records"][0].get("age").is_none(), "{update}");
    assert_eq!(entries[0]["records"][1]["name"], "Harper");
    assert!(entries[0].get("original_records").is_none(), "an insert has nothing before: {}", entries[0]);
    assert_eq!(entries[3]["records"], json!([null]));
    assert_eq!(entries[3]["original_records"][0]["name"], "Harper");
    let times: Vec<f64> = entries.iter().map(|e| e["timestamp"].as_f64().expect("timestamp")).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "oldest first, distinct: {times:?}");

    // By time: [from] is everything since, [from, to] a closed range.
    assert_eq!(read(&server, json!({"search_type": "timestamp", "search_values": [times[3]]})).as_array().map(Vec::len), Some(3));
    assert_eq!(ops(&read(&server, json!({"search_type": "timestamp", "search_values": [times[1], times[2]]}))).len(), 2);
    assert_eq!(read(&server, json!({"search_type": "timestamp", "search_values": []})).as_array().map(Vec::len), Some(6));
    // By user: an object keyed by the user; users without entries are left out (as HarperDB).
    let by_user = read(&server, json!({"search_type": "username", "search_values": [AUDITOR.0, "nobody"]}));
    assert_eq!(by_user.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec![AUDITOR.0.to_string()]), "{by_user}");
    assert_eq!(by_user[AUDITOR.0][0]["operation"], "update");
    // By primary key: keyed by the value as text, each entry narrowed to that key.
    let by_key = read(&server, json!({"search_type": "hash_value", "search_values": [2, 99]}));
    assert_eq!(by_key["99"], json!([]));
    let two = by_key["2"].as_array().expect("entries of 2");
    assert_eq!(two.iter().map(|e| e["operation"].clone()).collect::<Vec<_>>(), vec![json!("insert"), json!("delete")]);
    assert_eq!(two[0]["hash_values"], json!([2]));
    assert_eq!(two[0]["records"], json!([{"id": 2, "name": "Harper", "__createdtime__": two[0]["records"][0]["__createdtime__"], "__updatedtime__": two[0]["records"][0]["__updatedtime__"]}]));

    // describe_table shows the log, as HarperDB does.
    let d = ok(&server, json!({"operation": "describe_table", "database": "dev", "table": "dog"}));
    assert_eq!(d["audit"], true, "{d}");
    assert!(d["db_audit_size"].as_u64().is_some_and(|n| n > 0), "{d}");
    let all_dbs = ok(&server, json!({"operation": "describe_all"}));
    assert_eq!(all_dbs["dev"]["dog"]["audit"], true);

    // HarperDB's texts; bad input is a 400 (HarperDB: 500), an unknown table a 404.
    assert_eq!(err(&server, json!({"operation": "read_audit_log", "schema": "dev", "table": "dog", "search_type": "bogus", "search_values": [1]})), (400, "Invalid searchType 'bogus'".into()));
    assert_eq!(err(&server, json!({"operation": "read_audit_log", "schema": "dev"})), (400, "table is required".into()));
    assert_eq!(err(&server, json!({"operation": "read_audit_log", "schema": "dev", "table": "nosuch"})), (404, "Table 'dev.nosuch' does not exist".into()));
    // Super users only.
    let (status, body) = server.post_as(USER, json!({"operation": "read_audit_log", "schema": "dev", "table": "dog"}));
    assert_eq!(status, 403, "{body}");

    // Dropping the table drops its log: a table created again under the name starts empty.
    ok(&server, json!({"operation": "drop_table", "database": "dev", "table": "dog"}));
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    assert_eq!(read(&server, json!({})), json!([]));
}

#[test]
fn delete_records_before_and_delete_audit_logs_before_are_jobs_on_the_log() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": (0..5).map(|i| json!({"id": i})).collect::<Vec<_>>()}));
    std::thread::sleep(Duration::from_millis(20));
    let job = ok(&server, json!({"operation": "delete_records_before", "date": "2100-01-01", "schema": "dev", "table": "dog"}));
    assert_eq!(wait_job(&server, job["job_id"].as_str().expect("job id"))["status"], "COMPLETE");
    let log = read(&server, json!({}));
    assert_eq!(ops(&log).iter().map(|(op, _, _)| op.clone()).collect::<Vec<_>>(), vec!["insert", "delete"], "{log}");
    assert_eq!(log[1]["original_records"].as_array().map(Vec::len), Some(5));
    let cut = log[1]["timestamp"].as_f64().expect("timestamp");

    // Entries older than the timestamp go; the job says so in HarperDB's words.
    let started = ok(&server, json!({"operation": "delete_audit_logs_before", "schema": "dev", "table": "dog", "timestamp": cut}));
    let id = started["job_id"].as_str().expect("job id");
    assert_eq!(started["message"], format!("Starting job with id {id}"));
    let job = wait_job(&server, id);
    assert_eq!((job["status"].clone(), job["message"].clone()), (json!("COMPLETE"), json!(format!("Successfully completed job: {id}"))), "{job}");
    let left = read(&server, json!({}));
    assert_eq!(ops(&left).iter().map(|(op, _, _)| op.clone()).collect::<Vec<_>>(), vec!["delete"], "{left}");

    assert_eq!(err(&server, json!({"operation": "delete_audit_logs_before", "schema": "dev", "table": "dog"})), (400, "'timestamp' is required".into()));
    assert_eq!(err(&server, json!({"operation": "delete_audit_logs_before", "schema": "dev", "table": "dog", "timestamp": "abc"})), (400, "'timestamp' is invalid".into()));
    assert_eq!(err(&server, json!({"operation": "delete_audit_logs_before", "schema": "dev", "table": "nosuch", "timestamp": 1})), (400, "Table 'dev.nosuch' does not exist".into()));
    assert_eq!(server.post_as(USER, json!({"operation": "delete_audit_logs_before", "schema": "dev", "table": "dog", "timestamp": 1})).0, 403);
}

#[test]
fn retention_removes_old_entries_in_the_background() {
    let server = Server::builder().env("LOGGING_AUDITRETENTION", "2s").start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1}]}));
    assert_eq!(read(&server, json!({})).as_array().map(Vec::len), Some(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    while read(&server, json!({})) != json!([]) {
        assert!(Instant::now() < deadline, "the entry outlived a 2 s retention by a minute");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The record itself stays.
    assert_eq!(ok(&server, json!({"operation": "search_by_hash", "schema": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["id"]})), json!([{"id": 1}]));
}

#[test]
fn audit_log_off_records_nothing_and_says_so() {
    let server = Server::builder().env("LOGGING_AUDITLOG", "false").start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1}]}));
    let d = ok(&server, json!({"operation": "describe_table", "database": "dev", "table": "dog"}));
    assert_eq!((d["audit"].clone(), d["db_audit_size"].clone()), (json!(false), json!(0)), "{d}");
    assert_eq!(read(&server, json!({})), json!([]));
}

/// Kill -9 while clients insert and delete: after the restart, the records the table holds
/// are exactly those the audit log says were inserted and not deleted, and every change the
/// clients saw acknowledged has its entry. A change and its entry share one RocksDB write
/// batch, so neither can exist without the other.
#[test]
fn kill_9_never_separates_a_change_from_its_audit_entry() {
    let mut server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    let acked = Arc::new(std::sync::Mutex::new(BTreeSet::<i64>::new()));
    for (round, load_ms) in [600u64, 1800].into_iter().enumerate() {
        let url = server.url();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..3i64)
            .map(|thread| {
                let (url, stop, sent, acked) = (url.clone(), stop.clone(), sent.clone(), acked.clone());
                std::thread::spawn(move || {
                    let auth = basic(ADMIN.0, ADMIN.1);
                    let mut i = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = (round as i64) * 10_000_000 + thread * 1_000_000 + i;
                        i += 1;
                        let insert = json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": id, "pad": "x".repeat(64)}]});
                        let (status, _) = post_raw(&url, Some("application/json"), insert.to_string().as_bytes(), Some(&auth));
                        sent.fetch_add(1, Ordering::Relaxed);
                        if status == 200 {
                            acked.lock().expect("lock").insert(id);
                        } else {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        // Every third record is deleted again: deletes are audited too.
                        if id % 3 == 0 {
                            let delete = json!({"operation": "delete", "database": "dev", "table": "dog", "hash_values": [id]});
                            post_raw(&url, Some("application/json"), delete.to_string().as_bytes(), Some(&auth));
                        }
                    }
                })
            })
            .collect();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(load_ms) || sent.load(Ordering::Relaxed) < 20 {
            assert!(started.elapsed() < Duration::from_secs(30), "the clients made no progress");
            std::thread::sleep(Duration::from_millis(10));
        }
        let root = server.crash();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client thread");
        }
        server = Server::builder().root(root).start();

        let rows = ok(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "id", "value": "*", "get_attributes": ["id"]}));
        let held: BTreeSet<i64> = rows.as_array().expect("rows").iter().map(|r| r["id"].as_i64().expect("id")).collect();
        let log = read(&server, json!({}));
        let (mut inserted, mut deleted) = (BTreeSet::new(), BTreeSet::new());
        for (op, _, keys) in ops(&log) {
            let keys = keys.as_array().expect("hash_values").iter().map(|k| k.as_i64().expect("id")).collect::<Vec<_>>();
            match op.as_str() {
                "insert" => inserted.extend(keys),
                "delete" => deleted.extend(keys),
                other => panic!("unexpected {other}"),
            }
        }
        let expected: BTreeSet<i64> = inserted.difference(&deleted).copied().collect();
        eprintln!("audit crash round {round}: {} records, {} inserts and {} deletes in the log, {} acknowledged", held.len(), inserted.len(), deleted.len(), acked.lock().expect("lock").len());
        assert_eq!(held, expected, "the table holds exactly what its audit log says");
        let acked = acked.lock().expect("lock").clone();
        let missing: Vec<_> = acked.difference(&inserted).take(10).collect();
        assert!(missing.is_empty(), "acknowledged inserts without an audit entry: {missing:?}");
        assert!(!acked.is_empty());
    }
}
