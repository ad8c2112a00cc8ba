//! The server log: `<rootPath>/log/hdb.log` in HarperDB's text format (or JSON lines), the
//! request id of a 5xx in its line, `read_log` with HarperDB's filters and texts, rotation by
//! size with the `logging.rotation` settings.

use opshost_tests::{err, ok, test_guest, Server, TempRoot, USER};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn read_log(server: &Server, extra: Value) -> Vec<Value> {
    let mut body = json!({"operation": "read_log"});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    ok(server, body).as_array().unwrap_or_else(|| panic!("read_log answers a list")).clone()
}

/// Polls until `<root>/log/hdb.log` holds `text` (lines are written as they happen; 30 s).
fn wait_in_file(root: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let content = std::fs::read_to_string(root.join("log").join("hdb.log")).unwrap_or_default();
        if content.contains(text) {
            return content;
        }
        assert!(Instant::now() < deadline, "hdb.log never held {text:?}:\n{content}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hdb_log_holds_harpers_lines_and_the_request_id_of_a_5xx() {
    let server = Server::builder().component(test_guest("test_panic"), "test_panic.wasm").start();
    let (status, body) = server.post(json!({"operation": "test_panic"}));
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().expect("error text");
    let id = error[error.find("(request id ").expect("an id") + "(request id ".len()..].trim_end_matches(')').to_string();
    let content = wait_in_file(server.root(), &id);
    // `2026-11-28T09:58:11.134Z [http/1] [error]: ...`, the id in the error line itself.
    let line = content.lines().find(|l| l.contains(&id)).expect("the line");
    let (stamp, rest) = line.split_once(' ').expect("timestamp first");
    assert!(stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{line}");
    assert!(rest.starts_with('[') && rest.contains("] [error]: "), "{line}");

    // read_log finds it, in HarperDB's entry shape, filtered by level and text.
    let errors = read_log(&server, json!({"level": "error", "filter": id.clone()}));
    assert!(!errors.is_empty(), "read_log finds the 5xx line");
    let e = &errors[0];
    assert_eq!(e.as_object().map(|o| { let mut k: Vec<_> = o.keys().cloned().collect(); k.sort(); k }), Some(vec!["level".into(), "message".into(), "tags".into(), "thread".into(), "timestamp".into()]), "{e}");
    assert_eq!((e["level"].clone(), e["tags"].clone()), (json!("error"), json!([])));
    assert!(e["message"].as_str().is_some_and(|m| m.contains(&id)));
}

#[test]
fn read_log_takes_harpers_filters_and_answers_harpers_texts() {
    let server = Server::start();
    // Start-up lines are there (the test servers log at info).
    let all = read_log(&server, json!({}));
    assert!(all.len() >= 2, "{all:?}");
    assert!(all.iter().all(|e| e["level"].is_string() && e["timestamp"].is_string() && e["thread"].is_string()));
    let first = read_log(&server, json!({"limit": 1}));
    assert_eq!(first, vec![all[0].clone()]);
    let second = read_log(&server, json!({"start": 1, "limit": 1}));
    assert_eq!(second, vec![all[1].clone()]);
    let newest = read_log(&server, json!({"order": "desc", "limit": 1}));
    assert_eq!(newest.len(), 1);
    assert!(newest[0]["timestamp"].as_str() >= all[0]["timestamp"].as_str());
    assert_eq!(read_log(&server, json!({"from": "2999-01-01"})), Vec::<Value>::new());
    assert_eq!(read_log(&server, json!({"until": "2000-01-01 00:00:00"})), Vec::<Value>::new());
    assert_eq!(read_log(&server, json!({"from": "2000-01-01T00:00:00.000+0000", "level": "info"})).len(), all.iter().filter(|e| e["level"] == "info").count());

    assert_eq!(err(&server, json!({"operation": "read_log", "limit": "x"})), (400, "'limit' must be a number".into()));
    assert_eq!(err(&server, json!({"operation": "read_log", "start": "x"})), (400, "'start' must be a number".into()));
    assert_eq!(err(&server, json!({"operation": "read_log", "level": "loud"})), (400, "'level' must be one of [notify, fatal, error, warn, info, debug, trace]".into()));
    assert_eq!(err(&server, json!({"operation": "read_log", "from": "yesterday"})), (400, "'from' date 'yesterday' is invalid.".into()));
    assert_eq!(err(&server, json!({"operation": "read_log", "order": "up"})), (400, "'order' must be one of [asc, desc]".into()));
    assert_eq!(server.post_as(USER, json!({"operation": "read_log"})).0, 403);
}

#[test]
fn json_lines_and_size_rotation() {
    let server = Server::builder()
        .env("LOGGING_FORMAT", "json")
        .env("LOGGING_ROTATION_ENABLED", "true")
        .env("LOGGING_ROTATION_MAXSIZE", "2K")
        .component(test_guest("test_panic"), "test_panic.wasm")
        .start();
    // Each 5xx writes error lines: enough of them pass 2 KiB several times.
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = server.root().join("log");
    loop {
        assert_eq!(server.post(json!({"operation": "test_panic"})).0, 500);
        let rotated = std::fs::read_dir(&dir).expect("log dir").filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("hdb.log.")).count();
        if rotated >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation after a minute: {:?}", std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect::<Vec<_>>()));
    }
    // The current file is JSON lines, each an entry of read_log's shape.
    let content = std::fs::read_to_string(dir.join("hdb.log")).expect("hdb.log");
    for line in content.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(std::fs::metadata(dir.join("hdb.log")).expect("hdb.log").len() < 64 * 1024, "the current file was rotated");
    let errors = read_log(&server, json!({"level": "error"}));
    assert!(!errors.is_empty());
    // set_configuration knows the rotation keys by HarperDB's flattened names, with its texts.
    assert_eq!(
        err(&server, json!({"operation": "set_configuration", "logging_rotation_enabled": "yes"})),
        (400, "HarperDB config file validation error: 'logging.rotation.enabled' must be a boolean".into())
    );
    ok(&server, json!({"operation": "set_configuration", "logging_rotation_maxSize": "64M"}));
    let config = ok(&server, json!({"operation": "get_configuration"}));
    assert_eq!(config["logging"]["rotation"]["maxSize"], "64M", "{}", config["logging"]);
}

#[test]
fn rotated_files_move_to_the_rotation_path_compressed() {
    let root = TempRoot::new();
    let rotated_dir = root.path().join("rotated-logs");
    let server = Server::builder()
        .root(root)
        .env("LOGGING_ROTATION_ENABLED", "true")
        .env("LOGGING_ROTATION_MAXSIZE", "2K")
        .env("LOGGING_ROTATION_COMPRESS", "true")
        .env("LOGGING_ROTATION_PATH", rotated_dir.to_str().expect("utf-8 path"))
        .component(test_guest("test_panic"), "test_panic.wasm")
        .start();
    let deadline = Instant::now() + Duration::from_secs(60);
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    };
    loop {
        assert_eq!(server.post(json!({"operation": "test_panic"})).0, 500);
        if names(&rotated_dir).len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing rotated into {rotated_dir:?} after a minute: {:?}", names(&server.root().join("log")));
    }
    for name in names(&rotated_dir) {
        assert!(name.starts_with("hdb.log.") && name.ends_with(".gz"), "{name}");
        // gzip's magic bytes: the file was compressed, not just renamed.
        let bytes = std::fs::read(rotated_dir.join(&name)).expect("rotated file");
        assert_eq!(bytes.get(..2), Some(&[0x1f, 0x8b][..]), "{name}");
    }
    // Only the live file stays in the log folder.
    assert_eq!(names(&server.root().join("log")).into_iter().filter(|n| n.starts_with("hdb.log.")).count(), 0);
}

