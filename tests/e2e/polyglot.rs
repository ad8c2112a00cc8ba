//! Operations written in JavaScript (issue 14), against the real binary: the example
//! `js_aggregate` (examples/js/) loads from `componentsRoot` when granted `storage`, answers an
//! aggregate read through the host's cursor, answers 400 with HarperDB's texts, and is refused
//! without the grant; the test guest `js_probe` (tests/guests-js/) is hot-swapped under a
//! continuous client with no failed request, and is stopped by `callTimeout` and the memory
//! limit like a Rust guest. The components are built (componentize-js) and precompiled by
//! `cargo xtask test`, never here. The SDK's and the example's own unit tests run under Node.

use opshost_tests::{basic, test_guest, Server, ADMIN, USER};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a component may take to appear (the test compile cache normally has it: well under a
/// second; a compile of these 12 MB components takes ~10-20 s on a busy 2-core machine).
const LOAD_WAIT: Duration = Duration::from_secs(90);

fn wait_for<T>(server: &Server, what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}.\nlog:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The catalog entry of `<componentsRoot>/<file>`.
fn entry_for(server: &Server, file: &str) -> Option<Value> {
    let (status, body) = server.post(json!({"operation": "list_operations"}));
    assert_eq!(status, 200, "list_operations: {body}");
    let suffix = format!("/components/{file}");
    body.as_array()?.iter().find(|e| e["source"].as_str().is_some_and(|s| s.ends_with(&suffix))).cloned()
}

fn dogs(server: &Server) {
    let (status, body) = server.post(json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    assert_eq!(status, 200, "{body}");
    let records: Vec<Value> = (0..1000)
        .map(|i| json!({"id": i, "breed": if i % 2 == 0 { "lab" } else { "pug" }, "weight": i % 50, "age": i % 10}))
        .chain([json!({"id": 5000, "breed": "lab", "weight": "heavy"})])
        .collect();
    let (status, body) = server.post(json!({"operation": "insert", "database": "dev", "table": "dog", "records": records}));
    assert_eq!(status, 200, "{body}");
}

fn js_aggregate_server() -> Server {
    Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"js_aggregate": ["storage"]}"#)
        .component(test_guest("js_aggregate"), "js_aggregate.wasm")
        .start()
}

#[test]
fn the_js_example_loads_when_granted_and_answers_an_aggregate_over_http() {
    let server = js_aggregate_server();
    dogs(&server);
    let entry = wait_for(&server, "js_aggregate in the catalog", LOAD_WAIT, || entry_for(&server, "js_aggregate.wasm"));
    assert_eq!((entry["status"].as_str(), entry["name"].as_str(), entry["builtin"].as_bool()), (Some("serving"), Some("js_aggregate"), Some(false)), "{entry}");
    assert!(entry["grants"].as_array().is_some_and(|g| g.contains(&json!("storage")) && !g.contains(&json!("wasi"))), "no WASI needed: {entry}");

    let (status, body) = server.post(json!({"operation": "js_aggregate", "database": "dev", "table": "dog", "attribute": "weight"}));
    assert_eq!(status, 200, "{body}");
    // weights are i % 50 over 1000 records: 20 of each 0..49.
    let sum: i64 = (0..1000).map(|i| i % 50).sum();
    assert_eq!(body["count"], 1000, "{body}");
    assert_eq!(body["sum"], sum, "{body}");
    assert_eq!((body["min"].as_i64(), body["max"].as_i64()), (Some(0), Some(49)), "{body}");
    assert_eq!(body["avg"].as_f64(), Some(sum as f64 / 1000.0), "{body}");
    assert_eq!(body["skipped"], 1, "the record with a text weight: {body}");

    // Grouped, with conditions passed through to the host's search.
    let (status, body) = server.post(json!({
        "operation": "js_aggregate", "database": "dev", "table": "dog", "attribute": "weight", "group_by": "breed",
        "conditions": {"attribute": "age", "comparator": "less-than", "value": 5}
    }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 500, "ages 0..4 of 0..9: {body}");
    // Even ids are labs: ids ending in 0, 2, 4 are labs, 1 and 3 pugs.
    assert_eq!(body["groups"]["lab"]["count"], 300, "{body}");
    assert_eq!(body["groups"]["pug"]["count"], 200, "{body}");

    // Anyone logged in may call it (superUserOnly: false); what the host lets them read still applies.
    let (status, body) = server.post_as(USER, json!({"operation": "js_aggregate"}));
    assert_eq!((status, body["error"].as_str()), (400, Some("'database' is required")), "{body}");
}

#[test]
fn the_js_example_answers_400_with_harperdb_texts_and_passes_host_errors_on() {
    let server = js_aggregate_server();
    dogs(&server);
    for (body, text) in [
        (json!({"operation": "js_aggregate", "table": "dog", "attribute": "weight"}), "'database' is required"),
        (json!({"operation": "js_aggregate", "database": 7, "table": "dog", "attribute": "weight"}), "'database' must be a string"),
        (json!({"operation": "js_aggregate", "database": "dev", "table": "dog"}), "'attribute' is required"),
        (json!({"operation": "js_aggregate", "database": "dev", "table": ["dog"], "attribute": "weight"}), "'table' must be a string"),
        (json!({"operation": "js_aggregate", "database": "dev", "table": "dog", "attribute": "weight", "group_by": 1}), "'group_by' must be a string"),
        (json!({"operation": "js_aggregate", "database": "dev", "table": "dog", "attribute": "weight", "conditions": "age"}), "'conditions' must be an object"),
    ] {
        let (status, answer) = server.post(body.clone());
        assert_eq!((status, answer), (400, json!({ "error": text })), "{body}");
    }
    // The host's own error (an unknown table) keeps its status and text through the JS SDK.
    let (status, body) = server.post(json!({"operation": "js_aggregate", "database": "dev", "table": "cat", "attribute": "weight"}));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("cat")), "{body}");
    // A comparator the WIT does not have: the SDK's 400, not a trap in the bindings.
    let (status, body) = server.post(json!({"operation": "js_aggregate", "database": "dev", "table": "dog", "attribute": "weight",
        "conditions": {"attribute": "age", "comparator": "no-such-comparator", "value": 1}}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("'age': unknown comparator 'no-such-comparator'")), "{body}");
}

