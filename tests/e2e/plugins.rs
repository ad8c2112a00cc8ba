//! Operations as plug-ins: components dropped into `componentsRoot` are hot-swapped while
//! traffic flows (no failed request, switch within half a second, other operations keep their
//! latency); a component that cannot load (corrupt, trapping in `describe`, importing what it
//! was not granted, taking a built-in's name) is refused with the reason in the catalog and the
//! previous version keeps serving; a removed file stops being served; `list_operations`,
//! `system_information`'s operation metrics, and `install_node_modules` running the real npm.

use opshost_tests::{basic, test_guest, Server, ADMIN, USER};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a hot swap may take before a test gives up waiting (the bound asserted on swap
/// times is much tighter, in the load test).
const LOAD_WAIT: Duration = Duration::from_secs(20);

fn components(server: &Server) -> PathBuf {
    server.root().join("components")
}

fn guest_bytes(name: &str) -> Vec<u8> {
    let path = test_guest(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {} (built by `cargo xtask build-guests`): {e}", path.display()))
}

/// Polls `probe` until it gives a value; panics naming `what` (and the server log) otherwise.
fn wait_for<T>(server: &Server, what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}.\nlog:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `list_operations` as the super_user.
fn catalog(server: &Server) -> Vec<Value> {
    let (status, body) = server.post(json!({"operation": "list_operations"}));
    assert_eq!(status, 200, "list_operations: {body}");
    body.as_array().cloned().unwrap_or_else(|| panic!("list_operations answers an array: {body}"))
}

/// The catalog entry of the component file `<componentsRoot>/<file>`.
fn entry_for(server: &Server, file: &str) -> Option<Value> {
    let suffix = format!("/components/{file}");
    catalog(server).into_iter().find(|e| e["source"].as_str().is_some_and(|s| s.ends_with(&suffix)))
}

/// Waits until the file's catalog entry satisfies `pred`, and returns it.
fn wait_entry(server: &Server, file: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LOAD_WAIT;
    loop {
        let entry = entry_for(server, file);
        match entry {
            Some(e) if pred(&e) => return e,
            _ if Instant::now() > deadline => {
                panic!("timed out waiting for {file}: {what}; its catalog entry: {entry:?}\nlog:\n{}", server.log())
            }
            _ => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// Waits until `op` answers 200 and returns the body.
fn wait_served(server: &Server, op: &str, body: Value) -> Value {
    wait_for(server, &format!("'{op}' to be served"), LOAD_WAIT, || {
        let (status, answer) = server.post(body.clone());
        (status == 200).then_some(answer)
    })
}

fn hello_version(server: &Server) -> Option<i64> {
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    (status == 200).then(|| body["version"].as_i64()).flatten()
}

fn not_found(server: &Server, op: &str) -> bool {
    let (status, body) = server.post(json!({ "operation": op }));
    status == 400 && body["error"] == format!("Operation '{op}' not found")
}

/// A keep-alive HTTP client (one connection reused for sequential requests).
struct Client {
    agent: ureq::Agent,
    url: String,
    auth: String,
}

impl Client {
    fn new(server: &Server) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).max_idle_connections_per_host(1).build();
        Self { agent, url: server.url(), auth: basic(ADMIN.0, ADMIN.1) }
    }

    fn post(&self, body: &Value) -> (u16, Value) {
        let req = self.agent.post(&self.url).set("Content-Type", "application/json").set("Authorization", &self.auth);
        let (status, text) = match req.send_string(&body.to_string()) {
            Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// One request of a load client.
#[derive(Clone, Debug)]
struct Sample {
    sent: Instant,
    received: Instant,
    status: u16,
    version: Option<i64>,
    body: Value,
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    assert!(!latencies.is_empty(), "no samples");
    latencies.sort();
    let rank = ((latencies.len() as f64) * 0.99).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}

#[test]
fn hot_swap_under_load_switches_fast_with_no_failed_request() {
    let server = Arc::new(Server::start());
    let file = components(&server).join("test_hello.wasm");
    let (v1, v2) = (guest_bytes("hello_v1"), guest_bytes("hello_v2"));
    std::fs::write(&file, &v1).expect("write v1");
    wait_for(&server, "test_hello v1 after dropping it in", LOAD_WAIT, || (hello_version(&server) == Some(1)).then_some(()));
    // Warm-up swap, not measured: the first load of v2 may compile it (the compile cache then
    // holds both versions); the measured swaps are about the swap, not about compilation.
    let warm = Instant::now();
    for (bytes, version) in [(&v2, 2), (&v1, 1)] {
        std::fs::write(&file, bytes).expect("write");
        wait_for(&server, "warm-up swap", LOAD_WAIT, || (hello_version(&server) == Some(version)).then_some(()));
    }
    println!("warm-up (v1 -> v2 -> v1, may include compiling): {:?}", warm.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let hello_samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let config_samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let spawn_client = |op: &'static str, samples: Arc<Mutex<Vec<Sample>>>| {
        let (client, stop) = (Client::new(&server), stop.clone());
        std::thread::spawn(move || {
            let body = json!({ "operation": op });
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let (status, answer) = client.post(&body);
                let received = Instant::now();
                let version = answer["version"].as_i64();
                samples.lock().expect("lock").push(Sample { sent, received, status, version, body: answer });
            }
        })
    };
    let clients = [
        spawn_client("test_hello", hello_samples.clone()),
        spawn_client("get_configuration", config_samples.clone()),
    ];

    // Latency of another operation before any swap...
    let before_start = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let swaps_start = Instant::now();
    // ...and during ten in-place writes (truncate + write, as an editor or `cp` does).
    let mut swaps: Vec<(i64, Instant, Instant)> = Vec::new(); // (version, written, first answer)
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        let (bytes, version) = if i % 2 == 0 { (&v2, 2) } else { (&v1, 1) };
        let written = Instant::now();
        std::fs::write(&file, bytes).expect("write in place");
        let switched = wait_for(&server, &format!("swap {i} to v{version}"), Duration::from_secs(10), || {
            hello_samples.lock().expect("lock").iter().find(|s| s.sent >= written && s.version == Some(version)).map(|s| s.received)
        });
        swaps.push((version, written, switched));
    }
    std::thread::sleep(Duration::from_millis(200));
    let swaps_end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }

    let hello = hello_samples.lock().expect("lock").clone();
    let config = config_samples.lock().expect("lock").clone();
    let switch_times: Vec<Duration> = swaps.iter().map(|(_, written, switched)| *switched - *written).collect();
    let millis: Vec<u128> = switch_times.iter().map(Duration::as_millis).collect();
    println!("hot swap switch times (ms, write -> first answer of the new version): {millis:?}");

    let failed: Vec<&Sample> = hello.iter().chain(&config).filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "{} failed requests out of {}, e.g. {:?}", failed.len(), hello.len() + config.len(), failed.first());
    assert!(hello.len() > 100 && config.len() > 100, "the clients made progress: {} / {}", hello.len(), config.len());
    // The 0.5 s target is a benchmark figure (this machine is shared with the rest of the
    // suite, which inserts hundreds of thousands of records meanwhile): here the typical swap
    // must make it, and none may hang.
    let mut sorted = switch_times.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(median <= Duration::from_millis(500), "median swap {median:?} (all: {millis:?} ms)");
    for (i, t) in switch_times.iter().enumerate() {
        assert!(*t <= Duration::from_secs(5), "swap {i} took {t:?} (all: {millis:?} ms)");
    }
    // Once a version answered, requests sent after it never see the previous one again (the
    // registry is published atomically), until the next write.
    for (i, (version, _, switched)) in swaps.iter().enumerate() {
        let next_write = swaps.get(i + 1).map(|s| s.1).unwrap_or(swaps_end);
        let stale = hello.iter().find(|s| s.sent >= *switched && s.sent < next_write && s.version != Some(*version));
        assert!(stale.is_none(), "swap {i}: after v{version} answered, a later request got {stale:?}");
    }
    assert!(hello.iter().all(|s| s.body["user"] == ADMIN.0), "every answer is a full one");

    let latencies = |from: Instant, to: Instant| -> Vec<Duration> {
        config.iter().filter(|s| s.sent >= from && s.sent < to).map(|s| s.received - s.sent).collect()
    };
    let (before, during) = (latencies(before_start, swaps_start), latencies(swaps_start, swaps_end));
    let (before_n, during_n) = (before.len(), during.len());
    let (before_p99, during_p99) = (p99(before), p99(during));
    println!(
        "get_configuration p99: before swaps {before_p99:?} ({before_n} calls), during swaps {during_p99:?} ({during_n} calls); test_hello calls: {}",
        hello.len()
    );
    // A generous bound (the suite runs beside this test); the isolated figure is in the notes.
    let bound = (before_p99 * 3).max(before_p99 + Duration::from_millis(100));
    assert!(during_p99 <= bound, "get_configuration p99 during swaps {during_p99:?} > {bound:?} (before: {before_p99:?})");
}

#[test]
fn a_corrupt_component_is_refused_and_a_replaced_one_keeps_serving_its_previous_version() {
    let server = Server::builder().component(test_guest("hello_v1"), "test_hello.wasm").start();
    assert_eq!(hello_version(&server), Some(1));
    let v1 = entry_for(&server, "test_hello.wasm").expect("test_hello.wasm in the catalog");
    assert_eq!((v1["status"].as_str(), v1["name"].as_str()), (Some("serving"), Some("test_hello")), "{v1}");

    // A new file of garbage: refused, failed in the catalog with the reason.
    std::fs::write(components(&server).join("junk.wasm"), b"\0asm\x01\0\0\0 this is not a component").expect("write junk");
    let junk = wait_entry(&server, "junk.wasm", "status failed", |e| e["status"] == "failed");
    let reason = junk["last_error"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "a reason is recorded: {junk}");
    assert!(junk["name"].is_null() && junk["builtin"] == false, "{junk}");
    assert!(server.log_contains("junk.wasm not loaded", Duration::from_secs(5)), "the failure is logged:\n{}", server.log());

    // Garbage written over the serving file: refused, the previous version keeps serving.
    std::fs::write(components(&server).join("test_hello.wasm"), b"garbage over a serving component").expect("write over");
    let replaced = wait_entry(&server, "test_hello.wasm", "a load error", |e| e["last_error"].is_string());
    assert_eq!(hello_version(&server), Some(1), "the previous version still serves");
    // The entry still describes what serves (v1's hash), with the failed attempt's reason.
    assert_eq!(replaced["hash"], v1["hash"], "{replaced}");
    assert_eq!(replaced["status"], "serving", "the previous version serves: {replaced}");
    assert!(server.log_contains("test_hello.wasm not loaded", Duration::from_secs(5)), "{}", server.log());

    // Fixing the file serves the fixed version and clears the error.
    std::fs::write(components(&server).join("test_hello.wasm"), guest_bytes("hello_v2")).expect("write v2");
    wait_for(&server, "v2 after the fix", LOAD_WAIT, || (hello_version(&server) == Some(2)).then_some(()));
    let fixed = wait_entry(&server, "test_hello.wasm", "no error", |e| e["last_error"].is_null());
    assert_eq!(fixed["status"], "serving", "{fixed}");
    assert_ne!(fixed["hash"], v1["hash"]);
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
}

#[test]
fn restart_keeps_the_previous_version_of_a_component_that_now_fails() {
    let server = Server::builder().component(test_guest("hello_v1"), "test_hello.wasm").start();
    assert_eq!(hello_version(&server), Some(1));
    std::fs::write(components(&server).join("test_hello.wasm"), b"garbage over a serving component").expect("write over");
    wait_entry(&server, "test_hello.wasm", "a load error", |e| e["last_error"].is_string());
    let (status, _) = server.post(json!({"operation": "restart"}));
    assert_eq!(status, 200);
    assert!(server.log_contains("restarted in", LOAD_WAIT), "{}", server.log());
    assert_eq!(hello_version(&server), Some(1), "DESIGN.md: a component that fails to load leaves the previous version serving");
}

#[test]
fn an_ungranted_import_is_refused_naming_the_operation_and_the_interface() {
    let server = Server::start();
    std::fs::copy(test_guest("test_ungranted"), components(&server).join("test_ungranted.wasm")).expect("copy");
    let entry = wait_entry(&server, "test_ungranted.wasm", "status failed", |e| e["status"] == "failed");
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("'test_ungranted'") && reason.contains("opshost:host/storage"), "reason: {reason}");
    assert!(server.log_contains("imports 'opshost:host/storage", Duration::from_secs(5)), "{}", server.log());
    assert!(not_found(&server, "test_ungranted"));
}

#[test]
fn a_granted_import_loads_and_answers() {
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"test_ungranted": ["storage"]}"#)
        .component(test_guest("test_ungranted"), "test_ungranted.wasm")
        .start();
    let (status, _) = server.post(json!({"operation": "create_database", "database": "plugged"}));
    assert_eq!(status, 200);
    let (status, body) = server.post(json!({"operation": "test_ungranted"}));
    assert_eq!(status, 200, "{body}");
    assert!(body["databases"].as_array().is_some_and(|d| d.contains(&json!("plugged"))), "{body}");
    let entry = entry_for(&server, "test_ungranted.wasm").expect("in the catalog");
    assert_eq!(entry["status"], "serving", "{entry}");
    assert!(entry["grants"].as_array().is_some_and(|g| g.contains(&json!("storage"))), "{entry}");

    // Revoking the grant (in the file, then restart) takes the operation out of service: the
    // "keep the previous version" fallback must not keep a grant the configuration dropped.
    let config = server.root().join("opshost-config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("- storage"), "{text}");
    std::fs::write(&config, text.replace("- storage", "- log")).expect("write config");
    let (status, _) = server.post(json!({"operation": "restart"}));
    assert_eq!(status, 200);
    let deadline = Instant::now() + LOAD_WAIT;
    loop {
        let (status, body) = server.post(json!({"operation": "test_ungranted"}));
        if status == 400 {
            assert_eq!(body, json!({"error": "Operation 'test_ungranted' not found"}));
            break;
        }
        assert!(Instant::now() < deadline, "still served after the grant was revoked: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let entry = entry_for(&server, "test_ungranted.wasm").expect("in the catalog");
    assert!(entry["last_error"].as_str().is_some_and(|e| e.contains("storage")), "{entry}");
}

#[test]
fn a_trap_in_describe_is_refused_and_the_server_keeps_serving() {
    let server = Server::builder().component(test_guest("hello_v1"), "test_hello.wasm").start();
    std::fs::copy(test_guest("test_describe_trap"), components(&server).join("test_describe_trap.wasm")).expect("copy");
    let entry = wait_entry(&server, "test_describe_trap.wasm", "status failed", |e| e["status"] == "failed");
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("describe"), "the reason says describe failed: {reason}");
    assert!(server.log_contains("test_describe_trap.wasm not loaded", Duration::from_secs(5)), "{}", server.log());
    assert_eq!(hello_version(&server), Some(1));
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
}

#[test]
fn a_removed_component_is_no_longer_served() {
    let server = Server::builder().component(test_guest("hello_v1"), "test_hello.wasm").start();
    assert_eq!(hello_version(&server), Some(1));
    std::fs::remove_file(components(&server).join("test_hello.wasm")).expect("remove");
    wait_for(&server, "test_hello to stop being served", LOAD_WAIT, || not_found(&server, "test_hello").then_some(()));
    let entry = wait_entry(&server, "test_hello.wasm", "status removed", |e| e["status"] == "removed");
    assert_eq!(entry["name"], "test_hello", "{entry}");
    // Dropping it in again serves it again.
    std::fs::write(components(&server).join("test_hello.wasm"), guest_bytes("hello_v2")).expect("write");
    wait_for(&server, "test_hello back", LOAD_WAIT, || (hello_version(&server) == Some(2)).then_some(()));
    wait_entry(&server, "test_hello.wasm", "status serving", |e| e["status"] == "serving");
}

#[test]
fn a_third_party_component_cannot_replace_a_built_in_unless_allowed() {
    let built_in = opshost_tests::dist().join("operations").join("get_configuration.wasm");
    // Granting `config` by that name lets the file pass the import check (made before anything
    // of it runs), so what refuses it is the name.
    let server = Server::builder().env("OPERATIONSAPI_GRANTS", r#"{"get_configuration": ["config"]}"#).start();
    std::fs::copy(&built_in, components(&server).join("my_config.wasm")).expect("copy");
    let entry = wait_entry(&server, "my_config.wasm", "status failed", |e| e["status"] == "failed");
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("'get_configuration' is a built-in operation and cannot be replaced") && reason.contains("operationsApi.replaceBuiltins"),
        "reason: {reason}"
    );
    let builtin = catalog(&server).into_iter().find(|e| e["name"] == "get_configuration" && e["builtin"] == true).expect("built-in entry");
    assert_eq!(builtin["status"], "serving", "{builtin}");
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
    drop(server);

    // Allowed (and granted what it imports): the component from componentsRoot serves the name.
    let server = Server::builder()
        .env("OPERATIONSAPI_REPLACEBUILTINS", r#"["get_configuration"]"#)
        .env("OPERATIONSAPI_GRANTS", r#"{"get_configuration": ["config"]}"#)
        .component(built_in, "my_config.wasm")
        .start();
    let entry = entry_for(&server, "my_config.wasm").expect("in the catalog");
    assert_eq!((entry["status"].as_str(), entry["builtin"].as_bool()), (Some("serving"), Some(false)), "{entry}");
    assert_eq!(entry["name"], "get_configuration", "{entry}");
    let original = catalog(&server)
        .into_iter()
        .find(|e| e["builtin"] == true && e["name"] == "get_configuration")
        .expect("the built-in is in the catalog");
    assert_eq!(original["status"], "replaced", "{original}");
    let source = entry["source"].as_str().unwrap_or_default();
    assert!(Path::new(source).starts_with(components(&server)), "source {source} is in componentsRoot");
    assert!(
        server.log_contains(&format!("serving operation 'get_configuration' 0.1.0 from {source}"), Duration::from_secs(5)),
        "{}",
        server.log()
    );
    let (status, body) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200, "{body}");
    assert!(body["operationsApi"].is_object(), "{body}");
}

#[test]
fn a_wasi_component_needs_the_wasi_grant() {
    let server = Server::start();
    std::fs::copy(test_guest("test_wasi"), components(&server).join("test_wasi.wasm")).expect("copy test_wasi");
    let entry = wait_entry(&server, "test_wasi.wasm", "status failed", |e| e["status"] == "failed");
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("'test_wasi'") && reason.contains("imports 'wasi:"), "reason: {reason}");
    assert!(not_found(&server, "test_wasi"));
}

#[test]
fn a_granted_wasi_component_reads_the_clock_and_its_output_goes_to_the_log() {
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"test_wasi": ["wasi"]}"#)
        .component(test_guest("test_wasi"), "test_wasi.wasm")
        .start();
    let body = wait_served(&server, "test_wasi", json!({"operation": "test_wasi"}));
    assert_eq!(body["wasi"], true, "{body}");
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let guest_ms = body["now_ms"].as_i64().unwrap_or_else(|| panic!("now_ms: {body}"));
    assert!((guest_ms - now_ms).abs() < 5_000, "guest clock {guest_ms} vs test clock {now_ms}");
    assert!(server.log_contains("hello from wasi", Duration::from_secs(5)), "{}", server.log());
    let entry = entry_for(&server, "test_wasi.wasm").expect("in the catalog");
    assert!(entry["grants"].as_array().is_some_and(|g| g.contains(&json!("wasi"))), "{entry}");
}

#[test]
fn the_example_operation_hot_loads_from_components_root() {
    let server = Server::start();
    assert!(not_found(&server, "hello_world"));
    std::fs::copy(test_guest("hello_operation"), components(&server).join("hello_operation.wasm")).expect("copy the example");
    let body = wait_served(&server, "hello_world", json!({"operation": "hello_world", "name": "Ada"}));
    assert_eq!(body["message"], "hello Ada, from admin", "{body}");
    let (status, body) = server.post_as(USER, json!({"operation": "hello_world"}));
    assert_eq!((status, body["message"].as_str()), (200, Some("hello world, from plain")), "a non-super_user may call it: {body}");
    let entry = entry_for(&server, "hello_operation.wasm").expect("in the catalog");
    assert_eq!((entry["name"].as_str(), entry["builtin"].as_bool()), (Some("hello_world"), Some(false)), "{entry}");
}

#[test]
fn list_operations_reports_each_component_and_its_counters() {
    let server = Server::start();
    let before = catalog(&server);
    let builtins: Vec<&Value> = before.iter().filter(|e| e["builtin"] == true).collect();
    let shipped = std::fs::read_dir(opshost_tests::dist().join("operations")).expect("operations").count();
    assert_eq!(builtins.len(), shipped, "one entry per built-in component");
    for e in &builtins {
        assert_eq!(e["status"], "serving", "{e}");
        assert!(e["hash"].as_str().is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())), "{e}");
        assert!(e["version"].as_str().is_some_and(|v| !v.is_empty()), "{e}");
        assert!(e["grants"].is_array() && e["loaded_at"].is_u64() && e["last_error"].is_null(), "{e}");
    }
    let config = |list: &[Value]| list.iter().find(|e| e["name"] == "get_configuration").cloned().expect("get_configuration");
    let entry = config(&before);
    assert!(entry["grants"].as_array().is_some_and(|g| g.contains(&json!("config"))), "{entry}");
    assert!(entry["source"].as_str().is_some_and(|s| s.ends_with("operations/get_configuration.wasm")), "{entry}");
    let calls_before = entry["stats"]["calls"].as_u64().expect("calls");
    for _ in 0..5 {
        let (status, _) = server.post(json!({"operation": "get_configuration"}));
        assert_eq!(status, 200);
    }
    let after = config(&catalog(&server));
    assert_eq!(after["stats"]["calls"].as_u64(), Some(calls_before + 5), "{after}");
    assert!(after["stats"]["latency_ms"]["p99"].as_f64().is_some_and(|p| p > 0.0), "{after}");

    let (status, body) = server.post_as(USER, json!({"operation": "list_operations"}));
    assert_eq!(status, 403, "{body}");

    let (status, body) = server.post(json!({"operation": "system_information", "attributes": ["metrics"]}));
    assert_eq!(status, 200, "{body}");
    let counters = &body["metrics"]["operations"]["get_configuration"];
    assert!(counters["calls"].as_u64().is_some_and(|c| c >= calls_before + 5), "{body}");
    assert!(counters["errors"].is_u64() && counters["latency_ms"]["p50"].is_number(), "{body}");
}

