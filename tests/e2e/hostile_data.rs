//! Hostile data and queries against the storage layer: integer keys beyond 2^53, attribute
//! write permissions, sorts and scans that must stay bounded (memory, worker time, callTimeout),
//! and bulk writes that must not stall other tables. (Condition DAGs, orphan column families
//! and per-table stripes are covered deterministically by host unit tests.)

use opshost_tests::{err, ok, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Finding 9: an integer key f64 cannot hold exactly is refused with a 400 naming the key;
/// the neighbour it used to collide with is untouched.
#[test]
fn integer_keys_beyond_2_pow_53_are_refused_not_merged() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 9007199254740992u64, "name": "b"}]}));
    for op in ["insert", "upsert", "update"] {
        let (status, text) = err(&server, json!({"operation": op, "database": "dev", "table": "dog", "records": [{"id": 9007199254740993u64, "name": "a"}]}));
        assert_eq!(status, 400, "{op}: {text}");
        assert!(text.contains("primary key 'id' value 9007199254740993"), "{op}: {text}");
    }
    let found = ok(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [9007199254740993u64, 9007199254740992u64], "get_attributes": ["id", "name"]}));
    assert_eq!(found, json!([{"id": 9007199254740992u64, "name": "b"}]));
}

/// Finding 11: attribute-level insert/update flags are enforced, with HarperDB's 403 body.
#[test]
fn attribute_insert_and_update_permissions_are_enforced() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "emp", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "emp", "records": [{"id": 1, "name": "a", "salary": 100}]}));
    ok(&server, json!({"operation": "add_role", "role": "clerk", "permission": {"dev": {"tables": {"emp": {"read": true, "insert": true, "update": true, "delete": false,
        "attribute_permissions": [{"attribute_name": "name", "read": true, "insert": true, "update": true},
                                  {"attribute_name": "salary", "read": false, "insert": true, "update": false}]}}}}}));
    ok(&server, json!({"operation": "add_user", "username": "clerk", "password": "pw", "role": "clerk", "active": true}));
    let clerk = ("clerk", "pw");
    let (status, body) = server.post_as(clerk, json!({"operation": "update", "database": "dev", "table": "emp", "records": [{"id": 1, "salary": 1}]}));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["unauthorized_access"], json!([{"schema": "dev", "table": "emp", "required_table_permissions": [],
        "required_attribute_permissions": [{"attribute_name": "salary", "required_permissions": ["update"]}]}]), "{body}");
    // Upsert needs both; an attribute the role does not list at all carries no permission.
    let (status, body) = server.post_as(clerk, json!({"operation": "upsert", "database": "dev", "table": "emp", "records": [{"id": 2, "name": "x", "salary": 5, "bonus": 1}]}));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["unauthorized_access"][0]["required_attribute_permissions"], json!([
        {"attribute_name": "salary", "required_permissions": ["update"]},
        {"attribute_name": "bonus", "required_permissions": ["update", "insert"]}]), "{body}");
    // What the role may do still works, and the salary was never written.
    assert_eq!(server.post_as(clerk, json!({"operation": "update", "database": "dev", "table": "emp", "records": [{"id": 1, "name": "b"}]})).0, 200);
    assert_eq!(server.post_as(clerk, json!({"operation": "insert", "database": "dev", "table": "emp", "records": [{"id": 3, "name": "c", "salary": 7}]})).0, 200);
    let rows = ok(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "emp", "hash_values": [1], "get_attributes": ["name", "salary"]}));
    assert_eq!(rows, json!([{"name": "b", "salary": 100}]));
}

const ROWS: u64 = 101_000;

/// `dev.big`: ROWS records of about 250 bytes.
fn big_table(server: &Server) {
    ok(server, json!({"operation": "create_table", "database": "dev", "table": "big", "primary_key": "id"}));
    let pad = "p".repeat(200);
    for start in (0..ROWS).step_by(20_200) {
        let records: Vec<Value> = (start..(start + 20_200).min(ROWS)).map(|i| json!({"id": i, "name": format!("n{}", (i * 7919) % ROWS), "pad": pad})).collect();
        ok(server, json!({"operation": "insert", "database": "dev", "table": "big", "records": records}));
    }
}

fn timed(server: &Server, body: Value) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, resp) = server.post(body);
    (status, resp, started.elapsed())
}

