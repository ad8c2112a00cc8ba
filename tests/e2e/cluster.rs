//! Clustering: three opshost nodes replicating through a real 3-server NATS JetStream cluster
//! on loopback. A write on any node is read on every other, conflicting writes converge to the
//! same bytes everywhere, a node killed with SIGKILL catches up from its stored stream position, a
//! NATS server killed mid-load loses no acknowledged write, and subscriptions filter per table.

use opshost_tests::nats::NatsCluster;
use opshost_tests::{basic, encode_base64, ok, post_raw, test_guest, Server, ServerBuilder, TempRoot, ADMIN};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Generous: replication is milliseconds, but two noisy cores and JetStream's leader
/// elections after a kill can take seconds.
const CONVERGE: Duration = Duration::from_secs(60);

/// The NATS servers a test uses: the run's shared cluster (`cargo xtask test` starts it), or
/// one of its own when run without it. Each test uses its own stream, so tests never see each
/// other's changes.
struct Nats {
    urls: String,
    stream: String,
    _own: Option<NatsCluster>,
}

impl Nats {
    fn shared() -> Self {
        match std::env::var("OPSHOST_TEST_NATS_URLS") {
            Ok(urls) => Self { urls, stream: unique_stream(), _own: None },
            Err(_) => Self::own(),
        }
    }

    fn own() -> Self {
        let cluster = NatsCluster::start(3);
        Self { urls: cluster.urls(), stream: unique_stream(), _own: Some(cluster) }
    }
}

fn unique_stream() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("T{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

fn node_builder(urls: &str, stream: &str, name: &str) -> ServerBuilder {
    Server::builder()
        // Generous: on two noisy cores a write's JetStream round trip can take seconds, and a
        // slow one must end in the clustering 503 (publishTimeout), not a call-timeout 500.
        .env("OPERATIONSAPI_LIMITS_CALLTIMEOUT", "60000")
        .env("CLUSTERING_ENABLED", "true")
        .env("CLUSTERING_NODENAME", name)
        .env("CLUSTERING_NATS_SERVERS", urls)
        .env("CLUSTERING_NATS_REPLICAS", "3")
        .env("CLUSTERING_NATS_STREAM", stream)
}

fn node(nats: &Nats, name: &str) -> Server {
    node_builder(&nats.urls, &nats.stream, name).start()
}

/// A request that must succeed, sent again while it answers the clustering 503 (written here,
/// JetStream slow to acknowledge on a loaded machine) until the deadline. After a 503 the
/// change is already made here, so a repeat refused with a 4xx (`already exists`, `does not
/// exist`) confirms it; the callers' convergence checks then prove it replicated.
fn ok_replicated(server: &Server, body: Value) -> Value {
    let deadline = Instant::now() + CONVERGE;
    let mut unavailable = false;
    loop {
        let (status, resp) = server.post(body.clone());
        if status == 503 && Instant::now() < deadline {
            assert!(resp["error"].as_str().is_some_and(|e| e.contains("clustering")), "a 503 names clustering: {resp}");
            unavailable = true;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        if unavailable && (400..500).contains(&status) {
            return resp;
        }
        assert_eq!(status, 200, "{body} -> {resp}");
        return resp;
    }
}

fn get(server: &Server, table: &str, id: Value) -> Option<Value> {
    let rows = ok(server, json!({"operation": "search_by_hash", "database": "dev", "table": table, "hash_values": [id], "get_attributes": ["*"]}));
    rows.as_array().expect("array").first().cloned()
}

/// Every record of `dev.<table>`, sorted by id, with all attributes.
fn all(server: &Server, table: &str) -> Vec<Value> {
    let rows = ok(server, json!({"operation": "search_by_value", "database": "dev", "table": table, "attribute": "id", "value": "*", "get_attributes": ["*"]}));
    let mut rows = rows.as_array().expect("array").clone();
    rows.sort_by_key(|r| r["id"].to_string());
    rows
}

/// Polls until `check` holds, panicking with `what` and the last value after the deadline.
fn eventually<T: std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> T, check: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let value = probe();
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:?} after {CONVERGE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`eventually`] on one node, whose clustering log lines are in the panic if it never holds
/// (a change a node failed to apply is only in its log).
fn eventually_on<T: std::fmt::Debug>(node: &Server, what: &str, probe: impl FnMut() -> T, check: impl Fn(&T) -> bool) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| eventually(what, probe, check))) {
        Ok(value) => value,
        Err(panic) => {
            let log = node.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("clustering")).collect();
            eprintln!("{what}: the node's clustering log lines:\n{}", lines.join("\n"));
            std::panic::resume_unwind(panic)
        }
    }
}

fn has_table(server: &Server, table: &str) -> bool {
    server.post(json!({"operation": "describe_table", "database": "dev", "table": table})).0 == 200
}

#[test]
fn a_write_on_any_node_is_read_on_every_other() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    ok_replicated(&nodes[0], json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    for n in &nodes[1..] {
        eventually("the table reaches every node", || has_table(n, "dog"), |t| *t);
    }
    for (i, n) in nodes.iter().enumerate() {
        ok_replicated(n, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": i, "name": format!("dog {i}"), "from": i}]}));
    }
    for n in &nodes {
        eventually("every insert reaches every node", || all(n, "dog").len(), |len| *len == 3);
    }
    // Update on one, delete on another: every node ends with the same bytes.
    ok_replicated(&nodes[1], json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 0, "name": "renamed on b"}]}));
    ok_replicated(&nodes[2], json!({"operation": "delete", "database": "dev", "table": "dog", "ids": [1]}));
    let want = |rows: &Vec<Value>| rows.len() == 2 && rows[0]["name"] == "renamed on b";
    let on_a = eventually("update and delete reach node a", || all(&nodes[0], "dog"), want);
    for n in &nodes[1..] {
        eventually("every node holds the same records", || all(n, "dog"), |rows| *rows == on_a);
    }
    assert_eq!(on_a[0]["from"], 0, "an update keeps the attributes it did not name: {on_a:?}");
    // Users and roles replicate: a role and a user made on c log in on a, with the role's
    // permissions (read on dev.dog, nothing else).
    let permission = json!({"super_user": false, "dev": {"tables": {"dog": {"read": true, "insert": false, "update": false, "delete": false, "attribute_permissions": []}}}});
    ok_replicated(&nodes[2], json!({"operation": "add_role", "role": "reader", "permission": permission}));
    ok_replicated(&nodes[2], json!({"operation": "add_user", "username": "replicated", "password": "repl-pass", "role": "reader", "active": true}));
    let read = json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [0], "get_attributes": ["id"]});
    eventually("the user logs in on a", || nodes[0].post_as(("replicated", "repl-pass"), read.clone()).0, |s| *s == 200);
    let write = json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 9}]});
    assert_eq!(nodes[0].post_as(("replicated", "repl-pass"), write).0, 403, "the replicated role's permissions hold on a");
    // Schema: a dropped table goes everywhere; a new database too.
    ok_replicated(&nodes[2], json!({"operation": "create_database", "database": "other"}));
    ok_replicated(&nodes[1], json!({"operation": "drop_table", "database": "dev", "table": "dog"}));
    for n in &nodes {
        eventually("drop_table reaches every node", || has_table(n, "dog"), |t| !*t);
        eventually(
            "create_database reaches every node",
            || n.post(json!({"operation": "describe_database", "database": "other"})).0,
            |s| *s == 200,
        );
    }
}

