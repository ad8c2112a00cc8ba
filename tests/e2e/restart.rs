//! Restart in place: configuration changes take effect (the listener moves to a new port),
//! a replaced component serves its new version, a client sending requests continuously sees
//! no failure, and a second start compiles nothing (compile cache).

use opshost_tests::{free_port, test_guest, Server, ADMIN, USER};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn set_configuration_then_restart_moves_the_listener() {
    let mut server = Server::start();
    let old_url = server.url();
    let new_port = free_port();
    let (status, body) = server.post(json!({"operation": "set_configuration", "operationsApi_network_port": new_port}));
    assert_eq!(status, 200, "{body}");
    // Not applied before the restart.
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
    let (status, _) = server.post(json!({"operation": "restart"}));
    assert_eq!(status, 200);
    server.wait_for_line(&format!("opshost listening on http://127.0.0.1:{new_port}"), Duration::from_secs(30));
    server.port = new_port;
    let (status, config) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!((status, config["operationsApi"]["network"]["port"].clone()), (200, json!(new_port)));
    // The old listener is closed once its connections drain.
    let mut closed = false;
    for _ in 0..100 {
        let (status, _) = opshost_tests::post_raw(&old_url, Some("application/json"), b"{}", None);
        if status == 0 {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed, "old port still answers");
}

#[test]
fn a_replaced_component_serves_its_new_version_after_restart() {
    let server = Server::builder().component(test_guest("hello_v1"), "test_hello.wasm").start();
    let (status, body) = server.post_as(USER, json!({"operation": "test_hello"}));
    assert_eq!((status, body), (200, json!({"version": 1, "user": USER.0})));
    std::fs::copy(test_guest("hello_v2"), server.root().join("components").join("test_hello.wasm")).expect("copy v2");
    let (status, _) = server.post(json!({"operation": "restart"}));
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = server.post_as(USER, json!({"operation": "test_hello"}));
        if body["version"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still serving {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_continuous_client_sees_no_failure_through_restarts() {
    let server = Arc::new(Server::start());
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop, ok, failed) = (server.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = server.post(json!({"operation": "get_configuration"}));
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed request: {status} {body}");
                    }
                }
            })
        })
        .collect();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        let (status, _) = server.post(json!({"operation": "restart"}));
        assert_eq!(status, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 50, "the client made progress");
    assert!(server.log_contains("restarted in", Duration::from_secs(5)), "{}", server.log());
}

#[test]
fn restart_loads_compiled_components_from_the_cache() {
    // This test looks at its own cache, not the shared one the other tests use.
    let server = Server::builder()
        .env("OPSHOST_COMPILE_CACHE", "")
        .component(opshost_tests::test_guest("hello_v1"), "test_hello.wasm")
        .start();
    let cache = server.root().join("cache").join("components");
    let entries = |dir: &std::path::Path| -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .expect("cache dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().and_then(|m| m.modified()).expect("mtime")))
            .collect();
        v.sort();
        v
    };
    // The built-ins came precompiled with the dist folder (`cargo xtask build`): the first start
    // compiled only the third-party component.
    let first = entries(&cache);
    assert_eq!(first.len(), 1, "one artifact, the third-party component's: {first:?}");
    // Restart reloads every component; nothing is recompiled or rewritten.
    let (status, _) = server.post(json!({"operation": "restart"}));
    assert_eq!(status, 200);
    assert!(server.log_contains("restarted in", Duration::from_secs(30)), "{}", server.log());
    let (status, _) = server.post_as(ADMIN, json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
    assert_eq!(entries(&cache), first);
}