/// Findings 6, 7 and 24 on one loaded table: a sort with a limit answers from a bounded heap,
/// one without a limit past the bound is a 400; a bulk write does not stall other tables or
/// the user store; scans that match nothing end at callTimeout while the API stays responsive.
#[test]
fn sorts_scans_and_bulk_writes_stay_bounded() {
    let server = Server::start();
    big_table(&server);

    // 6: ORDER BY ... LIMIT answers the right row; without a limit it is refused, not buffered.
    let top = ok(&server, json!({"operation": "sql", "sql": "SELECT id, name FROM dev.big ORDER BY name DESC LIMIT 2"}));
    let mut names: Vec<String> = (0..ROWS).map(|i| format!("n{i}")).collect();
    names.sort();
    assert_eq!(top.as_array().map(|a| a.iter().map(|r| r["name"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>()),
        Some(vec![names[names.len() - 1].clone(), names[names.len() - 2].clone()]));
    let (status, text) = err(&server, json!({"operation": "search_by_conditions", "database": "dev", "table": "big", "get_attributes": ["id"],
        "conditions": [{"attribute": "id", "comparator": "greater_than_equal", "value": 0}], "sort": {"attribute": "name"}}));
    assert_eq!(status, 400, "{text}");
    assert!(text.starts_with("a sorted search may hold at most 100000 rows"), "{text}");

    // 24: while bulk writes to dev.big run, other tables and add_user answer.
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "other", "primary_key": "id"}));
    let url_server = &server;
    std::thread::scope(|scope| {
        let bulk = scope.spawn(move || {
            for round in 0..3 {
                // Every key exists: the batch locks every stripe of dev.big, reads and parses each record.
                let records: Vec<Value> = (0..ROWS).map(|i| json!({"id": i})).collect();
                let (status, body) = url_server.post(json!({"operation": "insert", "database": "dev", "table": "big", "records": records}));
                assert_eq!(status, 200, "round {round}: {body}");
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..5 {
            let (status, body, took) = timed(&server, json!({"operation": "insert", "database": "dev", "table": "other", "records": [{"id": i}]}));
            assert_eq!(status, 200, "{body}");
            assert!(took < Duration::from_secs(5), "insert into another table took {took:?}");
        }
        let (status, body, took) = timed(&server, json!({"operation": "add_role", "role": "r", "permission": {"dev": {"tables": {"other": {"read": true}}}}}));
        assert_eq!(status, 200, "{body}");
        assert!(took < Duration::from_secs(5), "add_role took {took:?}");
        let (status, body, took) = timed(&server, json!({"operation": "add_user", "username": "u", "password": "pw", "role": "r", "active": true}));
        assert_eq!(status, 200, "{body}");
        assert!(took < Duration::from_secs(5), "add_user took {took:?}");
        bulk.join().expect("bulk writer");
    });

    // 7: with a short callTimeout, scans that match nothing end with a 500 at the limit, and
    // get_configuration answers promptly meanwhile (the scans hold no async worker).
    let (_, root) = server.stop_keeping_root();
    let server = Server::builder().root(root).env("OPERATIONSAPI_LIMITS_CALLTIMEOUT", "1000").start();
    // 2,000 `contains` per record: a full scan is tens of seconds of host work.
    let conditions: Vec<Value> = (0..2000).map(|i| json!({"attribute": "pad", "comparator": "contains", "value": format!("nomatch{i}")})).collect();
    let scans = [
        json!({"operation": "search_by_value", "database": "dev", "table": "big", "attribute": "pad", "value": "*nomatch*", "get_attributes": ["*"]}),
        json!({"operation": "search_by_conditions", "database": "dev", "table": "big", "operator": "or", "get_attributes": ["*"], "conditions": conditions.clone()}),
        json!({"operation": "search_by_conditions", "database": "dev", "table": "big", "operator": "or", "get_attributes": ["*"], "conditions": conditions}),
    ];
    std::thread::scope(|scope| {
        let running: Vec<_> = scans.iter().skip(1).map(|body| {
            let server = &server;
            scope.spawn(move || timed(server, body.clone()))
        }).collect();
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..5 {
            let (status, body, took) = timed(&server, json!({"operation": "get_configuration"}));
            assert_eq!(status, 200, "{body}");
            assert!(took < Duration::from_secs(3), "get_configuration took {took:?} during the scans");
        }
        for scan in running {
            let (status, body, took) = scan.join().expect("scan");
            assert_eq!(status, 500, "{body}");
            assert!(body["error"].as_str().is_some_and(|e| e.contains("ran past its time limit")), "{body}");
            assert!(took < Duration::from_secs(15), "the scan ran {took:?}, past its 1 s limit");
        }
    });
    // The plain wildcard scan of the brief: it either finishes or ends at the limit, never hangs.
    let (status, body, took) = timed(&server, scans[0].clone());
    assert!(status == 200 || (status == 500 && body["error"].as_str().is_some_and(|e| e.contains("ran past its time limit"))), "{status} {body}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}