/// Three nodes write different values to the same key at the same time, many times: when the
/// writes stop, all three hold the same record, byte for byte (last writer by
/// `__updatedtime__`, ties broken deterministically).
#[test]
fn concurrent_conflicting_writes_converge() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    ok_replicated(&nodes[0], json!({"operation": "create_table", "database": "dev", "table": "hot", "primary_key": "id"}));
    for n in &nodes[1..] {
        eventually("the table reaches every node", || has_table(n, "hot"), |t| *t);
    }
    std::thread::scope(|s| {
        for (i, n) in nodes.iter().enumerate() {
            let url = n.url();
            s.spawn(move || {
                for round in 0..40 {
                    let body = json!({"operation": "upsert", "database": "dev", "table": "hot", "records": [{"id": "k", "writer": i, "round": round}, {"id": format!("k{}", round % 3), "writer": i}]});
                    // A 503 (JetStream slow on a loaded machine) is written here and
                    // replicated later; sent again, as a client would.
                    let deadline = Instant::now() + CONVERGE;
                    loop {
                        let (status, text) = post_raw(&url, Some("application/json"), body.to_string().as_bytes(), Some(&basic(ADMIN.0, ADMIN.1)));
                        if status == 503 && Instant::now() < deadline {
                            continue;
                        }
                        assert_eq!(status, 200, "upsert on node {i}: {text}");
                        break;
                    }
                }
            });
        }
    });
    let on_a = eventually("node a settles", || all(&nodes[0], "hot"), |rows| rows.len() == 4);
    // Settled: the same for a while on a (changes still in flight would change it).
    let settled = eventually(
        "every node holds the same records",
        || [all(&nodes[0], "hot"), all(&nodes[1], "hot"), all(&nodes[2], "hot")],
        |[a, b, c]| a == b && b == c,
    );
    assert_eq!(settled[0].len(), 4, "{on_a:?}");
    let k = get(&nodes[1], "hot", json!("k")).expect("k");
    assert_eq!(k["round"], 39, "the last round of some writer wins: {k}");
}

/// Puts a change "made" on node `origin` (a node that does not exist: its name and its time
/// are the test's choice) on the test's stream, as a real node would publish it.
fn inject(nats: &Nats, origin: &str, table: &str, kind: Value) {
    let mut change = json!({"origin": origin, "time": 1, "database": "dev", "table": table});
    for (k, v) in kind.as_object().expect("object") {
        change[k] = v.clone();
    }
    let subject = format!("{}.data.dev.{table}", nats.stream.to_lowercase());
    let ack = opshost_tests::nats::publish(&nats.urls, &subject, change.to_string().as_bytes());
    assert!(ack.contains("\"seq\""), "JetStream took the change: {ack}");
}

/// A version of `dev.<table>` record `id` at `time`, as replication carries it.
fn put(id: &str, value: &str, time: u64) -> Value {
    json!({"op": "put", "primary_key": "id", "records": [{"id": id, "value": value, "__createdtime__": time, "__updatedtime__": time}]})
}

/// Writes with the same `__updatedtime__` from two nodes converge on every node to the greater
/// node name's version, whichever arrives first and whatever its bytes (HarperDB's rule; a
/// "greater bytes" rule would pick the other one here). A delete leaves a tombstone: an older
/// version arriving after it does not bring the record back on any node, the deleting one
/// included. Equal timestamps are made deterministic by publishing the two nodes' changes
/// directly on the stream.
#[test]
fn equal_timestamps_go_to_the_greater_node_name_and_deletes_stay_deleted() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    ok_replicated(&nodes[0], json!({"operation": "create_table", "database": "dev", "table": "tie", "primary_key": "id"}));
    for n in &nodes[1..] {
        eventually("the table reaches every node", || has_table(n, "tie"), |t| *t);
    }
    let t = 1_700_000_000_000u64;
    // k1: node_y's version first, then node_x's; k2 the other way round.
    inject(&nats, "node_y", "tie", put("k1", "a_from_y", t));
    inject(&nats, "node_x", "tie", put("k1", "z_from_x", t));
    inject(&nats, "node_x", "tie", put("k2", "z_from_x", t));
    inject(&nats, "node_y", "tie", put("k2", "a_from_y", t));
    // k3 exists, is deleted on b, then an older version (after the one deleted, before the
    // delete) arrives from another node.
    inject(&nats, "node_x", "tie", put("k3", "before_delete", t));
    for n in &nodes {
        eventually("k3 reaches every node", || get(n, "tie", json!("k3")).is_some(), |t| *t);
    }
    ok_replicated(&nodes[1], json!({"operation": "delete", "database": "dev", "table": "tie", "ids": ["k3"]}));
    for n in &nodes {
        eventually("the delete reaches every node", || get(n, "tie", json!("k3")).is_none(), |t| *t);
    }
    inject(&nats, "node_y", "tie", put("k3", "stale_after_delete", t + 1));
    // Each node applies the stream in order: once the marker is there, so is all before it.
    inject(&nats, "node_x", "tie", put("marker", "m", t));
    for n in &nodes {
        eventually("the marker reaches every node", || get(n, "tie", json!("marker")).is_some(), |t| *t);
    }
    for n in &nodes {
        let value = |id: &str| get(n, "tie", json!(id)).map(|r| r["value"].clone());
        assert_eq!(value("k1"), Some(json!("a_from_y")), "k1 on {}", n.url());
        assert_eq!(value("k2"), Some(json!("a_from_y")), "k2 on {}", n.url());
        assert_eq!(value("k3"), None, "an older version after the delete stays out on {}", n.url());
    }
    let settled = [all(&nodes[0], "tie"), all(&nodes[1], "tie"), all(&nodes[2], "tie")];
    assert!(settled[0] == settled[1] && settled[1] == settled[2], "the same bytes everywhere: {settled:?}");
}

