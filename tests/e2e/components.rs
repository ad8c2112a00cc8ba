//! Components over the API: deploy (served within one request of the answer), versions,
//! rollback under a continuous client with no failed request, drop, package, audit events;
//! every bad component refused with the old version still serving; super_user only; signed
//! components (keys and signatures made by openssl, and by `cargo xtask sign`).

use opshost_tests::{encode_base64, test_guest, Server, USER};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn payload(path: &Path) -> String {
    encode_base64(&std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

fn deploy(server: &Server, name: &str, guest: &Path, extra: Value) -> (u16, Value) {
    let mut body = json!({"operation": "deploy_component", "name": name, "payload": payload(guest)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    server.post(body)
}

fn hello_version(server: &Server) -> Option<i64> {
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    (status == 200).then(|| body["version"].as_i64()).flatten()
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("hash").to_string()
}

#[test]
fn deploy_rollback_package_and_drop_through_the_api() {
    let server = Server::start();
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v1"), json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["version"].as_u64(), body["operations"].clone()), (Some(1), json!(["test_hello"])), "{body}");
    assert_eq!(body["hash"], sha256_hex(&test_guest("hello_v1")));
    // Served by the very next request.
    assert_eq!(hello_version(&server), Some(1));
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v2"), json!({"replicated": false}));
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(hello_version(&server), Some(2));

    let (_, listed) = server.post(json!({"operation": "list_operations"}));
    let entry = listed.as_array().and_then(|l| l.iter().find(|e| e["name"] == "test_hello").cloned()).expect("catalog entry");
    assert_eq!((entry["deployed_version"].as_u64(), entry["status"].as_str()), (Some(2), Some("serving")), "{entry}");
    let (status, comps) = server.post(json!({"operation": "get_components"}));
    assert_eq!(status, 200, "{comps}");
    let c = &comps[0];
    assert_eq!((c["name"].as_str(), c["version"].as_u64(), c["status"].as_str()), (Some("test_hello"), Some(2), Some("serving")), "{comps}");
    assert_eq!((c["deployed_by"].as_str(), c["versions"].as_array().map(Vec::len)), (Some("admin"), Some(2)), "{comps}");

    let (status, file) = server.post(json!({"operation": "get_component_file", "name": "test_hello", "version": 1}));
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["payload"], payload(&test_guest("hello_v1")));

    // Roll back while a client calls the operation continuously: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let url = server.url();
    let client = {
        let (stop, failures, calls) = (stop.clone(), failures.clone(), calls.clone());
        std::thread::spawn(move || {
            let auth = opshost_tests::basic(opshost_tests::ADMIN.0, opshost_tests::ADMIN.1);
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = opshost_tests::post_raw(&url, Some("application/json"), br#"{"operation":"test_hello"}"#, Some(&auth));
                calls.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = server.post(json!({"operation": "rollback_component", "name": "test_hello"}));
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(hello_version(&server), Some(1));
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client");
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the rollback");

    let (status, package) = server.post(json!({"operation": "package_component", "name": "test_hello"}));
    assert_eq!((status, package["operation"].as_str(), package["version"].as_u64()), (200, Some("deploy_component"), Some(1)), "{package}");
    assert_eq!(package["payload"], payload(&test_guest("hello_v1")));

    let (status, body) = server.post(json!({"operation": "drop_component", "name": "test_hello"}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    assert_eq!(status, 400, "dropped, no longer served: {body}");
    assert!(!server.root().join("components").join("test_hello.wasm").exists());
    let (status, body) = server.post(json!({"operation": "drop_component", "name": "test_hello"}));
    assert_eq!(status, 404, "{body}");

    let (status, events) = server.post(json!({"operation": "get_component_events", "name": "test_hello"}));
    assert_eq!(status, 200, "{events}");
    let actions: Vec<(&str, u64, &str)> = events
        .as_array()
        .expect("array")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e["version"].as_u64().unwrap_or(0), e["user"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(actions, vec![("deploy", 1, "admin"), ("deploy", 2, "admin"), ("rollback", 1, "admin"), ("drop", 1, "admin")], "{events}");
    assert!(events.as_array().expect("array").iter().all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64) && e["at"].is_u64()));
}

#[test]
fn a_bad_component_is_refused_and_the_old_version_keeps_serving() {
    let server = Server::builder().env("OPERATIONSAPI_COMPONENTS_MAXSIZEMB", "1").start();
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v1"), json!({}));
    assert_eq!(status, 200, "{body}");
    let refused = |name: &str, guest: PathBuf, extra: Value, wanted: &str| {
        let (status, body) = deploy(&server, name, &guest, extra);
        let error = body["error"].as_str().unwrap_or_default().to_string();
        assert!(status == 400 && error.contains(wanted), "{name}: {status} {body}; wanted '{wanted}'");
    };
    let corrupt = std::env::temp_dir().join(format!("opshost-corrupt-{}.wasm", std::process::id()));
    std::fs::write(&corrupt, b"\0asm this is not a component at all").expect("write");
    refused("test_hello", corrupt.clone(), json!({}), "compiling");
    refused("test_describe_trap", test_guest("test_describe_trap"), json!({}), "calling describe");
    refused("test_ungranted", test_guest("test_ungranted"), json!({}), "not granted");
    refused("test_ungranted", test_guest("test_ungranted"), json!({"grants": ["storage", "nonsense"]}), "'grants' names an unknown interface 'nonsense'");
    refused("get_configuration", opshost_tests::dist().join("operations").join("get_configuration.wasm"), json!({"grants": ["config"]}), "is a built-in operation");
    refused("innocent_helper", test_guest("test_alias_thief"), json!({}), "'create_authentication_tokens' is a built-in operation");
    refused("other_name", test_guest("hello_v2"), json!({}), "describes itself as 'test_hello', not 'other_name'");
    refused("bad/name", test_guest("hello_v2"), json!({}), "'name' must be an operation name");
    let _ = std::fs::remove_file(&corrupt);
    let (status, body) = server.post(json!({"operation": "deploy_component", "name": "test_hello", "payload": "%%% not base64"}));
    assert!(status == 400 && body["error"].as_str().is_some_and(|e| e.contains("'payload'")), "{body}");
    let big = encode_base64(&vec![7u8; 2 << 20]);
    let (status, body) = server.post(json!({"operation": "deploy_component", "name": "test_hello", "payload": big}));
    assert!(status == 400 && body["error"].as_str().is_some_and(|e| e.contains("larger than")), "{body}");
    let (status, body) = server.post(json!({"operation": "deploy_component", "name": "test_hello"}));
    assert!(status == 400 && body["error"].as_str().is_some_and(|e| e.contains("'payload' is required")), "{body}");
    // Nothing changed: version 1 serves, and it is the only version.
    assert_eq!(hello_version(&server), Some(1));
    let (_, comps) = server.post(json!({"operation": "get_components"}));
    assert_eq!(comps.as_array().map(Vec::len), Some(1), "{comps}");
    assert_eq!(comps[0]["versions"].as_array().map(Vec::len), Some(1), "{comps}");

    // Grants given at deploy time are what the component gets.
    let (status, body) = deploy(&server, "test_ungranted", &test_guest("test_ungranted"), json!({"grants": ["storage"]}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(json!({"operation": "test_ungranted"}));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn only_super_users_manage_components() {
    let server = Server::start();
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v1"), json!({}));
    assert_eq!(status, 200, "{body}");
    let requests = [
        json!({"operation": "deploy_component", "name": "test_hello", "payload": payload(&test_guest("hello_v2"))}),
        json!({"operation": "get_components"}),
        json!({"operation": "get_component_file", "name": "test_hello"}),
        json!({"operation": "package_component", "name": "test_hello"}),
        json!({"operation": "rollback_component", "name": "test_hello"}),
        json!({"operation": "drop_component", "name": "test_hello"}),
        json!({"operation": "get_component_events"}),
    ];
    for request in requests {
        let (status, body) = server.post_as(USER, request.clone());
        assert_eq!(status, 403, "{request}: {body}");
    }
    assert_eq!(hello_version(&server), Some(1));
}

/// An Ed25519 key pair made by openssl: (private key file, public key PEM).
fn openssl_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("publisher.pem");
    let ok = std::process::Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key).status().expect("openssl");
    assert!(ok.success());
    let public = std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output().expect("openssl");
    assert!(public.status.success());
    (key, String::from_utf8(public.stdout).expect("pem"))
}

/// openssl's signature over the message the host verifies.
fn openssl_sign(key: &Path, component: &Path, grants: &[&str]) -> String {
    let mut sorted = grants.to_vec();
    sorted.sort_unstable();
    let message = format!("opshost-component-signature-v1\n{}\n{}", sha256_hex(component), sorted.join(","));
    let file = key.with_extension(format!("msg{}", std::process::id()));
    std::fs::write(&file, message).expect("write");
    let out = std::process::Command::new("openssl").args(["pkeyutl", "-sign", "-rawin", "-inkey"]).arg(key).arg("-in").arg(&file).output().expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    encode_base64(&out.stdout)
}

#[test]
fn signed_components_when_signatures_are_required() {
    let keys = opshost_tests::TempRoot::new();
    let (key, public) = openssl_key(keys.path());
    let trusted = serde_json::to_string(&vec![public]).expect("json");
    let server = Server::builder()
        .env("OPERATIONSAPI_COMPONENTS_TRUSTEDKEYS", &trusted)
        .env("OPERATIONSAPI_COMPONENTS_REQUIRESIGNED", "true")
        .start();
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v1"), json!({}));
    assert!(status == 400 && body["error"].as_str().is_some_and(|e| e.contains("'signature' is required")), "{body}");
    let signature = openssl_sign(&key, &test_guest("hello_v1"), &[]);
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v1"), json!({"signature": signature}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(hello_version(&server), Some(1));
    // The same signature does not cover broader grants, nor other bytes.
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v1"), json!({"signature": signature, "grants": ["storage"]}));
    assert!(status == 400 && body["error"].as_str().is_some_and(|e| e.contains("does not verify")), "{body}");
    let (status, body) = deploy(&server, "test_hello", &test_guest("hello_v2"), json!({"signature": signature}));
    assert!(status == 400 && body["error"].as_str().is_some_and(|e| e.contains("does not verify")), "{body}");
    // Signed for the grants it is deployed with: accepted and granted them.
    let sig = openssl_sign(&key, &test_guest("test_ungranted"), &["storage"]);
    let (status, body) = deploy(&server, "test_ungranted", &test_guest("test_ungranted"), json!({"signature": sig, "grants": ["storage"]}));
    assert_eq!(status, 200, "{body}");

    // A file dropped into componentsRoot needs its signature beside it.
    let components = server.root().join("components");
    std::fs::copy(test_guest("test_panic"), components.join("test_panic.wasm")).expect("copy");
    let deadline = Instant::now() + Duration::from_secs(20);
    let reason = loop {
        let (_, listed) = server.post(json!({"operation": "list_operations"}));
        let entry = listed.as_array().and_then(|l| l.iter().find(|e| e["source"].as_str().is_some_and(|s| s.ends_with("/test_panic.wasm"))).cloned());
        if let Some(e) = entry.filter(|e| e["status"] == "failed") {
            break e["last_error"].as_str().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "test_panic.wasm never refused\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(reason.contains("is not signed"), "{reason}");
    // Signed with `cargo xtask sign` (the xtask binary that runs this suite): served.
    std::fs::remove_file(components.join("test_panic.wasm")).expect("remove");
    let signed = keys.path().join("test_panic.wasm");
    std::fs::copy(test_guest("test_panic"), &signed).expect("copy");
    let xtask = opshost_tests::dist().parent().expect("target").join("release").join("xtask");
    let out = std::process::Command::new(&xtask).args(["sign", "--key"]).arg(&key).arg(&signed).output().expect("xtask sign");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(keys.path().join("test_panic.wasm.sig"), components.join("test_panic.wasm.sig")).expect("sig");
    std::fs::copy(&signed, components.join("test_panic.wasm")).expect("wasm");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.post(json!({"operation": "test_panic"}));
        // test_panic panics by design: a 500 naming it means it is served.
        if status == 500 && body["error"].as_str().is_some_and(|e| e.contains("test_panic")) {
            break;
        }
        assert!(Instant::now() < deadline, "signed test_panic.wasm never served: {status} {body}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
