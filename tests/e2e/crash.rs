//! Crash safety: kill -9 during sustained inserts and during create/drop table; after restart every acknowledged write is present and every table is whole.
//!
//! The clients talk to the port directly (not through `Server`) because `Server::crash` takes
//! the server by value while they are still sending.

use opshost_tests::{basic, ok, post_raw, Server, ADMIN};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// POST as the super_user from a client thread; status 0 when the connection failed.
fn post_admin(url: &str, body: &Value) -> (u16, Value) {
    let (status, text) = post_raw(url, Some("application/json"), body.to_string().as_bytes(), Some(&basic(ADMIN.0, ADMIN.1)));
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Every primary key of `dev.<table>`, read through the primary-key index.
fn all_ids(server: &Server, table: &str) -> BTreeSet<i64> {
    let rows = ok(server, json!({"operation": "search_by_value", "database": "dev", "table": table, "attribute": "id", "value": "*", "get_attributes": ["id"]}));
    rows.as_array().expect("array").iter().map(|r| r["id"].as_i64().expect("numeric id")).collect()
}

fn record_count(server: &Server, table: &str) -> u64 {
    let d = ok(server, json!({"operation": "describe_table", "database": "dev", "table": table}));
    d["record_count"].as_u64().unwrap_or_else(|| panic!("record_count in {d}"))
}

/// Several rounds of: 4 client threads insert one record each per request (unique ids, the
/// durable default), the server is killed with SIGKILL mid-load, and restarted on the same
/// root. Every id that was answered 200 must be there; ids whose answer was lost may or may
/// not be; nothing else may be; and describe_table's count must match what a scan finds.
#[test]
fn kill_9_during_inserts_loses_no_acknowledged_write() {
    let mut server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "load", "primary_key": "id"}));
    let acked = Arc::new(Mutex::new(BTreeSet::<i64>::new()));
    let attempted = Arc::new(Mutex::new(BTreeSet::<i64>::new()));
    // Kill points vary: early in the load, and later once the memtable holds more.
    for (round, load_ms) in [700u64, 1500, 2600].into_iter().enumerate() {
        let url = server.url();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..4i64)
            .map(|thread| {
                let (url, stop, sent, acked, attempted) = (url.clone(), stop.clone(), sent.clone(), acked.clone(), attempted.clone());
                std::thread::spawn(move || {
                    let mut i = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        // Unique across rounds and threads.
                        let id = (round as i64) * 10_000_000 + thread * 1_000_000 + i;
                        i += 1;
                        attempted.lock().expect("lock").insert(id);
                        let body = json!({"operation": "insert", "database": "dev", "table": "load", "records": [{"id": id, "round": round, "thread": thread, "pad": "x".repeat(64)}]});
                        let (status, resp) = post_admin(&url, &body);
                        sent.fetch_add(1, Ordering::Relaxed);
                        if status == 200 && resp["inserted_hashes"] == json!([id]) {
                            acked.lock().expect("lock").insert(id);
                        } else if status == 0 {
                            // The server is gone: this request's outcome is unknown.
                            std::thread::sleep(Duration::from_millis(5));
                        } else {
                            panic!("insert {id} answered {status} {resp}");
                        }
                    }
                })
            })
            .collect();
        // Kill while the clients are sending: wait the round's time, and for at least some load.
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

        let acked = acked.lock().expect("lock").clone();
        let attempted = attempted.lock().expect("lock").clone();
        let found = all_ids(&server, "load");
        // Also by primary key, in chunks: the record itself, not only its index entry.
        let mut by_hash = 0;
        let ids: Vec<i64> = acked.iter().copied().collect();
        for chunk in ids.chunks(500) {
            let rows = ok(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "load", "hash_values": chunk, "get_attributes": ["id", "round", "pad"]}));
            let rows = rows.as_array().expect("array");
            for r in rows {
                assert_eq!(r["pad"], json!("x".repeat(64)), "a whole record: {r}");
            }
            by_hash += rows.len();
        }
        let count = record_count(&server, "load");
        eprintln!(
            "crash round {round}: acknowledged {}, found {} (by hash {by_hash}, in the table {}, attempted {}, describe_table record_count {count})",
            acked.len(),
            acked.intersection(&found).count(),
            found.len(),
            attempted.len()
        );
        assert!(!acked.is_empty(), "no insert was acknowledged before the kill");
        let lost: Vec<_> = acked.difference(&found).take(10).collect();
        assert!(lost.is_empty(), "acknowledged inserts lost after kill -9: {lost:?}");
        assert_eq!(by_hash, acked.len(), "search_by_hash finds every acknowledged id");
        let unknown: Vec<_> = found.difference(&attempted).take(10).collect();
        assert!(unknown.is_empty(), "records nobody inserted: {unknown:?}");
        assert_eq!(count, found.len() as u64, "describe_table's record_count matches the records a scan finds");
    }
    // Still writable after the crashes.
    let resp = ok(&server, json!({"operation": "insert", "database": "dev", "table": "load", "records": [{"id": -1}]}));
    assert_eq!(resp["inserted_hashes"], json!([-1]));
}