#[test]
fn the_js_example_is_refused_without_the_storage_grant() {
    let server = Server::builder().component(test_guest("js_aggregate"), "js_aggregate.wasm").start();
    let entry = wait_for(&server, "a failed catalog entry", LOAD_WAIT, || entry_for(&server, "js_aggregate.wasm").filter(|e| e["status"] == "failed"));
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("'js_aggregate'") && reason.contains("opshost:host/storage"), "reason: {reason}");
    let (status, body) = server.post(json!({"operation": "js_aggregate", "database": "dev", "table": "dog", "attribute": "weight"}));
    assert_eq!((status, body), (400, json!({"error": "Operation 'js_aggregate' not found"})));
    // Granted something else: still refused, naming the interface it lacks.
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"js_aggregate": ["config", "wasi"]}"#)
        .component(test_guest("js_aggregate"), "js_aggregate.wasm")
        .start();
    let entry = wait_for(&server, "a failed catalog entry", LOAD_WAIT, || entry_for(&server, "js_aggregate.wasm").filter(|e| e["status"] == "failed"));
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("opshost:host/storage") && reason.contains("not granted"), "reason: {reason}");
}

/// The version a probe operation (`js_probe`, `py_probe`) answers, if it answers.
fn probe_version(server: &Server, op: &str) -> Option<i64> {
    let (status, body) = server.post(json!({"operation": op}));
    (status == 200).then(|| body["version"].as_i64()).flatten()
}