const DEPRECATED: &str = "install_node_modules is deprecated. Dependencies are automatically installed on deploy, and install_node_modules can lead to inconsistent behavior";

fn npm_project(server: &Server, name: &str) -> PathBuf {
    let dir = components(server).join(name);
    std::fs::create_dir_all(&dir).expect("project folder");
    let manifest = json!({"name": name, "version": "1.0.0", "private": true, "dependencies": {"is-number": "7.0.0"}});
    std::fs::write(dir.join("package.json"), manifest.to_string()).expect("package.json");
    dir
}

#[test]
fn install_node_modules_validates_its_request() {
    let server = Server::start();
    for (body, text) in [
        (json!({"operation": "install_node_modules"}), "'projects' is required"),
        (json!({"operation": "install_node_modules", "projects": "app"}), "'projects' must be an array"),
        (json!({"operation": "install_node_modules", "projects": []}), "'projects' must contain at least 1 items"),
    ] {
        let (status, answer) = server.post(body.clone());
        assert_eq!((status, answer["error"].as_str()), (400, Some(text)), "{body} -> {answer}");
    }
    let (status, body) = server.post(json!({"operation": "install_node_modules", "projects": ["nosuch"]}));
    assert_eq!(status, 200, "{body}");
    assert!(body["nosuch"]["npm_output"].is_null(), "{body}");
    assert!(body["nosuch"]["npm_error"].as_str().is_some_and(|e| e.contains("nosuch")), "{body}");
    assert_eq!(body["warning"], DEPRECATED);
    let (status, _) = server.post_as(USER, json!({"operation": "install_node_modules", "projects": ["nosuch"]}));
    assert_eq!(status, 403, "super_user only");
}