/// Certificates replicate their public part: one added on a with its private key is listed on
/// b and c without a private key name, and no node but a holds the key; removed on a, it goes
/// everywhere. Each node keeps its own key-backed node certificate, although all three share
/// its name (the host's).
#[test]
fn certificates_replicate_without_their_private_keys() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    let dir = TempRoot::new();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().expect("running openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "shared.key"]);
    openssl(&["req", "-x509", "-key", "shared.key", "-subj", "/CN=shared.example", "-days", "30", "-out", "shared.pem"]);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("read");
    let key = read("shared.key");
    let own_before: Vec<Value> = nodes.iter().map(|n| certificate(n, "127.0.0.1").expect("a node certificate")).collect();
    ok_replicated(&nodes[0], json!({"operation": "add_certificate", "name": "shared", "certificate": read("shared.pem"), "is_authority": false, "private_key": key}));
    assert_eq!(certificate(&nodes[0], "shared").map(|c| c["private_key_name"].clone()), Some(json!("shared.pem")));
    for n in &nodes[1..] {
        let got = eventually("the certificate reaches every node", || certificate(n, "shared"), |c| c.is_some()).expect("listed");
        assert_eq!(got["certificate"].as_str().map(str::trim), Some(read("shared.pem").trim()), "{got}");
        assert_eq!(got["private_key_name"], Value::Null, "another node holds no key for it: {got}");
        assert!(!n.root().join("keys").join("shared.pem").exists(), "the private key reached another node");
    }
    // The key never left a's key folder: no other file anywhere holds its text.
    for n in &nodes[1..] {
        for entry in std::fs::read_dir(n.root().join("keys")).expect("keys") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
            assert!(!text.contains(key.trim()), "a's private key is on another node");
        }
    }
    ok_replicated(&nodes[0], json!({"operation": "remove_certificate", "name": "shared"}));
    for n in &nodes[1..] {
        eventually("the removal reaches every node", || certificate(n, "shared"), |c| c.is_none());
    }
    // Every node still serves its own node certificate with its own key.
    for (n, before) in nodes.iter().zip(own_before) {
        assert_eq!(certificate(n, "127.0.0.1"), Some(before), "a node's own certificate is its own");
    }
}

fn certificate(server: &Server, name: &str) -> Option<Value> {
    let list = ok(server, json!({"operation": "list_certificates"}));
    list.as_array().expect("array").iter().find(|c| c["name"] == name).cloned()
}

/// Jobs and system facts stay per node: `delete_records_before` run on a replicates its deletes,
/// while its job is answered by `get_job` on a only (b has no such job), and
/// `system_information` on each node describes that node's own process.
#[test]
fn jobs_and_system_information_answer_per_node() {
    let nats = Nats::shared();
    let (a, b) = (node(&nats, "node_a"), node(&nats, "node_b"));
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "old", "primary_key": "id"}));
    eventually("the table reaches b", || has_table(&b, "old"), |t| *t);
    ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "old", "records": [{"id": 1}, {"id": 2}]}));
    eventually("the records reach b", || all(&b, "old").len(), |n| *n == 2);
    let started = ok(&a, json!({"operation": "delete_records_before", "database": "dev", "table": "old", "date": "2999-01-01T00:00:00.000Z"}));
    let id = started["job_id"].as_str().expect("job_id").to_string();
    let job = eventually(
        "the job finishes on a",
        || ok(&a, json!({"operation": "get_job", "id": id})),
        |jobs| jobs.as_array().is_some_and(|j| j.len() == 1 && j[0]["status"] != "IN_PROGRESS"),
    );
    assert_eq!(job[0]["status"], "COMPLETE", "{job}");
    eventually("the deletes reach b", || all(&b, "old").len(), |n| *n == 0);
    assert_eq!(ok(&b, json!({"operation": "get_job", "id": id})), json!([]), "b did not run a's job");
    for n in [&a, &b] {
        let info = ok(n, json!({"operation": "system_information", "attributes": ["harperdb_processes"]}));
        assert_eq!(info["harperdb_processes"]["core"][0]["pid"].as_u64(), Some(u64::from(n.pid())), "{info}");
    }
}

/// `test_hello` on `server`: the version it answers, or `None` when nothing serves it.
fn hello(server: &Server) -> Option<Value> {
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    (status == 200).then(|| body["version"].clone())
}