/// The probe operation `op` (test guests `<op>_v1`, `<op>_v2`), swapped in place three times
/// while a client calls it without pause: every answer a full 200.
fn hot_swapped_under_a_continuous_client_with_no_failed_request(op: &str) {
    let server = Arc::new(Server::builder().component(test_guest(&format!("{op}_v1")), &format!("{op}.wasm")).start());
    wait_for(&server, &format!("{op} v1"), LOAD_WAIT, || (probe_version(&server, op) == Some(1)).then_some(()));
    let file = server.root().join("components").join(format!("{op}.wasm"));
    let (v1, v2) = (read(&test_guest(&format!("{op}_v1"))), read(&test_guest(&format!("{op}_v2"))));
    let request = json!({"operation": op}).to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<(u16, Option<i64>, Value)>>> = Arc::default();
    let client = {
        let (stop, samples, request) = (stop.clone(), samples.clone(), request.clone());
        let url = server.url();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
            let auth = basic(ADMIN.0, ADMIN.1);
            while !stop.load(Ordering::Relaxed) {
                let req = agent.post(&url).set("Content-Type", "application/json").set("Authorization", &auth);
                let (status, text) = match req.send_string(&request) {
                    Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
                    Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                samples.lock().expect("lock").push((status, body["version"].as_i64(), body));
            }
        })
    };
    let mut switch_times = Vec::new();
    for (bytes, version) in [(&v2, 2), (&v1, 1), (&v2, 2)] {
        std::thread::sleep(Duration::from_millis(300));
        let written = Instant::now();
        std::fs::write(&file, bytes).expect("write in place");
        let seen = samples.lock().expect("lock").len();
        wait_for(&server, &format!("{op} v{version} after the swap"), LOAD_WAIT, || {
            samples.lock().expect("lock")[seen..].iter().any(|s| s.1 == Some(version)).then_some(())
        });
        switch_times.push(written.elapsed());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client thread");
    let samples = samples.lock().expect("lock").clone();
    println!("{op} swaps (write -> first answer of the new version): {switch_times:?}; {} requests", samples.len());
    let failed: Vec<_> = samples.iter().filter(|s| s.0 != 200 || s.1.is_none()).collect();
    assert!(failed.is_empty(), "{} failed requests out of {}, e.g. {:?}", failed.len(), samples.len(), failed.first());
    assert!(samples.len() > 20, "the client made progress: {}", samples.len());
    assert!(samples.iter().all(|s| s.2["user"] == ADMIN.0), "every answer is a full one");
    let entry = entry_for(&server, &format!("{op}.wasm")).expect("in the catalog");
    assert_eq!((entry["status"].as_str(), entry["version"].as_str()), (Some("serving"), Some("0.2.0")), "{entry}");
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {} (built by `cargo xtask build-guests`): {e}", path.display()))
}

