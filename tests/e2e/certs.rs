//! Certificates made by an independent tool (the `openssl` command) added, listed with details
//! compared to what `openssl x509` prints, and removed; bad keys and PEM refused; the key
//! file's mode; and the HTTPS listener checked by a real TLS client (`curl --cacert`).

use opshost_tests::{free_port, Server, TempRoot, ADMIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("running openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).expect("read")
}

/// A key (`<name>.key`) and a self-signed certificate (`<name>.pem`) made by openssl.
fn self_signed(dir: &Path, name: &str, algorithm: &[&str], extra: &[&str]) {
    let key = format!("{name}.key");
    let mut args = vec!["genpkey"];
    args.extend_from_slice(algorithm);
    args.extend_from_slice(&["-out", &key]);
    openssl(dir, &args);
    let subject = format!("/CN={name}.example/O=Acme, Inc.");
    let pem = format!("{name}.pem");
    let mut args = vec!["req", "-x509", "-key", &key, "-subj", &subject, "-days", "30", "-out", &pem];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// What `openssl x509` says of a certificate, in HarperDB's detail formats.
fn openssl_details(dir: &Path, pem: &str) -> Value {
    let field = |flag: &str| -> String {
        let out = openssl(dir, &["x509", "-in", pem, "-noout", flag, "-nameopt", "sep_multiline"]);
        out.lines().skip(1).map(|l| l.trim().replace(',', "\\,")).collect::<Vec<_>>().join(" ")
    };
    let line = |flag: &str, prefix: &str| {
        openssl(dir, &["x509", "-in", pem, "-noout", flag]).trim().trim_start_matches(prefix).to_string()
    };
    let mut details = json!({
        "issuer": field("-issuer"),
        "subject": field("-subject"),
        "serial_number": line("-serial", "serial="),
        "valid_from": line("-startdate", "notBefore="),
        "valid_to": line("-enddate", "notAfter="),
    });
    let san = openssl(dir, &["x509", "-in", pem, "-noout", "-ext", "subjectAltName"]);
    if let Some(value) = san.lines().nth(1) {
        details["subject_alt_name"] = json!(value.trim());
    }
    details
}

fn certificates(server: &Server) -> Vec<Value> {
    let (status, list) = server.post(json!({"operation": "list_certificates"}));
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("array").clone()
}

fn find<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no certificate {name}"))
}

#[test]
fn first_start_creates_a_ca_and_a_node_certificate() {
    let server = Server::start();
    let list = certificates(&server);
    assert_eq!(list.len(), 2, "{list:?}");
    let ca = list.iter().find(|c| c["is_authority"] == true).expect("ca");
    assert!(ca["name"].as_str().is_some_and(|n| n.starts_with("opshost-Certificate-Authority-")));
    assert_eq!((ca["is_self_signed"].clone(), ca["uses"].clone()), (json!(true), json!([])));
    assert!(ca["details"].get("subject_alt_name").is_none());
    let node = find(&list, "127.0.0.1");
    assert_eq!(node["details"]["subject_alt_name"], "IP Address:127.0.0.1, DNS:localhost, IP Address:0:0:0:0:0:0:0:1");
    assert_eq!(node["details"]["issuer"], ca["details"]["subject"]);
    // The details agree with openssl's reading of the same PEM, and no key is ever listed.
    let dir = TempRoot::new();
    std::fs::write(dir.path().join("node.pem"), node["certificate"].as_str().expect("pem")).expect("write");
    assert_eq!(node["details"], openssl_details(dir.path(), "node.pem"));
    assert!(!serde_json::to_string(&list).expect("json").contains("PRIVATE KEY"));
    let names: Vec<&str> = list.iter().filter_map(|c| c["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
}

#[test]
fn openssl_certificates_are_added_listed_and_removed() {
    let server = Server::start();
    let dir = TempRoot::new();
    let d = dir.path();
    self_signed(d, "rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], &[]);
    self_signed(d, "ec", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], &["-addext", "subjectAltName=DNS:ec.example,DNS:www.ec.example,IP:10.0.0.1,IP:::1,email:ops@ec.example"]);
    self_signed(d, "ed", &["-algorithm", "ED25519"], &[]);
    // A CA-signed chain and an expired certificate.
    self_signed(d, "root", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], &["-addext", "basicConstraints=critical,CA:TRUE"]);
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "leaf.key"]);
    openssl(d, &["req", "-new", "-key", "leaf.key", "-subj", "/CN=leaf.example", "-out", "leaf.csr"]);
    openssl(d, &["x509", "-req", "-in", "leaf.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-days", "10", "-out", "leaf.pem"]);
    openssl(d, &["x509", "-req", "-in", "leaf.csr", "-signkey", "leaf.key", "-days", "-1", "-out", "expired.pem"]);

    let add = |name: &str, pem: &str, key: Option<&str>, is_authority: bool| {
        let mut body = json!({"operation": "add_certificate", "name": name, "certificate": read(d, pem), "is_authority": is_authority});
        if let Some(key) = key {
            body["private_key"] = json!(read(d, key));
        }
        server.post(body)
    };
    for (name, pem, key, ca) in [
        ("rsa", "rsa.pem", Some("rsa.key"), false),
        ("ec", "ec.pem", Some("ec.key"), false),
        ("ed", "ed.pem", Some("ed.key"), false),
        ("root", "root.pem", None, true),
        ("leaf", "leaf.pem", Some("leaf.key"), false),
        ("expired", "expired.pem", None, false),
    ] {
        let (status, body) = add(name, pem, key, ca);
        assert_eq!((status, body), (200, json!({"message": format!("Successfully added certificate: {name}")})), "{name}");
    }
    let list = certificates(&server);
    for (name, pem) in [("rsa", "rsa.pem"), ("ec", "ec.pem"), ("ed", "ed.pem"), ("root", "root.pem"), ("leaf", "leaf.pem"), ("expired", "expired.pem")] {
        let entry = find(&list, name);
        assert_eq!(entry["details"], openssl_details(d, pem), "{name}");
        assert_eq!(entry["certificate"], json!(read(d, pem)), "stored verbatim");
        assert!(entry.get("is_self_signed").is_none() && entry.get("uses").is_none(), "user-added entries carry no generated-only keys");
    }
    assert_eq!(find(&list, "rsa")["private_key_name"], "rsa.pem");
    // The expired certificate found the key stored with `leaf` (same key pair).
    assert_eq!(find(&list, "expired")["private_key_name"], "leaf.pem");
    assert!(find(&list, "root").get("private_key_name").is_none());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.root().join("keys").join("rsa.pem")).expect("key file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private keys are 0600");

    assert_eq!(server.post(json!({"operation": "remove_certificate", "name": "rsa"})), (200, json!({"message": "Successfully removed rsa"})));
    assert!(!server.root().join("keys").join("rsa.pem").exists(), "key file removed");
    assert_eq!(server.post(json!({"operation": "remove_certificate", "name": "rsa"})), (400, json!({"error": "rsa not found"})));
}