/// A component deployed on a with `replicated: true` serves on b and c too, the bytes through
/// JetStream's object store; each node checks it as a local deploy would, so d, which requires
/// signatures, refuses the unsigned component and serves nothing. A deploy without
/// `replicated` stays on a; a replicated drop stops it everywhere.
#[test]
fn components_deployed_with_replicated_serve_on_every_node() {
    let nats = Nats::shared();
    let (a, b, c) = (node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c"));
    let d = node_builder(&nats.urls, &nats.stream, "node_d").env("OPERATIONSAPI_COMPONENTS_REQUIRESIGNED", "true").start();
    let payload = |guest: &str| encode_base64(&std::fs::read(test_guest(guest)).expect("test guest built"));
    let deploy = json!({"operation": "deploy_component", "name": "test_hello", "payload": payload("hello_v1"), "replicated": true});
    let answer = ok_replicated(&a, deploy);
    assert_eq!(hello(&a), Some(json!(1)), "{answer}");
    for n in [&b, &c] {
        eventually("the replicated component serves on every node", || hello(n), |v| *v == Some(json!(1)));
        let listed = ok(n, json!({"operation": "get_components"}));
        let entry = listed.as_array().and_then(|l| l.iter().find(|e| e["name"] == "test_hello").cloned()).expect("listed");
        assert_eq!((entry["deployed_by"].as_str(), entry["status"].as_str()), (Some("admin"), Some("serving")), "{listed}");
        assert_eq!(entry["hash"], answer["hash"], "the same bytes: {listed}");
    }
    // d applies the stream in order: once the marker table is there, the deploy was judged.
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "marker1", "primary_key": "id"}));
    eventually("the marker reaches d", || has_table(&d, "marker1"), |t| *t);
    assert_eq!(hello(&d), None, "d requires signatures and refused the unsigned component");
    assert!(d.log_contains("'signature' is required", CONVERGE), "d says why: {}", d.log());
    // Without `replicated` a deploy stays on its node.
    ok_replicated(&a, json!({"operation": "deploy_component", "name": "test_hello", "payload": payload("hello_v2")}));
    assert_eq!(hello(&a), Some(json!(2)));
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "marker2", "primary_key": "id"}));
    for n in [&b, &c] {
        eventually("the marker reaches b and c", || has_table(n, "marker2"), |t| *t);
        assert_eq!(hello(n), Some(json!(1)), "an unreplicated deploy stayed on a");
    }
    ok_replicated(&a, json!({"operation": "drop_component", "name": "test_hello", "replicated": true}));
    for n in [&a, &b, &c] {
        eventually("the replicated drop reaches every node", || hello(n), |v| v.is_none());
    }
}

/// `test_hello`'s serving version number on `server` (`get_components`), which need not be
/// what the component answers (that is its build: hello_v1 or hello_v2).
fn hello_version(server: &Server) -> Option<u64> {
    let listed = ok(server, json!({"operation": "get_components"}));
    listed.as_array().and_then(|l| l.iter().find(|e| e["name"] == "test_hello")).and_then(|e| e["version"].as_u64())
}

/// `rollback_component` to a version deployed with `replicated: true` rolls every node back to
/// its own kept version of the same bytes (so every node serves the same bytes under the same
/// version number, and records a rollback, not a new deploy); a rollback to a version deployed
/// on one node only stays on that node, as its deploy did.
#[test]
fn a_rollback_to_a_replicated_version_rolls_every_node_back() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    let payload = |guest: &str| encode_base64(&std::fs::read(test_guest(guest)).expect("test guest built"));
    for (build, answer) in [("hello_v1", 1), ("hello_v2", 2)] {
        ok_replicated(&nodes[0], json!({"operation": "deploy_component", "name": "test_hello", "payload": payload(build), "replicated": true}));
        for n in &nodes {
            eventually("each replicated deploy serves on every node", || hello(n), |v| *v == Some(json!(answer)));
        }
    }
    let rolled = ok_replicated(&nodes[0], json!({"operation": "rollback_component", "name": "test_hello"}));
    assert_eq!((rolled["version"].as_u64(), rolled["replicated"].as_bool()), (Some(1), Some(true)), "{rolled}");
    assert_eq!(hello(&nodes[0]), Some(json!(1)));
    for n in &nodes[1..] {
        eventually("the rollback reaches every node", || hello(n), |v| *v == Some(json!(1)));
        assert_eq!(hello_version(n), Some(1), "rolled back to its version 1, not deployed as a version 3");
        let events = ok(n, json!({"operation": "get_component_events", "name": "test_hello"}));
        let actions: Vec<&str> = events.as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(actions, ["deploy", "deploy", "rollback"], "{events}");
    }
    // b deploys hello_v2 for itself only (its version 3), rolls back to replicated version 1
    // (everyone already serves those bytes) and then to its local version 3: that stays on b.
    let (b, others) = (&nodes[1], [&nodes[0], &nodes[2]]);
    ok_replicated(b, json!({"operation": "deploy_component", "name": "test_hello", "payload": payload("hello_v2")}));
    assert_eq!((hello(b), hello_version(b)), (Some(json!(2)), Some(3)));
    ok_replicated(b, json!({"operation": "rollback_component", "name": "test_hello", "version": 1}));
    assert_eq!(hello(b), Some(json!(1)));
    let local = ok_replicated(b, json!({"operation": "rollback_component", "name": "test_hello", "version": 3}));
    assert_eq!((local["version"].as_u64(), local["replicated"].as_bool()), (Some(3), Some(false)), "{local}");
    assert_eq!(hello(b), Some(json!(2)));
    // a and c apply the stream in order: once b's marker table is there, b's changes before it
    // were applied (or, as here, were never sent).
    ok_replicated(b, json!({"operation": "create_table", "database": "dev", "table": "marker", "primary_key": "id"}));
    for n in others {
        eventually("b's marker reaches a and c", || has_table(n, "marker"), |t| *t);
        assert_eq!((hello(n), hello_version(n)), (Some(json!(1)), Some(1)), "b's rollback to its own version stayed on b");
    }
}

/// A node killed with SIGKILL while another keeps writing, restarted on its root, applies
/// everything it missed from the stream position it stored.
#[test]
fn a_node_killed_with_kill_9_catches_up_after_restart() {
    let nats = Nats::shared();
    let a = node(&nats, "node_a");
    let b = node(&nats, "node_b");
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "log", "primary_key": "id"}));
    eventually("the table reaches b", || has_table(&b, "log"), |t| *t);
    for i in 0..50 {
        ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "log", "records": [{"id": i}]}));
    }
    eventually("b applies the first writes", || all(&b, "log").len(), |n| *n == 50);
    let root: TempRoot = b.crash();
    for i in 50..300 {
        ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "log", "records": [{"id": i}]}));
    }
    ok_replicated(&a, json!({"operation": "delete", "database": "dev", "table": "log", "ids": [0, 1, 2]}));
    let b = node_builder(&nats.urls, &nats.stream, "node_b").root(root).start();
    let on_a = all(&a, "log");
    assert_eq!(on_a.len(), 297);
    eventually("b catches up after its restart", || all(&b, "log"), |rows| *rows == on_a);
}