/// The probe operation `op` (test guest `<op>_v1`) stopped by a 1 s callTimeout in an endless
/// loop, and by callMemoryMB in an unbounded allocation; the next call answers normally.
fn stopped_by_call_timeout_and_the_memory_limit(op: &str) {
    let (guest, file) = (test_guest(&format!("{op}_v1")), format!("{op}.wasm"));
    let server = Arc::new(
        Server::builder()
            // The default callMemoryMB (128): another value changes the engine's configuration,
            // so the precompiled component (12-18 MB) would be compiled again at start.
            .env("OPERATIONSAPI_LIMITS_CALLTIMEOUT", "1000")
            .component(guest.clone(), &file)
            .start(),
    );
    wait_for(&server, &format!("{op} v1 within callMemoryMB"), LOAD_WAIT, || (probe_version(&server, op) == Some(1)).then_some(()));

    // An endless loop: stopped at the deadline, while a super_user's request answers meanwhile.
    let spinning = {
        let (server, op) = (server.clone(), op.to_string());
        std::thread::spawn(move || {
            let started = Instant::now();
            let answer = server.post(json!({"operation": op, "spin": true}));
            (answer, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "another request answered during the loop in {:?}", started.elapsed());
    let ((status, body), took) = spinning.join().expect("spinning client");
    assert_eq!(status, 500, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with(&format!("Operation '{op}' ran past its time limit"))), "{body}");
    assert!(took < Duration::from_secs(15), "deadline of 1 s enforced, took {took:?}");

    // Unbounded allocation: growth past callMemoryMB is refused and the call ends. Unlike a Rust
    // guest, which traps, the JS engine turns the refused growth into its own "out of memory"
    // exception (CPython raises MemoryError), which the SDK answers as an internal error: a 500
    // either way. On a server with the default callTimeout: on a loaded machine the engine may
    // take more than 1 s to fill 128 MiB, and then the deadline, not the memory limit, would end
    // the call.
    drop(server);
    let server = Server::builder().component(guest, &file).start();
    wait_for(&server, &format!("{op} v1"), LOAD_WAIT, || (probe_version(&server, op) == Some(1)).then_some(()));
    let started = Instant::now();
    let (status, body) = server.post(json!({"operation": op, "hog": true}));
    assert_eq!(status, 500, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("out of memory")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());

    // A fresh instance for the next call: it answers normally.
    assert_eq!(probe_version(&server, op), Some(1));
}

#[test]
fn a_js_operation_is_hot_swapped_under_a_continuous_client_with_no_failed_request() {
    hot_swapped_under_a_continuous_client_with_no_failed_request("js_probe");
}

#[test]
fn a_js_operation_is_stopped_by_call_timeout_and_the_memory_limit() {
    stopped_by_call_timeout_and_the_memory_limit("js_probe");
}

#[test]
fn the_js_sdk_and_example_unit_tests_pass_under_node() {
    let repo = opshost_tests::repo();
    for dir in ["guest-sdk-js", "examples/js/js_aggregate"] {
        let output = Command::new("node")
            .args(["--test", "test/"])
            .current_dir(repo.join(dir))
            .output()
            .unwrap_or_else(|e| panic!("running node (Node.js builds the JavaScript operations too): {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "node --test in {dir} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("# fail 0") && !stdout.contains("# pass 0"), "{dir}: {stdout}");
    }
}

// ---------------------------------------------------------------------------------------------
// Python (componentize-py): the example `py_aggregate` (examples/py/) and the test guest
// `py_probe` (tests/guests-py/), the same proofs as for JavaScript. The components (18 MB each)
// are built and precompiled by `cargo xtask test`; every server here keeps the default engine
// configuration (callMemoryMB), so they load from that cache instead of compiling at start.

fn py_aggregate_server() -> Server {
    Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"py_aggregate": ["storage"]}"#)
        .component(test_guest("py_aggregate"), "py_aggregate.wasm")
        .start()
}

#[test]
fn the_python_example_loads_when_granted_answers_an_aggregate_and_400s_with_harperdb_texts() {
    let server = py_aggregate_server();
    dogs(&server);
    let entry = wait_for(&server, "py_aggregate in the catalog", LOAD_WAIT, || entry_for(&server, "py_aggregate.wasm"));
    assert_eq!((entry["status"].as_str(), entry["name"].as_str(), entry["builtin"].as_bool()), (Some("serving"), Some("py_aggregate"), Some(false)), "{entry}");
    assert!(entry["grants"].as_array().is_some_and(|g| g.contains(&json!("storage")) && !g.contains(&json!("wasi"))), "no WASI needed: {entry}");

    let (status, body) = server.post(json!({"operation": "py_aggregate", "database": "dev", "table": "dog", "attribute": "weight"}));
    assert_eq!(status, 200, "{body}");
    let sum: i64 = (0..1000).map(|i| i % 50).sum();
    assert_eq!((body["count"].as_i64(), body["sum"].as_i64(), body["skipped"].as_i64()), (Some(1000), Some(sum), Some(1)), "{body}");
    assert_eq!((body["min"].as_i64(), body["max"].as_i64()), (Some(0), Some(49)), "{body}");
    assert_eq!(body["avg"].as_f64(), Some(sum as f64 / 1000.0), "{body}");
    assert_eq!((body["database"].as_str(), body["table"].as_str(), body["attribute"].as_str()), (Some("dev"), Some("dog"), Some("weight")));

    // Grouped, with conditions passed through to the host's search.
    let grouped = json!({
        "operation": "py_aggregate", "database": "dev", "table": "dog", "attribute": "weight", "group_by": "breed",
        "conditions": {"attribute": "age", "comparator": "less-than", "value": 5}
    });
    let (status, body) = server.post(grouped.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 500, "ages 0..4 of 0..9: {body}");
    assert_eq!((body["groups"]["lab"]["count"].as_i64(), body["groups"]["pug"]["count"].as_i64()), (Some(300), Some(200)), "{body}");
    // Anyone logged in may call it (super_user_only=False), but the host still applies the
    // caller's table permissions to what the operation reads: a plain user without them gets 403.
    let (status, body) = server.post_as(USER, grouped);
    assert_eq!(status, 403, "{body}");
    assert!(body["unauthorized_access"][0]["table"] == "dog", "{body}");

    for (body, text) in [
        (json!({"operation": "py_aggregate", "table": "dog", "attribute": "weight"}), "'database' is required"),
        (json!({"operation": "py_aggregate", "database": 7, "table": "dog", "attribute": "weight"}), "'database' must be a string"),
        (json!({"operation": "py_aggregate", "database": "dev", "table": "dog"}), "'attribute' is required"),
        (json!({"operation": "py_aggregate", "database": "dev", "table": ["dog"], "attribute": "weight"}), "'table' must be a string"),
        (json!({"operation": "py_aggregate", "database": "dev", "table": "dog", "attribute": "weight", "group_by": 1}), "'group_by' must be a string"),
        (json!({"operation": "py_aggregate", "database": "dev", "table": "dog", "attribute": "weight", "conditions": "age"}), "'conditions' must be an object"),
    ] {
        let (status, answer) = server.post(body.clone());
        assert_eq!((status, answer), (400, json!({ "error": text })), "{body}");
    }
    // The host's own error (an unknown table) keeps its status and text through the Python SDK.
    let (status, body) = server.post(json!({"operation": "py_aggregate", "database": "dev", "table": "cat", "attribute": "weight"}));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("cat")), "{body}");
    // A comparator the WIT does not have: the SDK's 400, not a failure in the bindings.
    let (status, body) = server.post(json!({"operation": "py_aggregate", "database": "dev", "table": "dog", "attribute": "weight",
        "conditions": {"attribute": "age", "comparator": "no-such-comparator", "value": 1}}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("'age': unknown comparator 'no-such-comparator'")), "{body}");
}

