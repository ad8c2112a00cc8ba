//! The Studio web console: `GET /` and its assets (embedded, no login, strict security headers,
//! off with `localStudio.enabled: false`), and the page driven in a real headless Chromium over
//! WebDriver (Debian's chromedriver, `OPSHOST_TEST_CHROMEDRIVER`, installed by `cargo xtask
//! test`): log in, create a table, insert and find a record, an export's progress reaching 100%,
//! a hot-swapped component's new version, a component deployed and rolled back, a non-super_user
//! refused. Each browser test saves a screenshot under `target/test-output/studio/`.

use opshost_tests::{free_port, test_guest, Server, ADMIN, USER};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the page may take to show something: generous, the machine is small and shared.
const UI_WAIT: Duration = Duration::from_secs(60);

fn get(url: &str) -> ureq::Response {
    match ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build().get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

#[test]
fn the_page_and_its_assets_are_served_without_login_with_strict_headers() {
    let server = Server::start();
    let page = get(&server.url());
    assert_eq!(page.status(), 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap_or_default().to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let etag = page.header("etag").expect("an ETag").to_string();
    let html = page.into_string().expect("page text");
    assert!(html.contains("/studio/app.js") && !html.contains("<script>"), "no inline script: {html}");

    let js = get(&format!("{}studio/app.js", server.url()));
    assert_eq!((js.status(), js.header("content-type")), (200, Some("text/javascript; charset=utf-8")));
    let css = get(&format!("{}studio/style.css", server.url()));
    assert_eq!((css.status(), css.header("content-type")), (200, Some("text/css; charset=utf-8")));
    // An unchanged page costs a 304.
    let again = ureq::get(&server.url()).set("If-None-Match", &etag).call().expect("conditional GET");
    assert_eq!(again.status(), 304);
    // Only the embedded files exist: no path reaches the disk.
    for missing in ["studio/nope.js", "studio/..%2fCargo.toml", "studio/%2e%2e%2fopshost-config.yaml"] {
        assert_eq!(get(&format!("{}{missing}", server.url())).status(), 404, "{missing}");
    }
    // The operations API is unchanged: POST / still needs a login.
    let (status, _) = server.raw(Some("application/json"), br#"{"operation":"describe_all"}"#, None);
    assert_eq!(status, 401);
}

#[test]
fn local_studio_enabled_false_turns_the_studio_off() {
    let server = Server::builder().env("LOCALSTUDIO_ENABLED", "false").start();
    let page = get(&server.url());
    assert_eq!(page.status(), 404);
    let body: Value = serde_json::from_str(&page.into_string().expect("body")).expect("JSON error");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("localStudio.enabled")), "{body}");
    assert_eq!(get(&format!("{}studio/app.js", server.url())).status(), 404);
    let (status, config) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!((status, &config["localStudio"]["enabled"]), (200, &json!(false)));
    // A non-boolean is refused naming the key.
    let (status, body) = server.post(json!({"operation": "set_configuration", "localStudio_enabled": "yes"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.to_lowercase().contains("localstudio")), "{body}");
}

#[test]
fn studio_logs_in_creates_a_table_and_inserts_and_finds_a_record() {
    let server = Server::start();
    let browser = Browser::start("table_and_record");
    browser.open(&server.url());
    browser.login(ADMIN);
    browser.wait_text("#whoami", "admin (super_user)");

    browser.click("#nav-tables");
    browser.wait_js("a database form", "return !!document.querySelector('#create-table-form')");
    browser.fill("#new-db", "dev");
    browser.fill("#new-table", "dog");
    browser.fill("#new-pk", "id");
    browser.click("#create-table");
    browser.wait_text("#status", "successfully created");
    browser.wait_js("the table in the tree", "return !!document.querySelector('button[data-table=\"dev.dog\"]')");
    assert_eq!(server.post(json!({"operation": "describe_table", "database": "dev", "table": "dog"})).0, 200);

    // Insert two records through the editor.
    for record in [r#"{"id": 1, "name": "Penny", "breed": "corgi"}"#, r#"{"id": 2, "name": "Rex <b>bold</b>", "breed": "lab"}"#] {
        browser.wait_js("the record editor", "return !!document.querySelector('#record-json')");
        browser.fill("#record-json", record);
        browser.click("#record-insert");
        browser.wait_text("#status", "inserted 1 of 1 records");
        browser.run("document.querySelector('#status').textContent = ''");
    }
    browser.wait_js("two rows", "return document.querySelectorAll('#records tbody tr').length === 2");
    // Markup in a value stays text.
    assert!(browser.run("return document.querySelectorAll('#records b').length").as_u64() == Some(0), "a value rendered as markup");

    // Find one by value.
    browser.wait_js("the new attribute offered", "return [...document.querySelectorAll('#search-attr option')].some(o => o.value === 'name')");
    browser.click("#search-attr option[value=\"name\"]");
    browser.fill("#search-value", "Penny");
    browser.click("#search-btn");
    browser.wait_js(
        "only Penny",
        "const rows = document.querySelectorAll('#records tbody tr'); return rows.length === 1 && rows[0].textContent.includes('corgi')",
    );
    browser.screenshot();
    let (status, found) = server.post(json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1, 2], "get_attributes": ["*"]}));
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{found}");
}