/// A stream that keeps only 20 changes: node c, killed, misses far more than that (inserts,
/// an update and a delete of records it had), so its place in the stream is discarded; after
/// its restart it merges a snapshot from a, then follows the stream again.
///
/// It once stalled (one in six full-suite runs, c merged nothing within 60 s): a's own consumer
/// could also fall off the 20-message stream, so a was "catching up" and silently declined c's
/// request, while its own request found nobody either; c waited out a 60 s timeout per try. Now
/// a gap of a node's own changes is no gap, busy nodes say so at once, and when only busy nodes
/// answer the asker takes a snapshot from one of them (snapshot.rs).
#[test]
fn a_node_whose_stream_position_was_discarded_catches_up_by_snapshot() {
    let nats = Nats::shared();
    let small = |name: &str| node_builder(&nats.urls, &nats.stream, name).env("CLUSTERING_NATS_MAXMSGS", "20");
    let a = small("node_a").start();
    let c = small("node_c").start();
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "log", "primary_key": "id"}));
    eventually("the table reaches c", || has_table(&c, "log"), |t| *t);
    for i in 0..10 {
        ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "log", "records": [{"id": i, "v": "first"}]}));
    }
    eventually("c applies the first writes", || all(&c, "log").len(), |n| *n == 10);
    let root: TempRoot = c.crash();
    ok_replicated(&a, json!({"operation": "delete", "database": "dev", "table": "log", "ids": [0, 1, 2]}));
    ok_replicated(&a, json!({"operation": "update", "database": "dev", "table": "log", "records": [{"id": 5, "v": "updated"}]}));
    for i in 10..100 {
        ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "log", "records": [{"id": i, "v": "while c was down"}]}));
    }
    let c = small("node_c").root(root).start();
    let on_a = all(&a, "log");
    assert_eq!(on_a.len(), 97);
    eventually("c catches up by snapshot", || all(&c, "log"), |rows| *rows == on_a);
    let status = ok(&c, json!({"operation": "cluster_status"}));
    assert!(status["catch_up"]["snapshots_merged"].as_u64().is_some_and(|n| n >= 1), "c merged a snapshot: {status}");
    assert_eq!(status["catch_up"]["needed"], json!(false), "{status}");
    // And follows the stream again afterwards.
    ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "log", "records": [{"id": 1000}]}));
    eventually("c follows the stream after the snapshot", || get(&c, "log", json!(1000)).is_some(), |found| *found);
}

/// The components `get_components` lists on `server` (any kept version), sorted.
fn components(server: &Server) -> Vec<String> {
    let listed = ok(server, json!({"operation": "get_components"}));
    let mut names: Vec<String> = listed.as_array().expect("array").iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect();
    names.sort();
    names
}

/// A snapshot carries what the stream would have: node c, killed, misses a replicated deploy,
/// a replicated drop and a cluster-wide `set_configuration` (with far more changes after them
/// than the 20-change stream keeps); re-seeded by snapshot from a, it serves the deployed
/// component, no longer keeps the dropped one, shows the key in `get_configuration`, and keeps
/// the component it had deployed for itself only.
#[test]
fn a_snapshot_carries_replicated_components_and_cluster_wide_configuration() {
    let nats = Nats::shared();
    let small = |name: &str| node_builder(&nats.urls, &nats.stream, name).env("CLUSTERING_NATS_MAXMSGS", "20");
    let a = small("node_a").start();
    let c = small("node_c").start();
    let payload = |guest: &str| encode_base64(&std::fs::read(test_guest(guest)).expect("test guest built"));
    ok_replicated(&a, json!({"operation": "deploy_component", "name": "test_panic", "payload": payload("test_panic"), "replicated": true}));
    ok_replicated(&c, json!({"operation": "deploy_component", "name": "test_memory", "payload": payload("test_memory")}));
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "log", "primary_key": "id"}));
    eventually_on(&c, "the replicated component and the table reach c", || (components(&c), has_table(&c, "log")), |(names, table)| {
        *table && names.iter().any(|n| n == "test_panic")
    });
    let retention_before = config_value(&c, "logging.auditRetention");
    assert_ne!(retention_before, json!("6d"));
    let root: TempRoot = c.crash();
    ok_replicated(&a, json!({"operation": "deploy_component", "name": "test_hello", "payload": payload("hello_v1"), "replicated": true}));
    ok_replicated(&a, json!({"operation": "drop_component", "name": "test_panic", "replicated": true}));
    ok_replicated(&a, json!({"operation": "set_configuration", "logging_auditRetention": "6d"}));
    for i in 0..40 {
        ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "log", "records": [{"id": i}]}));
    }
    let c = small("node_c").root(root).start();
    eventually_on(&c, "c serves the component deployed while it was away", || hello(&c), |v| *v == Some(json!(1)));
    eventually_on(&c, "c drops the component dropped while it was away", || components(&c), |names| !names.iter().any(|n| n == "test_panic"));
    eventually("c takes the cluster-wide key set while it was away", || config_value(&c, "logging.auditRetention"), |v| *v == json!("6d"));
    assert_eq!(components(&c), ["test_hello", "test_memory"], "c's own local component stays");
    // The merge is counted once all of it is applied (the component reloads take a moment).
    eventually("c caught up by snapshot, not the stream", || ok(&c, json!({"operation": "cluster_status"}))["catch_up"].clone(), |s| {
        s["snapshots_merged"].as_u64().is_some_and(|n| n >= 1) && s["needed"] == json!(false)
    });
    eventually("c has a's records", || all(&c, "log").len(), |n| *n == 40);
    let entry = ok(&c, json!({"operation": "get_components"}));
    let hello_entry = entry.as_array().and_then(|l| l.iter().find(|e| e["name"] == "test_hello").cloned()).expect("listed");
    assert_eq!(hello_entry["versions"][0]["replicated"], json!(true), "applied as a replicated version: {hello_entry}");
}

