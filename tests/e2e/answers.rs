//! The answer cache (issue 18) over real HTTP: a read answered again from the cache (marked by
//! `x-opshost-cache: hit`) only while nothing it read has changed — records, the catalog, the
//! configuration file (also edited by hand), the certificate store, the caller's role — never
//! for a write, a clock-reading operation or another caller, never stale under concurrent
//! writes, and not at all with `operationsApi.answerCache: false`.

use opshost_tests::{basic, ok, Server, TempRoot, ADMIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Status, JSON answer and whether it came from the cache.
fn ask(server: &Server, (user, pass): (&str, &str), body: &Value) -> (u16, Value, bool) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let req = agent.post(&server.url()).set("Content-Type", "application/json").set("Authorization", &basic(user, pass));
    let resp = match req.send_string(&body.to_string()) {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("{body}: {e}"),
    };
    let (status, hit) = (resp.status(), resp.header("x-opshost-cache") == Some("hit"));
    let text = resp.into_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), hit)
}

/// Asks twice: the first answer is made by a call, the second is the same answer kept.
fn made_then_kept(server: &Server, who: (&str, &str), body: &Value) -> Value {
    let (status, first, hit) = ask(server, who, body);
    assert_eq!((status, hit), (200, false), "{body} -> {first}");
    let (status, second, hit) = ask(server, who, body);
    assert_eq!((status, hit), (200, true), "{body} the second time -> {second}");
    assert_eq!(first, second);
    first
}

fn dog(id: u64) -> Value {
    json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [id], "get_attributes": ["*"]})
}

fn openssl_cert(dir: &Path, name: &str) -> String {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    run(&["req", "-x509", "-key", &key, "-subj", &format!("/CN={name}.example"), "-days", "30", "-out", &pem]);
    std::fs::read_to_string(dir.join(pem)).expect("pem")
}

#[test]
fn kept_answers_follow_every_change_they_depend_on() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "cat", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Penny"}]}));

    // Records: an update, a write to another table, a new attribute, a delete.
    let first = made_then_kept(&server, ADMIN, &dog(1));
    assert_eq!(first[0]["name"], "Penny");
    ok(&server, json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Harper"}]}));
    assert_eq!(made_then_kept(&server, ADMIN, &dog(1))[0]["name"], "Harper");
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "cat", "records": [{"id": 1}]}));
    let (_, _, hit) = ask(&server, ADMIN, &dog(1));
    assert!(!hit, "any write starts the store's kept answers over");
    ok(&server, json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 1, "age": 5}]}));
    assert_eq!(made_then_kept(&server, ADMIN, &dog(1))[0]["age"], 5);
    ok(&server, json!({"operation": "delete", "database": "dev", "table": "dog", "hash_values": [1]}));
    assert_eq!(made_then_kept(&server, ADMIN, &dog(1)), json!([]));
    // The catalog: the table dropped and made again with other records.
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Old"}]}));
    made_then_kept(&server, ADMIN, &dog(1));
    ok(&server, json!({"operation": "drop_table", "database": "dev", "table": "dog"}));
    let (status, _, hit) = ask(&server, ADMIN, &dog(1));
    assert!(status != 200 && !hit, "a dropped table's record is not answered from the cache");
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    assert_eq!(made_then_kept(&server, ADMIN, &dog(1)), json!([]));

    // Writes are never kept: the same insert twice is answered twice by the operation.
    let insert = json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 7}]});
    let (_, once, hit1) = ask(&server, ADMIN, &insert);
    let (_, twice, hit2) = ask(&server, ADMIN, &insert);
    assert!(!hit1 && !hit2);
    assert_eq!((once["inserted_hashes"].clone(), twice["skipped_hashes"].clone()), (json!([7]), json!([7])));
    // An operation that reads the clock and the machine is never kept.
    for _ in 0..2 {
        assert!(!ask(&server, ADMIN, &json!({"operation": "system_information"})).2);
    }
    // Nor a large request (a bulk body is not a repeated read, and is never hashed).
    let many = json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": (0..4000).collect::<Vec<_>>(), "get_attributes": ["id"]});
    for _ in 0..2 {
        let (status, answer, hit) = ask(&server, ADMIN, &many);
        assert_eq!((status, hit, answer.as_array().map(Vec::len)), (200, false, Some(1)));
    }
    // Nor a failed call.
    let missing = json!({"operation": "search_by_hash", "database": "dev", "table": "nosuch", "hash_values": [1], "get_attributes": ["*"]});
    for _ in 0..2 {
        let (status, _, hit) = ask(&server, ADMIN, &missing);
        assert!(status != 200 && !hit);
    }

    // The configuration: set_configuration, then an edit of the file by hand.
    let config = json!({"operation": "get_configuration"});
    made_then_kept(&server, ADMIN, &config);
    ok(&server, json!({"operation": "set_configuration", "logging_level": "debug"}));
    assert_eq!(made_then_kept(&server, ADMIN, &config)["logging"]["level"], "debug");
    let path = server.root().join("opshost-config.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.contains("level: debug"), "{text}");
    std::fs::write(&path, text.replace("level: debug", "level: warn")).expect("edit");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer, _) = ask(&server, ADMIN, &config);
        if answer["logging"]["level"] == "warn" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a hand edit never showed: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The certificate store.
    let list = json!({"operation": "list_certificates"});
    let names = |v: &Value| v.as_array().expect("list").iter().map(|c| c["name"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    let before = names(&made_then_kept(&server, ADMIN, &list));
    let dir = TempRoot::new();
    let pem = openssl_cert(dir.path(), "kept");
    ok(&server, json!({"operation": "add_certificate", "name": "kept", "certificate": pem, "is_authority": true}));
    let after = names(&made_then_kept(&server, ADMIN, &list));
    assert!(after.contains(&"kept".to_string()) && !before.contains(&"kept".to_string()), "{after:?}");
    ok(&server, json!({"operation": "remove_certificate", "name": "kept"}));
    assert_eq!(names(&made_then_kept(&server, ADMIN, &list)), before);
}

#[test]
fn kept_answers_are_per_caller_and_role() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Penny", "secret": "s"}]}));
    let read_only = |read: bool| json!({"super_user": false, "dev": {"tables": {"dog": {"read": read, "insert": false, "update": false, "delete": false, "attribute_permissions": []}}}});
    ok(&server, json!({"operation": "add_role", "role": "reader", "permission": read_only(true)}));
    ok(&server, json!({"operation": "add_user", "username": "rita", "password": "rita-pass", "role": "reader", "active": true}));
    ok(&server, json!({"operation": "add_user", "username": "root2", "password": "root2-pass", "role": "super_user", "active": true}));
    const RITA: (&str, &str) = ("rita", "rita-pass");

    made_then_kept(&server, ADMIN, &dog(1));
    // Another super_user asking the same thing is not given admin's kept answer.
    let (status, _, hit) = ask(&server, ("root2", "root2-pass"), &dog(1));
    assert_eq!((status, hit), (200, false));
    assert_eq!(made_then_kept(&server, RITA, &dog(1))[0]["name"], "Penny");
    // The role loses read: refused at once, not answered from the cache.
    let roles = ok(&server, json!({"operation": "list_roles"}));
    let id = roles.as_array().expect("roles").iter().find(|r| r["role"] == "reader").expect("reader")["id"].clone();
    ok(&server, json!({"operation": "alter_role", "id": id, "role": "reader", "permission": read_only(false)}));
    let (status, answer, hit) = ask(&server, RITA, &dog(1));
    assert!(status == 403 && !hit, "{status} {answer}");
    // Attribute rules narrow `*`: a new role with them gets its own answer.
    ok(&server, json!({"operation": "alter_role", "id": id, "role": "reader", "permission":
        {"super_user": false, "dev": {"tables": {"dog": {"read": true, "insert": false, "update": false, "delete": false,
        "attribute_permissions": [{"attribute_name": "name", "read": true, "insert": false, "update": false}]}}}}}));
    let narrowed = made_then_kept(&server, RITA, &dog(1));
    assert!(narrowed[0].get("secret").is_none() && narrowed[0]["name"] == "Penny", "{narrowed}");
    // A wrong password is refused before the cache is looked at.
    assert_eq!(ask(&server, ("rita", "wrong"), &dog(1)).0, 401);
}