#[test]
fn the_python_example_is_refused_without_the_storage_grant() {
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"py_aggregate": ["config"]}"#)
        .component(test_guest("py_aggregate"), "py_aggregate.wasm")
        .start();
    let entry = wait_for(&server, "a failed catalog entry", LOAD_WAIT, || entry_for(&server, "py_aggregate.wasm").filter(|e| e["status"] == "failed"));
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("py_aggregate") && reason.contains("opshost:host/storage") && reason.contains("not granted"), "reason: {reason}");
    let (status, body) = server.post(json!({"operation": "py_aggregate", "database": "dev", "table": "dog", "attribute": "weight"}));
    assert_eq!((status, body), (400, json!({"error": "Operation 'py_aggregate' not found"})));
}

#[test]
fn a_python_operation_is_hot_swapped_under_a_continuous_client_with_no_failed_request() {
    hot_swapped_under_a_continuous_client_with_no_failed_request("py_probe");
}

#[test]
fn a_python_operation_is_stopped_by_call_timeout_and_the_memory_limit() {
    stopped_by_call_timeout_and_the_memory_limit("py_probe");
}

#[test]
fn the_python_sdk_and_example_unit_tests_pass_under_cpython() {
    // The clone the test runs in (read at run time: the build cache is shared between clones).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from);
    let repo = manifest.parent().expect("repo root").to_path_buf();
    let sdk = repo.join("guest-sdk-py");
    for dir in [sdk.clone(), repo.join("examples/py/py_aggregate")] {
        let output = Command::new("python3")
            .args(["-m", "unittest", "-v"])
            .current_dir(&dir)
            .env("PYTHONPATH", &sdk)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap_or_else(|e| panic!("running python3 (it builds the Python operations too): {e}"));
        // unittest reports on stderr.
        let report = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "python3 -m unittest in {} failed:\n{report}", dir.display());
        assert!(report.contains("\nOK") && !report.contains("Ran 0 tests"), "{}: {report}", dir.display());
    }
}