/// Writes keep coming while one of the three NATS servers is killed: every write answered 200
/// reaches the other node (JetStream acknowledged it on a quorum before the answer).
#[test]
fn a_nats_server_killed_mid_load_loses_no_acknowledged_write() {
    let mut own = NatsCluster::start(3);
    let (urls, stream) = (own.urls(), unique_stream());
    let a = node_builder(&urls, &stream, "node_a").start();
    let b = node_builder(&urls, &stream, "node_b").start();
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "load", "primary_key": "id"}));
    eventually("the table reaches b", || has_table(&b, "load"), |t| *t);
    let mut acked = Vec::new();
    for i in 0..400 {
        if i == 100 {
            own.kill(0);
        }
        let body = json!({"operation": "insert", "database": "dev", "table": "load", "records": [{"id": i}]});
        let (status, _) = post_raw(&a.url(), Some("application/json"), body.to_string().as_bytes(), Some(&basic(ADMIN.0, ADMIN.1)));
        if status == 200 {
            acked.push(i);
        }
    }
    assert!(acked.len() > 300, "most writes are acknowledged through the failover: {}", acked.len());
    let ids = |s: &Server| all(s, "load").iter().filter_map(|r| r["id"].as_i64()).collect::<std::collections::BTreeSet<i64>>();
    let on_b = eventually("b has every acknowledged write", || ids(&b), |got| acked.iter().all(|i| got.contains(i)));
    assert!(on_b.len() >= acked.len());
}

/// With every NATS server down a write cannot be acknowledged: it answers 503 naming
/// clustering within `clustering.publishTimeout` (not a call-timeout 500), the record stays
/// written on the node, and once NATS is back the background publisher delivers it.
#[test]
fn a_write_nats_cannot_take_answers_503_and_replicates_later() {
    let mut own = NatsCluster::start(3);
    let (urls, stream) = (own.urls(), unique_stream());
    let a = node_builder(&urls, &stream, "node_a").env("CLUSTERING_PUBLISHTIMEOUT", "1000").start();
    let b = node_builder(&urls, &stream, "node_b").start();
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "late", "primary_key": "id"}));
    eventually("the table reaches b", || has_table(&b, "late"), |t| *t);
    for i in 0..3 {
        own.kill(i);
    }
    let (status, body) = a.post(json!({"operation": "insert", "database": "dev", "table": "late", "records": [{"id": 1, "name": "kept"}]}));
    assert_eq!(status, 503, "{body}");
    let text = body["error"].as_str().unwrap_or_default();
    assert!(text.contains("clustering") && text.contains("not yet replicated"), "{body}");
    assert_eq!(get(&a, "late", json!(1)).map(|r| r["name"].clone()), Some(json!("kept")), "the local write stays");
    for i in 0..3 {
        own.start_server(i);
    }
    eventually("the write reaches b once NATS is back", || get(&b, "late", json!(1)).map(|r| r["name"].clone()), |n| *n == Some(json!("kept")));
}

/// `set_node_replication` on b with `subscribe: false` for one table of a: that table stops
/// flowing from a to b, the other keeps flowing, and c (no registration) gets both.
#[test]
fn a_subscription_turned_off_stops_that_table_only() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    for t in ["kept", "stopped"] {
        ok_replicated(&nodes[0], json!({"operation": "create_table", "database": "dev", "table": t, "primary_key": "id"}));
    }
    for n in &nodes[1..] {
        eventually("tables reach every node", || has_table(n, "kept") && has_table(n, "stopped"), |t| *t);
    }
    let subscriptions = json!([
        {"schema": "dev", "table": "kept", "subscribe": true, "publish": true},
        {"database": "dev", "table": "stopped", "subscribe": false, "publish": true},
    ]);
    ok(&nodes[1], json!({"operation": "add_node", "node_name": "node_a", "subscriptions": subscriptions}));
    let status = ok(&nodes[1], json!({"operation": "cluster_status"}));
    assert_eq!(status["node_name"], "node_b", "{status}");
    assert_eq!(status["is_enabled"], true, "{status}");
    let conn = status["connections"].as_array().expect("connections").iter().find(|c| c["node_name"] == "node_a").cloned().expect("node_a listed");
    assert_eq!(conn["subscriptions"].as_array().map(Vec::len), Some(2), "{status}");
    // `stopped` first: b applies the stream in order, so once it has `kept` it has seen (and
    // skipped) `stopped`.
    for t in ["stopped", "kept"] {
        ok_replicated(&nodes[0], json!({"operation": "insert", "database": "dev", "table": t, "records": [{"id": 1}]}));
    }
    eventually("c gets both tables", || (all(&nodes[2], "kept").len(), all(&nodes[2], "stopped").len()), |n| *n == (1, 1));
    eventually("b gets the kept table", || all(&nodes[1], "kept").len(), |n| *n == 1);
    assert!(all(&nodes[1], "stopped").is_empty(), "a table b does not subscribe to reached it");
    // Turned back on (and then off for all, with remove_node: whole data set again).
    ok(&nodes[1], json!({"operation": "remove_node", "node_name": "node_a"}));
    ok_replicated(&nodes[0], json!({"operation": "insert", "database": "dev", "table": "stopped", "records": [{"id": 2}]}));
    eventually("after remove_node b gets every table again", || all(&nodes[1], "stopped").len(), |n| *n == 1);
    let (status, body) = nodes[1].post(json!({"operation": "remove_node", "node_name": "node_a"}));
    assert_eq!(status, 404, "{body}");
}