#[test]
fn install_node_modules_runs_npm_in_the_project() {
    let server = Server::start();
    let dir = npm_project(&server, "my-app");
    let modules = dir.join("node_modules");
    let explain = |body: &Value| {
        format!(
            "npm could not install is-number 7.0.0 from the npm registry here (is `npm` installed and https://registry.npmjs.org reachable?): {body}"
        )
    };

    let (status, body) = server.post(json!({"operation": "install_node_modules", "projects": ["my-app"], "dry_run": true}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["warning"], DEPRECATED);
    let output = body["my-app"]["npm_output"].as_str().unwrap_or_else(|| panic!("{}", explain(&body)));
    assert!(output.contains("is-number") || output.contains("added"), "dry run output: {output}");
    assert!(!modules.exists(), "a dry run installs nothing: {body}");

    let (status, body) = server.post(json!({"operation": "install_node_modules", "projects": ["my-app"], "dry_run": false}));
    assert_eq!(status, 200, "{body}");
    assert!(modules.join("is-number").join("package.json").is_file(), "{}", explain(&body));
    let installed: Value = serde_json::from_str(&std::fs::read_to_string(modules.join("is-number").join("package.json")).expect("read"))
        .expect("package.json of is-number");
    assert_eq!(installed["version"], "7.0.0");
    assert!(body["my-app"]["npm_output"].as_str().is_some_and(|o| o.contains("added")), "{body}");
    // A project folder is not a component: nothing is loaded from it.
    assert!(catalog(&server).iter().all(|e| !e["source"].as_str().unwrap_or_default().contains("my-app")));
}