#[test]
fn studio_runs_an_export_and_shows_its_progress_reaching_100_percent() {
    let server = Server::start();
    let exports = server.root().join("exports");
    std::fs::create_dir_all(&exports).expect("exports folder");
    assert_eq!(server.post(json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"})).0, 200);
    let records: Vec<Value> = (0..2000).map(|i| json!({"id": i, "name": format!("dog {i}")})).collect();
    assert_eq!(server.post(json!({"operation": "insert", "database": "dev", "table": "dog", "records": records})).0, 200);

    let browser = Browser::start("export_progress");
    browser.open(&server.url());
    browser.login(ADMIN);
    browser.click("#nav-jobs");
    browser.wait_js("the export form", "return !!document.querySelector('#export-form')");
    browser.fill("#export-table", "dev.dog");
    browser.fill("#export-path", &exports.display().to_string());
    browser.click("#export-run");
    browser.wait_text("#status", "Starting job with id");
    let status_line = browser.run("return document.querySelector('#status').textContent");
    let id = status_line.as_str().and_then(|s| s.rsplit(' ').next()).expect("job id").to_string();
    // The job's row (polled every second) reaches 100% and COMPLETE.
    let selector = format!("[data-job=\"{id}\"]");
    browser.wait_js(
        "the job at 100%",
        &format!(
            "const p = document.querySelector('{selector}'); if (!p) return false; \
             return p.querySelector('progress').value === 100 && p.textContent.includes('100%') && p.closest('tr').textContent.includes('COMPLETE')"
        ),
    );
    browser.screenshot();
    let (status, job) = server.post(json!({"operation": "get_job", "id": id}));
    assert_eq!((status, &job[0]["status"]), (200, &json!("COMPLETE")), "{job}");
    let path = job[0]["result"]["path"].as_str().expect("export path").to_string();
    assert!(browser.run(&format!("return document.querySelector('{selector}').closest('tr').textContent")).as_str().is_some_and(|t| t.contains(&path)));
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("exported file")).expect("JSON");
    assert_eq!(exported.as_array().map(Vec::len), Some(2000));
}

#[test]
fn studio_shows_a_hot_swapped_components_new_version() {
    let server = Server::builder().component(test_guest("hello_v1"), "test_hello.wasm").start();
    let hash_of = |server: &Server| -> String {
        let (_, list) = server.post(json!({"operation": "list_operations"}));
        list.as_array()
            .and_then(|l| l.iter().find(|e| e["name"] == "test_hello"))
            .and_then(|e| e["hash"].as_str())
            .map(|h| h[..12].to_string())
            .unwrap_or_default()
    };
    let v1 = hash_of(&server);
    assert_eq!(v1.len(), 12);

    let browser = Browser::start("hot_swap");
    browser.open(&server.url());
    browser.login(ADMIN);
    browser.click("#nav-components");
    let row_has = |text: &str| {
        format!(
            "return [...document.querySelectorAll('#components tbody tr')].some(r => r.cells[0].textContent === 'test_hello' && r.textContent.includes('{text}'))"
        )
    };
    browser.wait_js("test_hello v1 listed", &row_has(&v1));

    let v2_bytes = std::fs::read(test_guest("hello_v2")).expect("hello_v2 built by cargo xtask build-guests");
    std::fs::write(server.root().join("components").join("test_hello.wasm"), v2_bytes).expect("write v2");
    let deadline = Instant::now() + UI_WAIT;
    let v2 = loop {
        let h = hash_of(&server);
        if h != v1 && !h.is_empty() {
            break h;
        }
        assert!(Instant::now() < deadline, "the server never loaded v2");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The components view refreshes by itself (every 3 s) and shows the new file.
    browser.wait_js("test_hello v2 listed", &row_has(&v2));
    // And the operation runner gets v2's answer.
    browser.click("#nav-runner");
    browser.wait_js("the runner", "return !!document.querySelector('#op-json')");
    browser.fill("#op-json", r#"{"operation": "test_hello"}"#);
    browser.click("#op-run");
    browser.wait_js("v2's answer", "return document.querySelector('#op-answer').textContent.includes('\"version\": 2')");
    browser.screenshot();
}

#[test]
fn studio_deploys_a_component_file_and_rolls_it_back() {
    let server = Server::start();
    let hello = |server: &Server| server.post(json!({"operation": "test_hello"})).1["version"].as_i64();
    let browser = Browser::start("deploy_rollback");
    browser.open(&server.url());
    browser.login(ADMIN);
    browser.click("#nav-components");
    for (guest, version) in [("hello_v1", 1), ("hello_v2", 2)] {
        browser.fill("#deploy-name", "test_hello");
        // A file input takes the file's path as its typed text (WebDriver's upload).
        browser.upload("#deploy-file", &test_guest(guest).display().to_string());
        browser.click("#deploy-run");
        browser.wait_text("#status", &format!("Successfully deployed: test_hello version {version}"));
        assert_eq!(hello(&server), Some(version));
    }
    browser.click("[data-rollback=\"test_hello\"]");
    browser.accept_alert();
    browser.wait_text("#status", "Successfully rolled back: test_hello version 1");
    assert_eq!(hello(&server), Some(1));
    browser.screenshot();
}

#[test]
fn studio_shows_a_non_super_user_refused_and_a_bad_password_rejected() {
    let server = Server::start();
    let browser = Browser::start("refused");
    browser.open(&server.url());
    browser.fill("#login-user", ADMIN.0);
    browser.fill("#login-pass", "wrong password");
    browser.click("#login-submit");
    browser.wait_js("a login error", "return document.querySelector('#login-error').textContent.length > 0");
    assert_eq!(browser.run("return getComputedStyle(document.querySelector('#nav')).display"), json!("none"), "no console without a login");

    // This time with an operation token instead of the password.
    browser.click("#login-token");
    browser.login(USER);
    browser.wait_text("#whoami", USER.0);
    let stored = browser.run("return sessionStorage.getItem('opshost.studio.auth')");
    assert!(stored.as_str().is_some_and(|s| s.contains("Bearer ") && !s.contains(USER.1)), "a token, not the password, is kept: {stored}");
    browser.click("#nav-components");
    browser.wait_text("#status", "restricted to 'super_user'");
    assert_eq!(browser.run("return document.querySelectorAll('#components tbody tr').length"), json!(0));
    browser.screenshot();
    // The token travels in sessionStorage only, never a cookie.
    assert_eq!(browser.run("return document.cookie"), json!(""));
}

// ---- a small WebDriver client over ureq ----

/// chromedriver on a free loopback port with one headless Chromium session; both stop on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    name: String,
    profile: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(name: &str) -> Browser {
        let driver_bin = std::env::var("OPSHOST_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("OPSHOST_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {driver_bin} (apt-get install chromium-driver; cargo xtask test does): {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let profile = std::env::temp_dir().join(format!("opshost-studio-{}-{name}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("browser profile folder");
        let mut browser = Browser { driver, base, session: String::new(), name: name.into(), profile };
        let deadline = Instant::now() + UI_WAIT;
        while !ureq::get(&format!("{}/status", browser.base)).call().ok().and_then(|r| r.into_json::<Value>().ok()).is_some_and(|v| v["value"]["ready"] == true) {
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", browser.profile.display()),
        ];
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}}),
        );
        browser.session = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        browser
    }

    /// One WebDriver command; answers its `value`, panics on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
        let url = format!("{}{path}", self.base);
        let result = match method {
            "GET" => agent.get(&url).call(),
            "DELETE" => agent.delete(&url).call(),
            _ => agent.post(&url).send_json(body),
        };
        match result {
            Ok(r) => r.into_json::<Value>().map(|v| v["value"].clone()).unwrap_or(Value::Null),
            Err(ureq::Error::Status(code, r)) => panic!("WebDriver {method} {path}: {code} {}", r.into_string().unwrap_or_default()),
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn open(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), json!({ "url": url }));
        self.wait_js("the login form or the console", "return !!document.querySelector('#login-user')");
    }

    fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
            let found = agent
                .post(&format!("{}{}", self.base, self.session_path("/element")))
                .send_json(json!({"using": "css selector", "value": css}));
            if let Ok(r) = found {
                if let Some(id) = r.into_json::<Value>().ok().and_then(|v| v["value"][ELEMENT].as_str().map(str::to_string)) {
                    return id;
                }
            }
            assert!(Instant::now() < deadline, "no element {css} after {UI_WAIT:?} ({})", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &self.session_path(&format!("/element/{id}/click")), json!({}));
    }

    /// Replaces an input's text by typing it (real key events).
    fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &self.session_path(&format!("/element/{id}/clear")), json!({}));
        self.call("POST", &self.session_path(&format!("/element/{id}/value")), json!({ "text": text }));
    }

    /// Types a local file's path into a file input: WebDriver's upload (no clearing first).
    fn upload(&self, css: &str, path: &str) {
        let id = self.element(css);
        self.call("POST", &self.session_path(&format!("/element/{id}/value")), json!({ "text": path }));
    }

    /// Accepts the page's `confirm()` once it shows.
    fn accept_alert(&self) {
        let deadline = Instant::now() + UI_WAIT;
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
        while agent.post(&format!("{}{}", self.base, self.session_path("/alert/accept"))).send_json(json!({})).is_err() {
            assert!(Instant::now() < deadline, "no confirm dialog after {UI_WAIT:?} ({})", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn login(&self, (user, pass): (&str, &str)) {
        self.fill("#login-user", user);
        self.fill("#login-pass", pass);
        self.click("#login-submit");
        self.wait_js("the console after login", "return document.querySelector('#nav').hidden === false");
    }

    /// Runs a script in the page (the function body of `script`) and answers its result.
    fn run(&self, script: &str) -> Value {
        self.call("POST", &self.session_path("/execute/sync"), json!({"script": script, "args": []}))
    }

    /// Polls `script` until it answers true.
    fn wait_js(&self, what: &str, script: &str) {
        let deadline = Instant::now() + UI_WAIT;
        while self.run(script) != json!(true) {
            if Instant::now() > deadline {
                self.screenshot();
                let status = self.run("return document.querySelector('#status') && document.querySelector('#status').textContent");
                panic!("{what}: not seen after {UI_WAIT:?} ({}; status line: {status})", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_text(&self, css: &str, text: &str) {
        let script = format!(
            "const e = document.querySelector({}); return !!e && e.textContent.includes({})",
            json!(css),
            json!(text)
        );
        self.wait_js(&format!("'{text}' in {css}"), &script);
    }

    /// Saves the page as `target/test-output/studio/<test>.png`.
    fn screenshot(&self) {
        let png = self.call("GET", &self.session_path("/screenshot"), Value::Null);
        let dir = opshost_tests::repo().join("target/test-output/studio");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let bytes = decode_base64(png.as_str().unwrap_or_default());
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(dir.join(format!("{}.png", self.name)), bytes).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = text.bytes().filter_map(value).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes[..c.len().saturating_sub(1)].to_vec()
        })
        .collect()
}