/// A node started with clustering off joins with `set_configuration` and `restart_service
/// clustering` (reconnecting with the settings as they are now): it applies what the stream
/// holds and its writes reach the other node; `cluster_status` and `cluster_network` then show
/// the other node with its connection state and lag. Node registrations follow HarperDB's
/// rules (update_node only for a registered node, add_node only for a new one, configure_cluster
/// replaces them all), and turned off again the node disconnects.
#[test]
fn restart_service_clustering_connects_with_the_current_settings() {
    let nats = Nats::shared();
    let a = node(&nats, "node_a");
    let b = node_builder(&nats.urls, &nats.stream, "node_b").env("CLUSTERING_ENABLED", "false").start();
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "late", "primary_key": "id"}));
    ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "late", "records": [{"id": 1}]}));
    assert_eq!(ok(&b, json!({"operation": "cluster_status"}))["is_enabled"], false);
    assert!(!has_table(&b, "late"), "b is not clustered yet");
    let restart = |enabled: bool| {
        ok(&b, json!({"operation": "set_configuration", "clustering_enabled": enabled}));
        let job = ok(&b, json!({"operation": "restart_service", "service": "clustering"}));
        let id = job["job_id"].as_str().expect("job_id").to_string();
        eventually("the restart job completes", || ok(&b, json!({"operation": "get_job", "id": id}))[0]["status"].clone(), |s| *s == "COMPLETE");
    };
    restart(true);
    eventually("b applies what the stream holds", || has_table(&b, "late") && get(&b, "late", json!(1)).is_some(), |t| *t);
    ok_replicated(&b, json!({"operation": "insert", "database": "dev", "table": "late", "records": [{"id": 2}]}));
    eventually("b's write reaches a", || get(&a, "late", json!(2)).is_some(), |t| *t);
    let status = ok(&b, json!({"operation": "cluster_status"}));
    assert_eq!((status["is_enabled"].clone(), status["connected"].clone()), (json!(true), json!(true)), "{status}");
    let conn = status["connections"].as_array().and_then(|c| c.iter().find(|c| c["node_name"] == "node_a").cloned()).expect("node_a listed");
    assert_eq!((conn["status"].as_str(), conn["registered"].as_bool()), (Some("open"), Some(false)), "{status}");
    assert!(conn["lag_ms"].is_u64() && conn["last_change_time"].is_u64(), "a's lag and last change: {status}");
    let network = ok(&b, json!({"operation": "cluster_network"}));
    let listed: Vec<&str> = network["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(listed, ["node_b", "node_a"], "{network}");
    assert!(network["nodes"][1]["lag_ms"].is_u64(), "{network}");
    // Registrations.
    let subs = json!([{"schema": "dev", "table": "late", "subscribe": true, "publish": true}]);
    let (status, body) = b.post(json!({"operation": "update_node", "node_name": "node_a", "subscriptions": subs}));
    assert_eq!(status, 404, "update_node of an unregistered node: {body}");
    ok(&b, json!({"operation": "set_node_replication", "node_name": "node_a", "subscriptions": subs}));
    ok(&b, json!({"operation": "update_node", "node_name": "node_a", "subscriptions": subs}));
    let (status, body) = b.post(json!({"operation": "add_node", "node_name": "node_a", "subscriptions": subs}));
    assert_eq!(status, 400, "add_node of a registered node: {body}");
    ok(&b, json!({"operation": "configure_cluster", "connections": [{"node_name": "node_x", "subscriptions": subs}]}));
    let status = ok(&b, json!({"operation": "cluster_status"}));
    let registered = |name: &str| status["connections"].as_array().and_then(|c| c.iter().find(|c| c["node_name"] == name)).map(|c| c["registered"].clone());
    assert_eq!((registered("node_x"), registered("node_a")), (Some(json!(true)), Some(json!(false))), "configure_cluster replaced node_a: {status}");
    // Off again: b disconnects and says so.
    restart(false);
    let status = ok(&b, json!({"operation": "cluster_status"}));
    assert_eq!((status["is_enabled"].clone(), status["connected"].clone()), (json!(false), json!(false)), "{status}");
}

/// HarperDB's route operations edit the NATS servers a node connects to
/// (`clustering.nats.servers`), with HarperDB's set/skipped and deleted/skipped answers.
#[test]
fn cluster_routes_are_the_nats_servers() {
    let server = Server::start();
    assert_eq!(ok(&server, json!({"operation": "cluster_get_routes"})), json!({"hub": [], "leaf": []}));
    let route = json!({"host": "127.0.0.1", "port": 4222});
    let set = ok(&server, json!({"operation": "cluster_set_routes", "server": "hub", "routes": [route, {"host": "10.0.0.2", "port": 4222}]}));
    assert_eq!(set["message"], "cluster routes successfully set");
    assert_eq!((set["set"].as_array().map(Vec::len), set["skipped"].as_array().map(Vec::len)), (Some(2), Some(0)), "{set}");
    let again = ok(&server, json!({"operation": "cluster_set_routes", "server": "hub", "routes": [route]}));
    assert_eq!(again["skipped"], json!([route]), "{again}");
    let config = ok(&server, json!({"operation": "get_configuration"}));
    assert_eq!(config["clustering"]["nats"]["servers"], "nats://127.0.0.1:4222,nats://10.0.0.2:4222", "{config}");
    let deleted = ok(&server, json!({"operation": "cluster_delete_routes", "routes": [{"host": "10.0.0.2", "port": 4222}, {"host": "nowhere", "port": 1}]}));
    assert_eq!((deleted["deleted"].as_array().map(Vec::len), deleted["skipped"].as_array().map(Vec::len)), (Some(1), Some(1)), "{deleted}");
    assert_eq!(ok(&server, json!({"operation": "cluster_get_routes"}))["hub"], json!([route]));
    for bad in [json!({"server": "leaf", "routes": [route]}), json!({"server": "hub", "routes": [{"host": "x"}]}), json!({"server": "hub"})] {
        let mut body = bad.clone();
        body["operation"] = json!("cluster_set_routes");
        assert_eq!(server.post(body).0, 400, "{bad}");
    }
    // Clustering is off: the status says so, and a non-super_user is refused.
    let status = ok(&server, json!({"operation": "cluster_status"}));
    assert_eq!((status["is_enabled"].clone(), status["connected"].clone()), (json!(false), json!(false)), "{status}");
    assert_eq!(server.post_as(opshost_tests::USER, json!({"operation": "cluster_status"})).0, 403);
}

/// `get_configuration`'s value at a dotted path on `server`.
fn config_value(server: &Server, path: &str) -> Value {
    let config = ok(server, json!({"operation": "get_configuration"}));
    path.split('.').fold(config, |v, k| v[k].clone())
}

/// `set_configuration` of a cluster-wide key on one node reaches every node's file (the last
/// set in the stream wins everywhere); a node-local key set in the same call stays on its node.
#[test]
fn cluster_wide_configuration_keys_replicate_and_node_local_ones_stay() {
    let nats = Nats::shared();
    let nodes = [node(&nats, "node_a"), node(&nats, "node_b"), node(&nats, "node_c")];
    let level_before = config_value(&nodes[1], "logging.level");
    assert_ne!(level_before, json!("debug"));
    ok_replicated(&nodes[0], json!({"operation": "set_configuration", "logging_auditRetention": "5d", "logging_level": "debug"}));
    assert_eq!((config_value(&nodes[0], "logging.auditRetention"), config_value(&nodes[0], "logging.level")), (json!("5d"), json!("debug")));
    for n in &nodes[1..] {
        eventually("the cluster-wide key reaches every node", || config_value(n, "logging.auditRetention"), |v| *v == json!("5d"));
        // The same change carried both keys: the node-local one did not travel with it.
        assert_eq!(config_value(n, "logging.level"), level_before, "logging.level is node-local");
    }
    // Another node sets it again, and a second key: every node ends with c's values.
    ok_replicated(&nodes[2], json!({"operation": "set_configuration", "logging_auditRetention": "7d", "operationsApi_components_keepVersions": 9}));
    for n in &nodes {
        eventually("the last set wins on every node", || (config_value(n, "logging.auditRetention"), config_value(n, "operationsApi.components.keepVersions")), |v| *v == (json!("7d"), json!(9)));
    }
}

