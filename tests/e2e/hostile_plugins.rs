//! Hostile plugins: name take-over through aliases, `describe` before grants, WASI without a
//! grant, a looping `describe`, a planted compile cache entry (security-review.md findings 4,
//! 16, 21, and the issue's "link only what is granted").

use opshost_tests::{test_guest, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOAD_WAIT: Duration = Duration::from_secs(20);

fn components(server: &Server) -> PathBuf {
    server.root().join("components")
}

/// The catalog entry of `<componentsRoot>/<file>`, once `pred` holds (panics with the log after
/// `LOAD_WAIT`).
fn wait_entry(server: &Server, file: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let suffix = format!("/components/{file}");
    let deadline = Instant::now() + LOAD_WAIT;
    loop {
        let (status, body) = server.post(json!({"operation": "list_operations"}));
        assert_eq!(status, 200, "list_operations: {body}");
        let entry = body
            .as_array()
            .and_then(|all| all.iter().find(|e| e["source"].as_str().is_some_and(|s| s.ends_with(&suffix))).cloned());
        match entry {
            Some(e) if pred(&e) => return e,
            other if Instant::now() > deadline => panic!("{file}: entry {other:?}\nlog:\n{}", server.log()),
            _ => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

fn failed_reason(server: &Server, file: &str) -> String {
    let entry = wait_entry(server, file, |e| e["status"] == "failed");
    entry["last_error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_component_cannot_take_over_a_built_in_through_an_alias() {
    let server = Server::start();
    // Dropped in right after start (this also covers the watcher starting before the first scan).
    std::fs::copy(test_guest("test_alias_thief"), components(&server).join("innocent.wasm")).expect("copy");
    let reason = failed_reason(&server, "innocent.wasm");
    assert!(
        reason.contains("'create_authentication_tokens' is a built-in operation and cannot be replaced"),
        "reason: {reason}"
    );
    // Logins still reach the real operation: the token it answers works.
    let login = json!({"operation": "create_authentication_tokens", "username": "admin", "password": "admin-pass"});
    let (status, text) = server.raw(Some("application/json"), login.to_string().as_bytes(), None);
    assert_eq!(status, 200, "{text}");
    let tokens: Value = serde_json::from_str(&text).expect("json");
    let token = tokens["operation_token"].as_str().expect("operation_token");
    assert_ne!(token, "stolen");
    let (status, body) = server.raw(
        Some("application/json"),
        json!({"operation": "describe_all"}).to_string().as_bytes(),
        Some(&format!("Bearer {token}")),
    );
    assert_eq!(status, 200, "{body}");
    // Its main name is not served either, and it never saw a password.
    let (status, _) = server.post(json!({"operation": "innocent_helper"}));
    assert_eq!(status, 400);
    assert!(!server.log_contains("stolen:", Duration::from_millis(200)), "{}", server.log());
}

#[test]
fn a_component_without_the_wasi_grant_is_refused_before_any_of_it_runs() {
    let started = Instant::now();
    let server = Server::builder().component(test_guest("test_describe_loop_wasi"), "loopy_wasi.wasm").start();
    let reason = failed_reason(&server, "loopy_wasi.wasm");
    assert!(reason.contains("imports 'wasi:") && reason.contains("not granted"), "reason: {reason}");
    assert!(!reason.contains("describe"), "refused from its imports, before describe: {reason}");
    // Its describe would loop until callTimeout (30 s): the start was not held up by it.
    assert!(started.elapsed() < Duration::from_secs(25), "start took {:?}", started.elapsed());
}

#[test]
fn describe_runs_sandboxed_with_its_own_short_deadline() {
    // Granted WASI by name: the imports pass, but describe itself can reach nothing (its
    // println traps at once instead of running and then looping for callTimeout).
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"test_describe_loop_wasi": ["wasi"]}"#)
        .component(test_guest("test_describe_loop_wasi"), "loopy_wasi.wasm")
        .component(test_guest("test_describe_loop"), "loopy.wasm")
        .start();
    let reason = failed_reason(&server, "loopy_wasi.wasm");
    assert!(reason.contains("calling describe") && !reason.contains("time limit"), "reason: {reason}");
    let reason = failed_reason(&server, "loopy.wasm");
    assert!(reason.contains("describe ran past its time limit"), "reason: {reason}");
    // A restart re-reads every file: the looping describe costs its own short deadline, not
    // callTimeout (30 s by default).
    let asked = Instant::now();
    let (status, _) = server.post(json!({"operation": "restart"}));
    assert_eq!(status, 200);
    assert!(server.log_contains("restarted in", Duration::from_secs(60)), "{}", server.log());
    assert!(asked.elapsed() < Duration::from_secs(15), "restart took {:?}", asked.elapsed());
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("hash").to_string()
}

#[test]
fn the_compile_cache_runs_only_what_this_server_wrote() {
    let cache = opshost_tests::TempRoot::new();
    let cache_dir = cache.path().join("cache");
    let cache_env = cache_dir.to_string_lossy().into_owned();
    let server = Server::builder()
        .env("OPSHOST_COMPILE_CACHE", &cache_env)
        .component(test_guest("hello_v2"), "test_hello.wasm")
        .start();
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    assert_eq!((status, body["version"].as_i64()), (200, Some(2)), "{body}");
    server.stop();

    // Someone who can write into the cache plants v2's compiled code under v1's name.
    let v2 = sha256_hex(&test_guest("hello_v2"));
    let v1 = sha256_hex(&test_guest("hello_v1"));
    let entry = std::fs::read_dir(&cache_dir)
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&v2) && n.ends_with(".cwasm"))
        .expect("v2's cache entry");
    std::fs::copy(cache_dir.join(&entry), cache_dir.join(entry.replacen(&v2, &v1, 1))).expect("plant");
    let server = Server::builder()
        .env("OPSHOST_COMPILE_CACHE", &cache_env)
        .component(test_guest("hello_v1"), "test_hello.wasm")
        .start();
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    assert_eq!((status, body["version"].as_i64()), (200, Some(1)), "the planted artifact ran: {body}");
    assert!(server.log_contains("does not verify", Duration::from_secs(5)), "{}", server.log());
    server.stop();

    // A cache folder others may write to is not used at all.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let server = Server::builder()
        .env("OPSHOST_COMPILE_CACHE", &cache_env)
        .component(test_guest("hello_v1"), "test_hello.wasm")
        .start();
    assert!(server.log_contains("not using the compile cache", Duration::from_secs(5)), "{}", server.log());
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    assert_eq!((status, body["version"].as_i64()), (200, Some(1)), "{body}");
}
