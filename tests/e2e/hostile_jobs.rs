//! Hostile jobs and secrets: export_to_s3, job queue and deadlines, npm, exports and files on disk
//! (security-review.md findings 5, 8, 13, 18, 20, 22) against the real binary. Finding 17 (secret
//! flags in `system_information`) and 23 (blocking work off the async workers) are covered by unit
//! tests in services/sysinfo.rs and services/jobs.rs.

use opshost_tests::{ok, Server, USER};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn wait_job(server: &Server, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let jobs = ok(server, json!({"operation": "get_job", "id": id}));
        let job = jobs[0].clone();
        if job["status"] != "IN_PROGRESS" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still IN_PROGRESS after {within:?}: {job}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job_id(resp: &Value) -> String {
    resp["job_id"].as_str().unwrap_or_else(|| panic!("no job_id: {resp}")).to_string()
}

/// A TCP server that accepts connections and never answers (an S3 "tarpit").
fn tarpit() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(64) {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    (port, handle)
}

fn s3_export(endpoint: &str, region: &str, bucket: &str) -> Value {
    json!({
        "operation": "export_to_s3", "format": "json",
        "s3": {"aws_access_key_id": "A", "aws_secret_access_key": "S", "bucket": bucket, "key": "k", "region": region, "endpoint": endpoint},
        "search_operation": {"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [], "get_attributes": ["*"]}
    })
}

fn dev_dog(server: &Server) {
    ok(server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Penny"}]}));
}

#[test]
fn export_to_s3_is_super_user_only_and_region_and_bucket_are_names() {
    let server = Server::start();
    dev_dog(&server);
    let mut body = s3_export("http://127.0.0.1:9", "us-east-1", "bucket");
    body["s3"].as_object_mut().expect("s3").remove("endpoint");
    let (status, resp) = server.post_as(USER, body);
    assert_eq!(status, 403, "{resp}");
    assert!(resp.to_string().contains("Operation 'export_to_s3' is restricted to 'super_user' roles"), "{resp}");
    for (region, bucket, field) in [("x@127.0.0.1:8443/", "bucket", "s3.region"), ("evil.example/", "bucket", "s3.region"), ("us-east-1", "a/b@c", "s3.bucket")] {
        let mut body = s3_export("", region, bucket);
        body["s3"].as_object_mut().expect("s3").remove("endpoint");
        let (status, resp) = server.post(body);
        assert_eq!(status, 400, "{region} {bucket}: {resp}");
        assert!(resp["error"].as_str().is_some_and(|e| e.starts_with(field)), "{resp}");
    }
}

#[test]
fn a_tarpit_s3_ends_at_job_timeout_the_queue_is_bounded_and_later_jobs_run() {
    let (port, _tarpit) = tarpit();
    let server = Server::builder()
        .env("OPERATIONSAPI_LIMITS_JOBTIMEOUT", "3000")
        .env("OPERATIONSAPI_JOBS_MAXCONCURRENT", "1")
        .start();
    dev_dog(&server);
    let stuck = job_id(&ok(&server, s3_export(&format!("http://127.0.0.1:{port}"), "us-east-1", "bucket")));
    // Queue behind it until the per-user bound answers 429 with Retry-After.
    let exports = server.root().join("exports");
    let mut queued = Vec::new();
    let refused = loop {
        let body = json!({"operation": "export_local", "format": "json", "path": exports.to_string_lossy(), "filename": format!("e{}", queued.len()),
            "search_operation": {"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["*"]}});
        let (status, resp) = server.post(body);
        if status == 429 {
            break resp;
        }
        assert_eq!(status, 200, "{resp}");
        queued.push(job_id(&resp));
        assert!(queued.len() < 100, "the queue never refused");
    };
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("queued")), "{refused}");
    assert!(queued.len() <= 20, "at most 20 pending per user, {} accepted", queued.len());
    // The stuck upload ends as ERROR at its time limit (the host await is bounded too) ...
    let job = wait_job(&server, &stuck, Duration::from_secs(30));
    assert_eq!(job["status"], "ERROR", "{job}");
    // ... and every queued export then completes.
    for id in &queued {
        let job = wait_job(&server, id, Duration::from_secs(60));
        assert_eq!(job["status"], "COMPLETE", "{job}");
    }
    // Exports are private to the server's user.
    let mode = std::fs::metadata(exports.join("e0.json")).expect("export").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export mode {mode:o}");
}

#[test]
fn secrets_at_rest_are_private() {
    let server = Server::start();
    for dir in ["", "keys", "database", "exports"] {
        let path = server.root().join(dir);
        let mode = std::fs::metadata(&path).expect("dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
    }
    for entry in std::fs::read_dir(server.root().join("keys")).expect("keys").filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("rivate") || name.ends_with(".key") {
            let mode = entry.metadata().expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }
    }
}

#[test]
fn export_local_does_not_follow_a_symbolic_link() {
    let server = Server::start();
    dev_dog(&server);
    let exports = server.root().join("exports");
    let elsewhere = server.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::os::unix::fs::symlink(&elsewhere, exports.join("link")).expect("symlink");
    let body = json!({"operation": "export_local", "format": "json", "path": exports.join("link").to_string_lossy(), "filename": "x",
        "search_operation": {"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["*"]}});
    let (status, resp) = server.post(body);
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"].as_str().is_some_and(|e| e.contains("symbolic link")), "{resp}");
    assert_eq!(std::fs::read_dir(&elsewhere).expect("dir").count(), 0, "nothing was written through the link");
}

#[test]
fn a_queued_job_of_a_dropped_user_does_not_run() {
    let (port, _tarpit) = tarpit();
    let server = Server::builder()
        .env("OPERATIONSAPI_LIMITS_JOBTIMEOUT", "4000")
        .env("OPERATIONSAPI_JOBS_MAXCONCURRENT", "1")
        .start();
    dev_dog(&server);
    ok(&server, json!({"operation": "add_user", "username": "admin2", "password": "pw2", "role": "super_user", "active": true}));
    // The only job slot is held by an upload that hangs until the job time limit.
    let stuck = job_id(&ok(&server, s3_export(&format!("http://127.0.0.1:{port}"), "us-east-1", "bucket")));
    let (status, resp) = server.post_as(("admin2", "pw2"), json!({"operation": "delete_records_before", "date": "2999-01-01T00:00:00Z", "schema": "dev", "table": "dog"}));
    assert_eq!(status, 200, "{resp}");
    let queued = job_id(&resp);
    ok(&server, json!({"operation": "drop_user", "username": "admin2"}));
    wait_job(&server, &stuck, Duration::from_secs(30));
    let job = wait_job(&server, &queued, Duration::from_secs(30));
    assert_eq!(job["status"], "ERROR", "{job}");
    assert!(job["message"].as_str().is_some_and(|m| m.contains("no longer exists")), "{job}");
    let found = ok(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["*"]}));
    assert_eq!(found.as_array().map(Vec::len), Some(1), "the dropped user's job deleted nothing: {found}");
}

#[test]
fn npm_runs_without_scripts_or_the_servers_environment() {
    let server = Server::builder().env("OPSHOST_TEST_SECRET", "do-not-leak").start();
    let project = server.root().join("components").join("p");
    std::fs::create_dir_all(&project).expect("project");
    let leak = server.root().join("leak.txt");
    std::fs::write(
        project.join("package.json"),
        json!({"name": "p", "version": "1.0.0", "scripts": {"postinstall": format!("env > {}", leak.display())}}).to_string(),
    )
    .expect("package.json");
    let (status, resp) = server.post(json!({"operation": "install_node_modules", "projects": ["p"]}));
    assert_eq!(status, 200, "{resp}");
    let leaked = std::fs::read_to_string(&leak).unwrap_or_default();
    assert!(!leaked.contains("do-not-leak") && !leaked.contains("admin-pass"), "the install script saw the server's environment");
}