/// One JetStream `nats-server` of its own with `extra` configuration (authorization, TLS), on a
/// free port; killed when the returned guard drops. Its URL.
struct LoneNats {
    url: String,
    child: std::process::Child,
    _dir: TempRoot,
}

impl LoneNats {
    fn start(dir: TempRoot, scheme: &str, extra: &str) -> Self {
        let port = opshost_tests::free_port();
        let store = dir.path().join("js");
        let config = format!("listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 256MB }}\n{extra}\n", store.display());
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config).expect("nats config");
        let log = std::fs::File::create(dir.path().join("nats.log")).expect("nats log");
        let child = std::process::Command::new(opshost_tests::nats::server_binary())
            .arg("-c")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting nats-server (apt-get install nats-server)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { url: format!("{scheme}://127.0.0.1:{port}"), child, _dir: dir }
    }
}

impl Drop for LoneNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node on a lone NATS server (one replica), a short publish wait so a disconnected node's
/// writes answer their 503 quickly.
fn lone_node(nats: &LoneNats, name: &str, env: &[(&str, &str)]) -> Server {
    let mut builder = node_builder(&nats.url, "SECURED", name).env("CLUSTERING_NATS_REPLICAS", "1").env("CLUSTERING_PUBLISHTIMEOUT", "500");
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    builder.start()
}

/// Two nodes with the right settings connect and replicate; a third with wrong ones says why
/// in `cluster_status` (`last_error` containing `expected`, not connected) and keeps serving
/// its own data: its write is kept here and answers the clustering 503, and reads answer.
fn secured_nats_connects_right_nodes_and_reports_wrong_ones(nats: &LoneNats, right: &[(&str, &str)], wrong: &[(&str, &str)], expected: &str) {
    let (a, b) = (lone_node(nats, "node_a", right), lone_node(nats, "node_b", right));
    let bad = lone_node(nats, "node_bad", wrong);
    ok_replicated(&a, json!({"operation": "create_table", "database": "dev", "table": "secure", "primary_key": "id"}));
    ok_replicated(&a, json!({"operation": "insert", "database": "dev", "table": "secure", "records": [{"id": 1}]}));
    eventually("a's write reaches b", || has_table(&b, "secure") && get(&b, "secure", json!(1)).is_some(), |t| *t);
    for n in [&a, &b] {
        let status = eventually("the node shows its connection open", || ok(n, json!({"operation": "cluster_status"})), |s| s["connected"] == json!(true));
        assert!(status["last_error"].is_null(), "{status}");
    }
    let conn = ok(&b, json!({"operation": "cluster_status"}))["connections"].as_array().and_then(|c| c.iter().find(|c| c["node_name"] == "node_a").cloned());
    assert_eq!(conn.as_ref().map(|c| c["status"].clone()), Some(json!("open")), "{conn:?}");
    let status = eventually(
        "the misconfigured node reports why it cannot connect",
        || ok(&bad, json!({"operation": "cluster_status"})),
        |s| s["last_error"].as_str().is_some_and(|e| e.to_lowercase().contains(expected)),
    );
    assert_eq!(status["connected"], json!(false), "{status}");
    assert!(status["last_error"].as_str().is_some_and(|e| e.contains("connecting to NATS")), "{status}");
    let (code, body) = bad.post(json!({"operation": "create_table", "database": "dev", "table": "alone", "primary_key": "id"}));
    assert_eq!(code, 503, "written here, not replicated: {body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("clustering")), "{body}");
    let (code, body) = bad.post(json!({"operation": "insert", "database": "dev", "table": "alone", "records": [{"id": 7}]}));
    assert_eq!(code, 503, "{body}");
    assert_eq!(get(&bad, "alone", json!(7)).map(|r| r["id"].clone()), Some(json!(7)), "the misconfigured node serves its local data");
    assert_eq!(bad.post(json!({"operation": "system_information"})).0, 200);
    assert!(!has_table(&a, "alone"), "nothing of the misconfigured node reached the others");
}

/// `clustering.user` / `clustering.password` against a server with authorization: the right
/// password connects, a wrong one is reported as an authorization failure.
#[test]
fn nats_credentials_connect_and_a_wrong_password_is_reported() {
    let nats = LoneNats::start(TempRoot::new(), "nats", "authorization { user: opshost, password: \"s3cret-pw\" }");
    let right = [("CLUSTERING_USER", "opshost"), ("CLUSTERING_PASSWORD", "s3cret-pw")];
    let wrong = [("CLUSTERING_USER", "opshost"), ("CLUSTERING_PASSWORD", "not-it")];
    secured_nats_connects_right_nodes_and_reports_wrong_ones(&nats, &right, &wrong, "authorization");
}

/// `clustering.tls.certificateAuthority` against a server with TLS (a CA and a server
/// certificate for 127.0.0.1 made here with openssl): the CA connects; a node without it
/// (the server's certificate is then unknown to it) is reported as a TLS failure.
#[test]
fn nats_tls_connects_with_the_ca_and_a_node_without_it_is_reported() {
    let dir = TempRoot::new();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=opshost test CA", "-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"]);
    std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem"]);
    let ca = file("ca.pem");
    let tls = format!("tls {{ cert_file: \"{}\", key_file: \"{}\" }}", file("server.pem"), file("server.key"));
    let nats = LoneNats::start(dir, "tls", &tls);
    let right = [("CLUSTERING_TLS_CERTIFICATEAUTHORITY", ca.as_str())];
    secured_nats_connects_right_nodes_and_reports_wrong_ones(&nats, &right, &[], "tls");
}