/// Regression: the JS engine's clock feature was off because the engine reads
/// wasi:clocks/monotonic-clock on entry to `describe`, which trapped in the load sandbox. The
/// sandbox now answers clock reads (and nothing else), so a `"wasi": true` JS operation loads
/// and its `Date.now()` is the server's time, not the build's.
#[test]
fn a_js_operation_with_wasi_reads_the_time_and_still_loads() {
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"js_clock": ["wasi"]}"#)
        .component(test_guest("js_clock"), "js_clock.wasm")
        .start();
    let entry = wait_for(&server, "js_clock in the catalog", LOAD_WAIT, || entry_for(&server, "js_clock.wasm"));
    assert_eq!(entry["status"].as_str(), Some("serving"), "{entry}");
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let (before, (status, first)) = (now_ms(), server.post(json!({"operation": "js_clock"})));
    let after = now_ms();
    assert_eq!(status, 200, "{first}");
    let first = first["now"].as_i64().expect("a number");
    // The same machine's clock, read during the request (a frozen clock would be the build time).
    assert!((before..=after).contains(&first), "{before} <= {first} <= {after}");
    let later = wait_for(&server, "a later time", LOAD_WAIT, || {
        std::thread::sleep(Duration::from_millis(20));
        let (status, body) = server.post(json!({"operation": "js_clock"}));
        assert_eq!(status, 200, "{body}");
        body["now"].as_i64().filter(|t| *t > first)
    });
    assert!(later > first);
}

/// The Python counterpart: a `wasi = true` operation (CPython's real WASI, not
/// `--stub-wasi`) granted `wasi` loads, and `time.time()` is the server's clock during the
/// request; without the grant it is refused at load, naming the WASI interface it imports.
#[test]
fn a_python_operation_with_wasi_reads_the_time_and_is_refused_without_the_grant() {
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"py_clock": ["wasi"]}"#)
        .component(test_guest("py_clock"), "py_clock.wasm")
        .start();
    let entry = wait_for(&server, "py_clock in the catalog", LOAD_WAIT, || entry_for(&server, "py_clock.wasm"));
    assert_eq!(entry["status"].as_str(), Some("serving"), "{entry}");
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let (before, (status, first)) = (now_ms(), server.post(json!({"operation": "py_clock"})));
    let after = now_ms();
    assert_eq!(status, 200, "{first}");
    let first = first["now"].as_i64().expect("a number");
    // int(time.time() * 1000) truncates: allow the millisecond it may round down across.
    assert!((before - 1..=after).contains(&first), "{before} <= {first} <= {after}");
    let later = wait_for(&server, "a later time", LOAD_WAIT, || {
        std::thread::sleep(Duration::from_millis(20));
        let (status, body) = server.post(json!({"operation": "py_clock"}));
        assert_eq!(status, 200, "{body}");
        body["now"].as_i64().filter(|t| *t > first)
    });
    assert!(later > first);

    let refused = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"py_clock": ["config"]}"#)
        .component(test_guest("py_clock"), "py_clock.wasm")
        .start();
    let entry = wait_for(&refused, "a failed catalog entry", LOAD_WAIT, || entry_for(&refused, "py_clock.wasm").filter(|e| e["status"] == "failed"));
    let reason = entry["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("py_clock") && reason.contains("wasi:") && reason.contains("not granted"), "reason: {reason}");
    let (status, body) = refused.post(json!({"operation": "py_clock"}));
    assert_eq!((status, body), (400, json!({"error": "Operation 'py_clock' not found"})));
}