#[test]
fn bad_keys_and_pem_are_refused_and_change_nothing() {
    let server = Server::start();
    let dir = TempRoot::new();
    let d = dir.path();
    self_signed(d, "a", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], &[]);
    self_signed(d, "b", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], &[]);
    let before = certificates(&server);
    let cases = [
        (json!({"name": "a", "certificate": read(d, "a.pem"), "is_authority": false, "private_key": read(d, "b.key")}), "The private key does not match the certificate"),
        (json!({"name": "a", "certificate": read(d, "a.pem"), "is_authority": false}), "A suitable private key was not found for this certificate"),
        (json!({"certificate": read(d, "a.pem"), "is_authority": false}), "'name' is required"),
        (json!({"name": 5, "certificate": read(d, "a.pem"), "is_authority": false}), "'name' must be a string"),
        (json!({"name": "a", "is_authority": false}), "'certificate' is required"),
        (json!({"name": "a", "certificate": read(d, "a.pem")}), "'is_authority' is required"),
        (json!({"name": "a", "certificate": read(d, "a.pem"), "is_authority": "no"}), "'is_authority' must be a boolean"),
        (json!({"name": "../evil", "certificate": read(d, "a.pem"), "is_authority": true}), "'name' must be letters, digits, '-', '_' or '.', got '../evil'"),
    ];
    for (mut body, text) in cases {
        body["operation"] = json!("add_certificate");
        assert_eq!(server.post(body), (400, json!({ "error": text })));
    }
    let (status, body) = server.post(json!({"operation": "add_certificate", "name": "g", "certificate": "garbage", "is_authority": true}));
    assert_eq!(status, 400, "{body}");
    let (status, _) = server.post(json!({"operation": "add_certificate", "name": "g", "certificate": read(d, "a.pem"), "is_authority": false, "private_key": "garbage"}));
    assert_eq!(status, 400);
    assert_eq!(certificates(&server), before, "a rejected add changes nothing");
    assert!(!server.root().join("keys").join("a.pem").exists());
}

#[test]
fn https_serves_the_node_certificate_and_picks_up_a_replacement_on_restart() {
    let secure_port = free_port();
    let mut server = Server::builder().env("OPERATIONSAPI_NETWORK_SECUREPORT", &secure_port.to_string()).start();
    server.wait_for_line(&format!("opshost listening on https://127.0.0.1:{secure_port}"), std::time::Duration::from_secs(30));
    let dir = TempRoot::new();
    let d = dir.path();
    let list = certificates(&server);
    let ca = list.iter().find(|c| c["is_authority"] == true).expect("ca");
    std::fs::write(d.join("ca.pem"), ca["certificate"].as_str().expect("pem")).expect("write ca");
    let curl = |cacert: &str| {
        Command::new("curl")
            .args(["-sS", "--fail", "--cacert", cacert, "-u", &format!("{}:{}", ADMIN.0, ADMIN.1)])
            .args(["-H", "Content-Type: application/json", "-d", r#"{"operation":"describe_all"}"#])
            .arg(format!("https://127.0.0.1:{secure_port}/"))
            .current_dir(d)
            .output()
            .expect("running curl")
    };
    let out = curl("ca.pem");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{}");

    // Replace the node certificate with one signed by our own (openssl) CA, then restart.
    self_signed(d, "myca", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], &["-addext", "basicConstraints=critical,CA:TRUE"]);
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "node.key"]);
    openssl(d, &["req", "-new", "-key", "node.key", "-subj", "/CN=127.0.0.1", "-out", "node.csr"]);
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    openssl(d, &["x509", "-req", "-in", "node.csr", "-CA", "myca.pem", "-CAkey", "myca.key", "-CAcreateserial", "-days", "10", "-extfile", "san.ext", "-out", "node.pem"]);
    let (status, body) = server.post(json!({"operation": "add_certificate", "name": "127.0.0.1", "certificate": read(d, "node.pem"), "is_authority": false, "private_key": read(d, "node.key")}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.post(json!({"operation": "restart"})).0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !curl("myca.pem").status.success() {
        assert!(std::time::Instant::now() < deadline, "the replaced certificate is not served");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!curl("ca.pem").status.success(), "the old certificate is still served");
    // The plain listener kept serving throughout.
    assert_eq!(server.post(json!({"operation": "describe_all"})).0, 200);
}