#[test]
fn no_kept_answer_is_older_than_an_acknowledged_write() {
    let server = Arc::new(Server::start());
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1, "n": 0}]}));
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (server, acked, done) = (server.clone(), acked.clone(), done.clone());
            std::thread::spawn(move || {
                let mut hits = 0;
                while !done.load(Ordering::SeqCst) {
                    let floor = acked.load(Ordering::SeqCst);
                    let (status, answer, hit) = ask(&server, ADMIN, &dog(1));
                    assert_eq!(status, 200, "{answer}");
                    let n = answer[0]["n"].as_u64().expect("n");
                    assert!(n >= floor, "read {n} after write {floor} was acknowledged (from the cache: {hit})");
                    hits += usize::from(hit);
                }
                hits
            })
        })
        .collect();
    for n in 1..=200u64 {
        ok(&server, json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 1, "n": n}]}));
        acked.store(n, Ordering::SeqCst);
        if n % 20 == 0 {
            // Pauses in which readers can keep an answer and be given it.
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    done.store(true, Ordering::SeqCst);
    let hits: usize = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    assert!(hits > 0, "the readers were never answered from the cache");
    // The readers may already have kept the last answer; either way it is the last write's.
    for _ in 0..2 {
        assert_eq!(ask(&server, ADMIN, &dog(1)).1[0]["n"], 200);
    }
    assert!(ask(&server, ADMIN, &dog(1)).2, "a settled answer is kept");
}

#[test]
fn answer_cache_can_be_turned_off() {
    let server = Server::builder().env("OPERATIONSAPI_ANSWERCACHE", "false").start();
    for body in [json!({"operation": "get_configuration"}), json!({"operation": "list_certificates"})] {
        for _ in 0..3 {
            let (status, _, hit) = ask(&server, ADMIN, &body);
            assert_eq!((status, hit), (200, false), "{body}");
        }
    }
}