/// Kill -9 at several points of a create_table / insert / drop_table loop. After each
/// restart every table describe_all lists is whole (describe_table, a scan and
/// search_by_hash work and agree), a table untouched by the loop still has its records, and
/// every name the loop used can be dropped and created again.
#[test]
fn kill_9_during_create_and_drop_table_leaves_every_table_whole() {
    const NAMES: [&str; 3] = ["churn_a", "churn_b", "churn_c"];
    let mut server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "keep", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "keep", "records": (0..50).map(|i| json!({"id": i, "name": format!("k{i}")})).collect::<Vec<_>>()}));
    // Varied kill points, including very early ones (inside the first create_table).
    for (round, wait_ms) in [30u64, 170, 420, 90, 650, 250, 55, 900].into_iter().enumerate() {
        let url = server.url();
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicUsize::new(0));
        // Two clients, so a kill often lands inside a schema change; they share the names, so
        // a create can also race a drop of the same table.
        let churn: Vec<_> = (0..2usize)
            .map(|client| {
                let (url, stop, steps) = (url.clone(), stop.clone(), steps.clone());
                std::thread::spawn(move || {
                    let mut n = round + client;
                    while !stop.load(Ordering::Relaxed) {
                        let table = NAMES[n % NAMES.len()];
                        n += 1;
                        // Failures are expected here (the name may exist, the server may be
                        // gone); the checks after the restart are what matter.
                        let (status, _) = post_admin(&url, &json!({"operation": "create_table", "database": "dev", "table": table, "primary_key": "id"}));
                        if status == 0 {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        post_admin(&url, &json!({"operation": "insert", "database": "dev", "table": table, "records": [{"id": n, "name": "x"}, {"id": n + 1, "name": "y"}]}));
                        steps.fetch_add(1, Ordering::Relaxed);
                        if n % 2 == 0 {
                            post_admin(&url, &json!({"operation": "drop_table", "database": "dev", "table": table}));
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let root = server.crash();
        stop.store(true, Ordering::Relaxed);
        for c in churn {
            c.join().expect("churn thread");
        }
        server = Server::builder().root(root).start();

        let all = ok(&server, json!({"operation": "describe_all"}));
        let listed: Vec<(String, String)> = all
            .as_object()
            .expect("describe_all object")
            .iter()
            .flat_map(|(db, tables)| tables.as_object().expect("tables object").keys().map(move |t| (db.clone(), t.clone())))
            .collect();
        eprintln!("create/drop crash round {round} (killed after {wait_ms} ms, {} loop steps): tables {listed:?}", steps.load(Ordering::Relaxed));
        for (db, table) in &listed {
            let d = ok(&server, json!({"operation": "describe_table", "database": db, "table": table}));
            let key = d["hash_attribute"].as_str().unwrap_or_else(|| panic!("{db}.{table}: {d}")).to_string();
            let rows = ok(&server, json!({"operation": "search_by_value", "database": db, "table": table, "attribute": key, "value": "*", "get_attributes": ["*"]}));
            let rows = rows.as_array().expect("array");
            assert_eq!(d["record_count"], json!(rows.len()), "{db}.{table}: record_count matches a scan: {d}");
            let keys: Vec<Value> = rows.iter().map(|r| r[&key].clone()).collect();
            let by_hash = ok(&server, json!({"operation": "search_by_hash", "database": db, "table": table, "hash_values": keys, "get_attributes": ["*"]}));
            assert_eq!(by_hash.as_array().map(Vec::len), Some(rows.len()), "{db}.{table}: every scanned record is found by its key");
        }
        assert_eq!(all_ids(&server, "keep"), (0..50).collect::<BTreeSet<i64>>(), "the untouched table keeps its records");
        // Every name the loop used is usable again: drop it if it exists, then create, write,
        // read and drop it.
        for table in NAMES {
            if listed.iter().any(|(db, t)| db == "dev" && t == table) {
                ok(&server, json!({"operation": "drop_table", "database": "dev", "table": table}));
            }
            ok(&server, json!({"operation": "create_table", "database": "dev", "table": table, "primary_key": "id"}));
            assert_eq!(record_count(&server, table), 0, "dev.{table} re-created empty");
            ok(&server, json!({"operation": "insert", "database": "dev", "table": table, "records": [{"id": 1, "name": "again"}]}));
            assert_eq!(all_ids(&server, table), BTreeSet::from([1]), "dev.{table} re-created holds only its new record");
            ok(&server, json!({"operation": "drop_table", "database": "dev", "table": table}));
        }
    }
}
