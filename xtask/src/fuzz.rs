//! `cargo xtask bench fuzz [N] [SEED]`: sends N (default 100,000) generated or mutated requests
//! to a real server over HTTP from a few concurrent clients and reports every 5xx, dropped
//! connection (crash) and response slower than 10 s (hang); exits non-zero if there is any.
//!
//! Inputs are mutations of valid bodies for the operations (writes, the three searches with
//! nested conditions, SQL built from a grammar, describe_*, users and roles, certificates,
//! jobs), random JSON, invalid UTF-8, deep nesting, huge numbers, wrong types and odd headers.
//! Input `i` is generated from `(SEED, i)` alone, so a finding is reproducible from the seed
//! whatever the threads' interleaving (apart from the server's state at that moment).
//!
//! Left out on purpose, because a fuzzed body would make them leave the machine or stop the
//! server under the fuzzer: `restart`, `restart_service`, `export_to_s3` (network) and
//! `install_node_modules` (npm). Destructive operations target scratch names only, and no
//! generated string names the admin user or the super_user role, so the fuzzer cannot lock
//! itself out.

use super::{base64, free_port, scratch_root, stop, PASS, USER};
use crate::paths;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A response slower than this is a hang.
const HANG: Duration = Duration::from_secs(10);
const CLIENTS: usize = 4;
/// Findings printed in full (the totals count them all).
const SHOWN: usize = 20;
const READER: (&str, &str) = ("fuzz_reader", "fuzz-reader-pass");

pub fn run(args: &[String]) -> Result<()> {
    let n: usize = args.first().map(|s| s.parse()).transpose().context("N must be a number")?.unwrap_or(100_000);
    let seed: u64 = match args.get(1) {
        Some(s) => s.parse().context("SEED must be a number")?,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    println!("fuzz: seed {seed}, {n} inputs, {CLIENTS} clients (again: cargo xtask bench fuzz {n} {seed})");
    let root = scratch_root("fuzz")?;
    let port = free_port()?;
    let log_path = root.join("server.log");
    let mut child = Command::new(paths::dist().join("opshost"))
        .arg("run")
        .env("ROOTPATH", &root)
        .env("HDB_ADMIN_USERNAME", USER)
        .env("HDB_ADMIN_PASSWORD", PASS)
        .env("OPERATIONSAPI_NETWORK_PORT", port.to_string())
        .env("LOGGING_LEVEL", "warn")
        // Kept between runs so only the first run compiles every component.
        .env("OPSHOST_COMPILE_CACHE", paths::root().join("target").join("opshost-fuzz-cache"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .context("starting opshost")?;
    let result = (|| -> Result<Totals> {
        super::wait_ready(port, Duration::from_secs(300))?;
        let fixture = setup(port, &root)?;
        Ok(campaign(port, n, seed, &fixture))
    })();
    // A crash is also a server that is gone at the end, or no longer answers.
    let exited = child.try_wait()?;
    let answers = Client::new(port).call(&admin_request(r#"{"operation":"get_configuration"}"#)).status() == Some(200);
    stop(&mut child);
    let totals = result?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    for (i, f) in totals.findings.iter().take(SHOWN).enumerate() {
        println!("--- finding {} of {}: {} (input {}, {} ms)", i + 1, totals.findings.len(), f.kind, f.input, f.took.as_millis());
        println!("request ({}): {}", f.auth, shorten(&f.request, 600));
        println!("response: {}", shorten(&f.response, 800));
        if let Some(id) = request_id(&f.response) {
            for line in log.lines().filter(|l| l.contains(&id)).take(5) {
                println!("server log: {}", shorten(line.as_bytes(), 800));
            }
        }
    }
    let crashes = totals.crashes + usize::from(exited.is_some() || !answers);
    println!(
        "fuzz: status classes: 2xx {}, 4xx {} (of which 429: {}), 5xx {}, other {}; slowest {} ms ({})",
        totals.classes[2], totals.classes[4], totals.too_many, totals.classes[5], totals.classes[0] + totals.classes[1] + totals.classes[3], totals.slowest.0.as_millis(), totals.slowest.1
    );
    println!("fuzz: 2xx by sender: {:?}", totals.ok_by_sender);
    let mut refusals: Vec<(&String, &usize)> = totals.refusals.iter().collect();
    refusals.sort_by(|a, b| b.1.cmp(a.1));
    println!("fuzz: most common 4xx answers:");
    for (text, count) in refusals.iter().take(12) {
        println!("  {count:6}  {text}");
    }
    if !totals.too_many_why.is_empty() {
        println!("fuzz: 429 answers: {:?}", totals.too_many_why);
    }
    if let Some(status) = exited {
        println!("fuzz: the server exited during the run: {status}");
    } else if !answers {
        println!("fuzz: the server no longer answers get_configuration");
    }
    println!("fuzz: {n} inputs, {crashes} crashes, {} hangs, {} 5xx", totals.hangs, totals.server_errors);
    if crashes + totals.hangs + totals.server_errors > 0 {
        println!("fuzz: server log and root kept at {}", root.display());
        bail!("fuzzing found {} problems", crashes + totals.hangs + totals.server_errors);
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// What the inputs refer to: the tables, users and roles `setup` made, and tokens.
struct Fixture {
    export_dir: String,
    operation_token: String,
    refresh_token: String,
    reader_token: String,
    /// Job ids seen in answers, for `get_job`.
    jobs: Mutex<Vec<String>>,
}

const DOG_ROWS: i64 = 200;

fn dogs(from: i64, to: i64) -> Value {
    let breeds = ["Beagle", "Mutt", "Pug", "Poodle", "Collie"];
    Value::Array(
        (from..to)
            .map(|i| {
                let mut r = json!({"id": i, "name": format!("dog-{i}"), "age": i % 17, "weight": i as f64 / 3.0, "alive": i % 3 == 0,
                                   "tags": ["a", i % 5], "owner": {"name": format!("o{}", i % 7), "n": i}, "sid": format!("s{i}")});
                if i % 4 != 0 {
                    r["breed"] = json!(breeds[i as usize % breeds.len()]);
                }
                if i % 9 == 0 {
                    r["age"] = json!(format!("{}", i % 17));
                }
                r
            })
            .collect(),
    )
}

fn setup(port: u16, root: &std::path::Path) -> Result<Fixture> {
    let mut c = Client::new(port);
    let mut ok = |body: Value| -> Result<Value> {
        let out = c.call(&admin_request(&body.to_string()));
        match out {
            Outcome::Answer { status: 200, body: text } => Ok(serde_json::from_slice(&text).unwrap_or(Value::Null)),
            other => bail!("setup request {body} failed: {}", other.describe()),
        }
    };
    ok(json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}))?;
    ok(json!({"operation": "create_table", "database": "dev", "table": "scratch", "primary_key": "id"}))?;
    ok(json!({"operation": "insert", "database": "dev", "table": "dog", "records": dogs(0, DOG_ROWS)}))?;
    ok(json!({"operation": "insert", "database": "dev", "table": "scratch", "records": dogs(0, 20)}))?;
    ok(json!({"operation": "add_role", "role": "fuzz_reader_role", "permission": {"super_user": false, "dev": {"tables": {
        "dog": {"read": true, "insert": false, "update": false, "delete": false,
                "attribute_permissions": [{"attribute_name": "weight", "read": false, "insert": false, "update": false}]},
        "scratch": {"read": true, "insert": true, "update": true, "delete": false, "attribute_permissions": []}}}}}))?;
    ok(json!({"operation": "add_role", "role": "fuzz_role", "id": "fuzz_role", "permission": {"super_user": false, "dev": {"tables": {}}}}))?;
    ok(json!({"operation": "add_user", "username": READER.0, "password": READER.1, "role": "fuzz_reader_role", "active": true}))?;
    let tokens = ok(json!({"operation": "create_authentication_tokens"}))?;
    let reader_tokens = ok(json!({"operation": "create_authentication_tokens", "username": READER.0, "password": READER.1}))?;
    let export_dir = root.join("exports");
    std::fs::create_dir_all(&export_dir)?;
    Ok(Fixture {
        export_dir: export_dir.display().to_string(),
        operation_token: tokens["operation_token"].as_str().context("no operation_token")?.to_string(),
        refresh_token: tokens["refresh_token"].as_str().context("no refresh_token")?.to_string(),
        reader_token: reader_tokens["operation_token"].as_str().context("no reader operation_token")?.to_string(),
        jobs: Mutex::new(Vec::new()),
    })
}

#[derive(Default)]
struct Totals {
    classes: [usize; 6],
    too_many: usize,
    /// 429 answers by their error text (which limit said no).
    too_many_why: std::collections::BTreeMap<String, usize>,
    /// 4xx answers by their error text, to see what the inputs mostly run into.
    refusals: std::collections::BTreeMap<String, usize>,
    /// 2xx answers by sender.
    ok_by_sender: std::collections::BTreeMap<String, usize>,
    crashes: usize,
    hangs: usize,
    server_errors: usize,
    slowest: (Duration, String),
    findings: Vec<Finding>,
}

struct Finding {
    kind: String,
    input: usize,
    auth: String,
    request: Vec<u8>,
    response: Vec<u8>,
    took: Duration,
}

fn campaign(port: u16, n: usize, seed: u64, fixture: &Fixture) -> Totals {
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(Totals::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..CLIENTS {
            let (next, totals) = (&next, &totals);
            s.spawn(move || {
                let mut client = Client::new(port);
                let mut reseeder = Client::new(port);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    // Inputs may drop or empty the main table; put it back now and then
                    // (not counted as an input).
                    if thread == 0 && i % 2000 == 1999 {
                        reseed(&mut reseeder);
                    }
                    if i % 10_000 == 0 && i > 0 {
                        eprintln!("fuzz: {i} inputs sent ({:.0} s)", started.elapsed().as_secs_f64());
                    }
                    let mut rng = Rng::new(seed, i as u64);
                    let (label, request) = generate(&mut rng, fixture);
                    let begun = Instant::now();
                    let outcome = client.call(&request);
                    let took = begun.elapsed();
                    if let Outcome::Answer { body, .. } = &outcome {
                        remember_job(fixture, body);
                    }
                    record(totals, i, &label, &request, outcome, took);
                }
            });
        }
    });
    totals.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn reseed(c: &mut Client) {
    c.call(&admin_request(r#"{"operation":"create_table","database":"dev","table":"dog","primary_key":"id"}"#));
    let body = json!({"operation": "upsert", "database": "dev", "table": "dog", "records": dogs(0, DOG_ROWS)});
    c.call(&admin_request(&body.to_string()));
}

fn remember_job(fixture: &Fixture, body: &[u8]) {
    let Some(at) = find(body, b"\"job_id\":\"") else { return };
    let rest = &body[at + 10..];
    if let Some(end) = rest.iter().position(|&b| b == b'"') {
        let mut jobs = fixture.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() < 1000 {
            jobs.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }
}

fn record(totals: &Mutex<Totals>, input: usize, label: &str, request: &Request, outcome: Outcome, took: Duration) {
    let mut t = totals.lock().unwrap_or_else(|e| e.into_inner());
    if took > t.slowest.0 {
        t.slowest = (took, label.to_string());
    }
    let kind = match &outcome {
        Outcome::Answer { status, body } => {
            t.classes[(*status as usize / 100).min(5)] += 1;
            if *status == 429 {
                t.too_many += 1;
                *t.too_many_why.entry(shorten(body, 60)).or_default() += 1;
            }
            if (400..500).contains(status) {
                *t.refusals.entry(shorten(body, 70)).or_default() += 1;
            }
            if (200..300).contains(status) {
                *t.ok_by_sender.entry(request.auth_label.clone()).or_default() += 1;
            }
            if *status >= 500 {
                t.server_errors += 1;
                Some(format!("{status} from {label}"))
            } else if took > HANG {
                t.hangs += 1;
                Some(format!("hang: {status} after {} ms from {label}", took.as_millis()))
            } else {
                None
            }
        }
        Outcome::TimedOut => {
            t.hangs += 1;
            Some(format!("hang: no answer within {} s from {label}", HANG.as_secs()))
        }
        Outcome::Failed(e) => {
            t.crashes += 1;
            Some(format!("connection error ({e}) from {label}"))
        }
    };
    if let Some(kind) = kind {
        let response = match outcome {
            Outcome::Answer { body, .. } => body,
            other => other.describe().into_bytes(),
        };
        t.findings.push(Finding { kind, input, auth: request.auth_label.clone(), request: request.body.clone(), response, took });
    }
}

// ---------------------------------------------------------------------------------------------
// Generation

/// xorshift64*, seeded per input through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, index: u64) -> Self {
        let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo) as u64 + 1)) as i64
    }
}

/// One HTTP request: body, headers, and who it claims to be.
struct Request {
    body: Vec<u8>,
    content_type: Option<String>,
    auth: Option<String>,
    auth_label: String,
}

fn admin_request(body: &str) -> Request {
    Request { body: body.as_bytes().to_vec(), content_type: Some("application/json".into()), auth: Some(basic(USER, PASS)), auth_label: "admin".into() }
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

/// Numbers serde_json's `Value` cannot hold; spliced into the text after serializing
/// (a string `"\u0001RAW<i>\u0001"` marks the place).
const RAW_NUMBERS: &[&str] = &[
    "1e400", "-1e400", "1e-400", "123456789012345678901234567890", "18446744073709551616", "-9223372036854775809",
    "9007199254740993", "-0", "1E+2", "4.9e-324", "1.7976931348623157e308", "0.30000000000000004", "-0.0e-0",
];

const STRINGS: &[&str] = &[
    "", "*", "**", "%", "_", "dog", "scratch", "dev", "nosuch", "system", "hdb_user", "id", "name", "age", "breed", "weight",
    "owner", "tags", "*a*", "dog-1*", "*1", "\0", "a\0b", "null", "true", "1", "-1", "1e309", "NaN", "'", "\"", "\\", "`",
    "'; DROP TABLE dev.dog; --", "../../../etc/passwd", "/", "..", ".", "\u{202e}", "😀", "\u{FFFF}", "\u{10FFFF}",
    "SELECT * FROM dev.dog", "equals", "contains", "and", "or", "not", "between", "starts_with", "ends_with",
    "greater_than", "is_null", "fuzz_role", "fuzz_u1", "fuzz_r1", "fz1", "json", "csv", "2000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z", "-271821-04-20T00:00:00Z", "0000-00-00", "Basic", "Bearer x", "\r\n", "\u{7f}",
];

const OPERATIONS: &[&str] = &[
    "insert", "update", "upsert", "delete", "search_by_hash", "search_by_id", "search_by_value", "search_by_conditions", "sql",
    "describe_all", "describe_database", "describe_schema", "describe_table", "create_database", "create_schema", "drop_database",
    "drop_schema", "create_table", "drop_table", "get_configuration", "set_configuration", "system_information", "get_job",
    "search_jobs_by_start_date", "export_local", "delete_records_before", "list_users",
    "user_info", "list_roles", "create_authentication_tokens", "refresh_operation_token",
    "add_certificate", "remove_certificate", "list_certificates", "list_operations",
];

const USER_OPERATIONS: &[&str] = &["add_user", "alter_user", "drop_user", "add_role", "alter_role", "drop_role"];

const FIELDS: &[&str] = &[
    "operation", "database", "schema", "table", "primary_key", "hash_attribute", "records", "hash_values", "ids", "get_attributes",
    "attribute", "value", "search_attribute", "search_value", "search_type", "conditions", "operator", "comparator", "sort", "offset",
    "limit", "sql", "username", "password", "role", "active", "permission", "id", "name", "certificate", "private_key",
    "is_authority", "hosts", "format", "path", "filename", "search_operation", "date", "from_date", "to_date", "attributes",
    "refresh_token", "descending", "next", "attribute_permissions", "tables",
];

const ATTRS: &[&str] = &["id", "name", "age", "breed", "weight", "alive", "tags", "owner", "sid", "nosuch", "__createdtime__", "__updatedtime__"];

const COMPARATORS: &[&str] = &[
    "equals", "contains", "starts_with", "ends_with", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "between", "not_equal", "is_null", "not", "EQUALS", "bogus", "",
];

fn generate(r: &mut Rng, fx: &Fixture) -> (String, Request) {
    // Who sends it: mostly the super_user; a reader with table and attribute limits; now and
    // then no or broken credentials (random names, so no login throttle builds up on a real
    // user, and rarely, since each unknown name costs the server a hash). Mostly Bearer tokens:
    // every user or role change empties the server's login cache, and Basic logins then hash
    // again, within a few hashing slots (429 when they are all busy).
    let (auth, auth_label) = match r.below(100) {
        0..=59 => (Some(format!("Bearer {}", fx.operation_token)), "admin bearer".to_string()),
        60..=69 => (Some(basic(USER, PASS)), "admin".to_string()),
        70..=87 => (Some(format!("Bearer {}", fx.reader_token)), "reader bearer".to_string()),
        88..=93 => (Some(basic(READER.0, READER.1)), "reader".to_string()),
        94..=95 => (None, "none".to_string()),
        96 => (Some(basic(&format!("nobody{}", r.next()), "x")), "unknown user".to_string()),
        97 => (Some(format!("Bearer {}", mutate_text(r, &fx.operation_token))), "mutated bearer".to_string()),
        98 => (Some(r.pick(&["Basic", "Basic !!!!", "Basic YWRtaW4=", "Bearer", "Bearer a.b.c", "Digest x", "basic YTpi", "Basic \u{e9}"]).to_string()), "malformed".to_string()),
        _ => (Some(format!("Bearer {}", fx.refresh_token)), "refresh bearer".to_string()),
    };
    let unauthenticated = matches!(auth_label.as_str(), "none" | "unknown user" | "mutated bearer" | "malformed");
    let content_type = match r.below(50) {
        0 => None,
        1 => Some("text/plain".to_string()),
        2 => Some("application/json; charset=latin1".to_string()),
        3 => Some("application/x-www-form-urlencoded".to_string()),
        _ => Some("application/json".to_string()),
    };
    let (label, body) = match r.below(100) {
        0..=44 => {
            let (op, mut v) = operation_body(r, fx);
            for _ in 0..r.below(4) {
                mutate_value(r, &mut v, 0);
            }
            (op, render(&v))
        }
        45..=59 => {
            let (op, v) = operation_body(r, fx);
            let mut bytes = render(&v);
            mutate_bytes(r, &mut bytes);
            (format!("{op} (byte-mutated)"), bytes)
        }
        60..=74 => {
            let mut sql = sql_statement(r);
            if r.chance(30) {
                sql = mutate_sql(r, &sql);
            }
            let mut bytes = render(&json!({"operation": "sql", "sql": sql}));
            if r.chance(10) {
                mutate_bytes(r, &mut bytes);
            }
            ("sql (grammar)".to_string(), bytes)
        }
        75..=79 => {
            let mut v = random_value(r, 4);
            if r.chance(60) {
                if !v.is_object() {
                    v = json!({"x": v});
                }
                v["operation"] = json!(r.pick(OPERATIONS));
            }
            ("random JSON".to_string(), render(&v))
        }
        80..=82 => ("invalid UTF-8".to_string(), invalid_utf8(r, fx)),
        83..=85 => deep_nesting(r),
        86..=89 => {
            let (op, mut v) = operation_body(r, fx);
            for _ in 0..1 + r.below(3) {
                if let Some(obj) = v.as_object_mut() {
                    let keys: Vec<String> = obj.keys().filter(|k| *k != "operation").cloned().collect();
                    let key = if keys.is_empty() || r.chance(30) { r.pick(FIELDS).to_string() } else { r.pick(&keys).clone() };
                    obj.insert(key, raw_number(r));
                }
            }
            (format!("{op} (huge numbers)"), render(&v))
        }
        90..=95 => {
            let v = conditions_body(r, true);
            ("search_by_conditions (generated tree)".to_string(), render(&v))
        }
        _ => {
            // Wrong top-level shapes.
            let bodies: [&[u8]; 12] = [b"", b"null", b"[]", b"[{\"operation\":\"describe_all\"}]", b"\"describe_all\"", b"{}", b"{\"operation\":null}",
                b"{\"operation\":\"describe_all\",\"operation\":\"drop_table\"}", b"{\"operation\":[\"describe_all\"]}", b"{\"operation\":\"\"}",
                b"{\"operation\":\"DESCRIBE_ALL\"}", b"{\"operation\":\"describe_all\"} trailing"];
            ("wrong shape".to_string(), r.pick(&bodies).to_vec())
        }
    };
    // Without credentials the server may refuse to read past a small size; keep these bodies
    // small so a refusal is an answer, not a reset while the client is still writing.
    let body = if unauthenticated && body.len() > 16 << 10 { body[..16 << 10].to_vec() } else { body };
    (format!("{label} as {auth_label}"), Request { body, content_type, auth, auth_label })
}

/// Serializes, splicing in the raw numbers the markers stand for.
fn render(v: &Value) -> Vec<u8> {
    let mut text = v.to_string();
    if text.contains("\\u0001RAW") {
        for (i, raw) in RAW_NUMBERS.iter().enumerate() {
            text = text.replace(&format!("\"\\u0001RAW{i}\\u0001\""), raw);
        }
    }
    while let Some(at) = text.find("\"\\u0001DIG") {
        let rest = &text[at + 10..];
        let Some(end) = rest.find("\\u0001\"") else { break };
        let n: usize = rest[..end].parse().unwrap_or(1);
        let digits: String = (0..n).map(|i| if i == 0 { '1' } else { char::from(b'0' + (i % 10) as u8) }).collect();
        text.replace_range(at..at + 10 + end + 7, &digits);
    }
    text.into_bytes()
}

fn raw_number(r: &mut Rng) -> Value {
    if r.chance(3) {
        // A number with thousands of digits.
        return Value::String(format!("\u{1}DIG{}\u{1}", 1000 + r.below(20_000)));
    }
    Value::String(format!("\u{1}RAW{}\u{1}", r.below(RAW_NUMBERS.len())))
}

fn random_string(r: &mut Rng) -> String {
    match r.below(10) {
        0..=5 => r.pick(STRINGS).to_string(),
        6 => (0..r.below(20)).map(|_| char::from_u32(r.int(1, 0x2FFFF) as u32).unwrap_or('?')).collect(),
        7 if r.chance(10) => "a".repeat(*r.pick(&[10_000, 70_000, 300_000])),
        7 => "a".repeat(*r.pick(&[100, 1000])),
        8 => format!("dog-{}", r.below(300)),
        _ => format!("{}{}", r.pick(STRINGS), r.pick(STRINGS)),
    }
}

fn random_scalar(r: &mut Rng) -> Value {
    match r.below(12) {
        0 => Value::Null,
        1 => json!(r.chance(50)),
        2 => json!(r.int(-5, 300)),
        3 => json!(*r.pick(&[i64::MAX, i64::MIN, u32::MAX as i64, -1, 0, 9_007_199_254_740_993])),
        4 => json!(u64::MAX),
        5 => json!(*r.pick(&[0.5, -0.0, 1e308, -1e308, 5e-324, 2.75])),
        6 => raw_number(r),
        _ => json!(random_string(r)),
    }
}

fn random_value(r: &mut Rng, depth: usize) -> Value {
    if depth == 0 || r.chance(50) {
        return random_scalar(r);
    }
    if r.chance(50) {
        Value::Array((0..r.below(6)).map(|_| random_value(r, depth - 1)).collect())
    } else {
        let mut m = Map::new();
        for _ in 0..r.below(6) {
            let key = if r.chance(70) { r.pick(FIELDS).to_string() } else { random_string(r) };
            m.insert(key, random_value(r, depth - 1));
        }
        Value::Object(m)
    }
}

/// Changes one random place in the tree: a wrong type, a missing or extra field, a wrapped value.
fn mutate_value(r: &mut Rng, v: &mut Value, depth: usize) {
    // The body itself keeps its shape and (mostly) its operation: other inputs cover broken
    // top levels, and these should reach the operation's own decoding.
    if depth == 0 {
        if let Value::Object(m) = v {
            match r.below(5) {
                0 => {
                    m.insert(r.pick(FIELDS).to_string(), random_value(r, 2));
                }
                1 => {
                    let keys: Vec<String> = m.keys().filter(|k| *k != "operation").cloned().collect();
                    if !keys.is_empty() {
                        let key = r.pick(&keys).clone();
                        m.remove(&key);
                    }
                }
                _ => {
                    let keys: Vec<String> = m.keys().filter(|k| *k != "operation" || r.chance(5)).cloned().collect();
                    if !keys.is_empty() {
                        let key = r.pick(&keys).clone();
                        if let Some(child) = m.get_mut(&key) {
                            mutate_value(r, child, 1);
                        }
                    }
                }
            }
            return;
        }
    }
    // Walk down into a child now and then.
    if depth < 6 && r.chance(45) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let key = r.pick(&keys).clone();
                if let Some(child) = m.get_mut(&key) {
                    return mutate_value(r, child, depth + 1);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = r.below(a.len());
                return mutate_value(r, &mut a[i], depth + 1);
            }
            _ => {}
        }
    }
    match r.below(8) {
        0 | 1 => *v = random_scalar(r),
        2 => *v = random_value(r, 3),
        3 => {
            if let Value::Object(m) = v {
                let keys: Vec<String> = m.keys().filter(|k| *k != "operation" || depth > 0).cloned().collect();
                if !keys.is_empty() {
                    let key = r.pick(&keys).clone();
                    m.remove(&key);
                }
            }
        }
        4 => {
            if let Value::Object(m) = v {
                m.insert(r.pick(FIELDS).to_string(), random_value(r, 2));
            } else {
                *v = json!([v.take()]);
            }
        }
        5 => *v = json!({ r.pick(FIELDS).to_string(): v.take() }),
        6 => {
            if let Value::Array(a) = v {
                let extra = *r.pick(&[0usize, 1, 100, 5000]);
                // Repeat small elements only, so the body stays within a few MB.
                if let Some(first) = a.first().cloned().filter(|f| f.to_string().len() < 200) {
                    a.extend(std::iter::repeat_n(first, extra));
                } else {
                    a.push(random_value(r, 2));
                }
            } else {
                *v = json!(random_string(r));
            }
        }
        _ => {
            if let Value::String(s) = v {
                *s = mutate_text(r, s);
            } else {
                *v = random_scalar(r);
            }
        }
    }
}

fn mutate_text(r: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..1 + r.below(3) {
        let at = r.below(chars.len() + 1);
        match r.below(4) {
            0 if !chars.is_empty() => {
                chars.remove(at.min(chars.len() - 1));
            }
            1 => chars.insert(at, *r.pick(&['*', '%', '\'', '"', '\\', '\0', '\u{fffd}', '.', ' ', '(', ')', ','])),
            2 => chars.truncate(at),
            _ => chars.insert(at, char::from_u32(r.int(1, 0x10FFFF) as u32).unwrap_or('?')),
        }
    }
    chars.into_iter().collect()
}

/// Byte-level damage: flips, random bytes (often not UTF-8), cuts, splices of JSON tokens.
fn mutate_bytes(r: &mut Rng, b: &mut Vec<u8>) {
    const TOKENS: &[&[u8]] = &[b"{", b"}", b"[", b"]", b"\"", b"\\", b"\\u", b"\\ud800", b"\\udc00\\ud800", b"1e999", b"-", b",", b":", b"null", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"/*", b"NaN", b"Infinity"];
    for _ in 0..1 + r.below(6) {
        let at = r.below(b.len() + 1);
        match r.below(7) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << r.below(8);
            }
            1 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = r.next() as u8;
            }
            2 => {
                let t = r.pick(TOKENS);
                b.splice(at..at, t.iter().copied());
            }
            3 => {
                let end = (at + r.below(16)).min(b.len());
                b.drain(at..end);
            }
            4 => b.truncate(at),
            5 if !b.is_empty() => {
                let end = (at + r.below(32)).min(b.len());
                let chunk = b[at.min(end)..end].to_vec();
                b.splice(at..at, chunk);
            }
            _ => {
                let junk: Vec<u8> = (0..1 + r.below(8)).map(|_| r.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
}

fn invalid_utf8(r: &mut Rng, fx: &Fixture) -> Vec<u8> {
    const BAD: &[&[u8]] = &[b"\xff", b"\xfe\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"];
    if r.chance(20) {
        return (0..r.below(512)).map(|_| r.next() as u8).collect();
    }
    let (_, v) = operation_body(r, fx);
    let mut b = render(&v);
    // Inside a string literal where possible (the parser has to validate it there).
    let quotes: Vec<usize> = b.iter().enumerate().filter(|(_, &c)| c == b'"').map(|(i, _)| i + 1).collect();
    let at = if quotes.is_empty() { r.below(b.len() + 1) } else { *r.pick(&quotes) };
    let bad = r.pick(BAD);
    b.splice(at..at, bad.iter().copied());
    b
}

fn deep_nesting(r: &mut Rng) -> (String, Vec<u8>) {
    let depth = *r.pick(&[60usize, 127, 128, 129, 200, 1000, 100_000]);
    let (open, close): (&[u8], &[u8]) = if r.chance(50) { (b"[", b"]") } else { (b"{\"a\":", b"}") };
    let mut nested = open.repeat(depth);
    nested.extend_from_slice(b"1");
    if r.chance(80) {
        nested.extend(close.repeat(depth));
    }
    let (field, op) = *r.pick(&[("value", "search_by_value"), ("records", "insert"), ("conditions", "search_by_conditions"), ("permission", "add_role"), ("x", "describe_all")]);
    let mut body = format!("{{\"operation\":\"{op}\",\"database\":\"dev\",\"table\":\"dog\",\"attribute\":\"name\",\"role\":\"fz\",\"get_attributes\":[\"id\"],\"{field}\":").into_bytes();
    body.extend(nested);
    body.extend_from_slice(b"}");
    if r.chance(20) {
        // Deep condition groups: valid JSON, nested past the host's condition depth limit.
        let mut c = json!({"attribute": "age", "comparator": "equals", "value": 1});
        for _ in 0..depth.min(120) {
            c = json!({"operator": "and", "conditions": [c]});
        }
        return ("deep condition groups".into(), render(&json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"], "conditions": [c]})));
    }
    (format!("{op} nested {depth} deep"), body)
}

fn table(r: &mut Rng) -> (&'static str, &'static str) {
    *r.pick(&[("dev", "dog"), ("dev", "dog"), ("dev", "dog"), ("dev", "scratch"), ("dev", "nosuch"), ("nosuch", "dog"), ("system", "hdb_user")])
}

/// A name only the fuzzer's create/drop operations use.
fn scratch_table(r: &mut Rng) -> String {
    format!("fz_t{}", r.below(5))
}

fn records(r: &mut Rng) -> Value {
    let n = *r.pick(&[0usize, 1, 1, 2, 5, 20, 200]);
    Value::Array(
        (0..n)
            .map(|_| {
                let mut rec = Map::new();
                if r.chance(90) {
                    let id = if r.chance(80) { json!(r.int(0, 400)) } else { random_scalar(r) };
                    rec.insert("id".into(), id);
                }
                for _ in 0..r.below(5) {
                    let key = if r.chance(80) { r.pick(ATTRS).to_string() } else { random_string(r) };
                    rec.insert(key, if r.chance(70) { random_scalar(r) } else { random_value(r, 3) });
                }
                Value::Object(rec)
            })
            .collect(),
    )
}

fn get_attributes(r: &mut Rng) -> Value {
    match r.below(6) {
        0 => json!(["*"]),
        1 => json!(["id"]),
        2 => Value::Array((0..1 + r.below(4)).map(|_| json!(r.pick(ATTRS))).collect()),
        _ => json!(["id", "name", "age"]),
    }
}

fn search_value(r: &mut Rng) -> Value {
    match r.below(8) {
        0 => json!(format!("dog-{}*", r.below(30))),
        1 => json!("*"),
        2 => json!(r.int(0, 20)),
        3 => json!([r.int(0, 10), r.int(5, 20)]),
        4 => json!(*r.pick(&["Beagle", "Pug", "*ea*", "*e", "B*"])),
        _ => random_scalar(r),
    }
}

const BUDGET: usize = 3000;

/// A condition tree; `budget` caps the number of nodes (wide groups nested would otherwise
/// multiply out).
fn condition(r: &mut Rng, depth: usize, budget: &mut usize) -> Value {
    *budget = budget.saturating_sub(1);
    if depth == 0 || *budget == 0 || r.chance(55) {
        // Past the first few nodes, only short values: a wide tree of long strings would be
        // a test of the body limit, not of the search.
        let v = if *budget + 10 < BUDGET { json!(r.pick(STRINGS)) } else { search_value(r) };
        let (a, c) = (r.pick(ATTRS).to_string(), r.pick(COMPARATORS).to_string());
        return if r.chance(80) {
            json!({"attribute": a, "comparator": c, "value": v})
        } else {
            json!({"search_attribute": a, "search_type": c, "search_value": v})
        };
    }
    let width = if r.chance(5) { *r.pick(&[100usize, 1000, 3000]) } else { r.below(5) };
    let width = width.min(*budget);
    json!({"operator": *r.pick(&["and", "or", "and", "or", "not", "AND", ""]), "conditions": (0..width).map(|_| condition(r, depth - 1, budget)).collect::<Vec<_>>()})
}

fn sort(r: &mut Rng, depth: usize) -> Value {
    let mut s = json!({"attribute": r.pick(ATTRS), "descending": r.chance(50)});
    if depth > 0 && r.chance(40) {
        s["next"] = sort(r, depth - 1);
    }
    s
}

fn conditions_body(r: &mut Rng, deep: bool) -> Value {
    let (db, t) = table(r);
    let depth = if deep { r.below(8) } else { 2 };
    let mut budget = BUDGET;
    let conditions: Vec<Value> = (0..1 + r.below(4)).map(|_| condition(r, depth, &mut budget)).collect();
    let mut v = json!({"operation": "search_by_conditions", "database": db, "table": t, "get_attributes": get_attributes(r),
                       "operator": *r.pick(&["and", "or"]), "conditions": conditions});
    if r.chance(40) {
        v["sort"] = sort(r, 3);
    }
    if r.chance(40) {
        v["offset"] = json!(*r.pick(&[0i64, 1, 5, 199, 1000, -1, i64::MAX]));
    }
    if r.chance(40) {
        v["limit"] = json!(*r.pick(&[0i64, 1, 10, 1000, -1, i64::MAX]));
    }
    v
}

fn permission(r: &mut Rng) -> Value {
    let flags = |r: &mut Rng| json!({"read": r.chance(50), "insert": r.chance(50), "update": r.chance(50), "delete": r.chance(50),
        "attribute_permissions": (0..r.below(3)).map(|_| json!({"attribute_name": r.pick(ATTRS), "read": r.chance(50), "insert": r.chance(50), "update": r.chance(50)})).collect::<Vec<_>>()});
    let mut p = json!({"super_user": false, "dev": {"tables": {"dog": flags(r), "scratch": flags(r)}}});
    if r.chance(10) {
        p["nosuchdb"] = json!({"tables": {"x": flags(r)}});
    }
    if r.chance(10) {
        p["super_user"] = json!(true);
    }
    p
}

fn iso_date(r: &mut Rng) -> Value {
    match r.below(5) {
        0 => json!(r.int(-10_000_000_000_000, 10_000_000_000_000)),
        1 => json!(random_string(r)),
        _ => json!(format!("{:04}-{:02}-{:02}T{:02}:00:00Z", r.int(1900, 2100), r.int(0, 13), r.int(0, 32), r.int(0, 25))),
    }
}

/// A plausible body for one operation (which the caller then often damages).
fn operation_body(r: &mut Rng, fx: &Fixture) -> (String, Value) {
    // User and role changes are rarer: each one empties the server's login cache.
    let op = if r.chance(5) { *r.pick(USER_OPERATIONS) } else { *r.pick(OPERATIONS) };
    let (db, t) = table(r);
    let v = match op {
        "insert" | "update" | "upsert" => json!({"operation": op, "database": db, "table": t, "records": records(r)}),
        "delete" => {
            let t = if r.chance(70) { "scratch" } else { t };
            json!({"operation": op, "database": db, "table": t, *r.pick(&["hash_values", "ids"]): (0..r.below(5)).map(|_| json!(r.int(0, 300))).collect::<Vec<_>>()})
        }
        "search_by_hash" | "search_by_id" => json!({"operation": op, "database": db, "table": t, *r.pick(&["hash_values", "ids"]): (0..r.below(8)).map(|_| if r.chance(80) { json!(r.int(-2, 250)) } else { random_scalar(r) }).collect::<Vec<_>>(), "get_attributes": get_attributes(r)}),
        "search_by_value" => {
            let mut v = json!({"operation": op, "database": db, "table": t, "attribute": r.pick(ATTRS), "value": search_value(r), "get_attributes": get_attributes(r)});
            if r.chance(30) {
                v["sort"] = sort(r, 2);
                v["limit"] = json!(r.int(-1, 50));
                v["offset"] = json!(r.int(-1, 300));
            }
            v
        }
        "search_by_conditions" => conditions_body(r, false),
        "sql" => json!({"operation": op, "sql": sql_statement(r)}),
        "describe_all" | "get_configuration" | "list_users" | "list_roles" | "user_info" | "list_certificates" | "list_operations" => json!({"operation": op}),
        "describe_database" | "describe_schema" => json!({"operation": op, *r.pick(&["database", "schema"]): db}),
        "describe_table" => json!({"operation": op, "database": db, "table": t}),
        "create_database" | "create_schema" | "drop_database" | "drop_schema" => json!({"operation": op, *r.pick(&["database", "schema"]): format!("fuzzdb{}", r.below(3))}),
        "create_table" => json!({"operation": op, "database": *r.pick(&["dev", "fuzzdb0", "fuzzdb1"]), "table": scratch_table(r), *r.pick(&["primary_key", "hash_attribute"]): *r.pick(&["id", "name", "x"])}),
        "drop_table" => json!({"operation": op, "database": *r.pick(&["dev", "fuzzdb0", "fuzzdb1"]), "table": scratch_table(r)}),
        // Not applied before a restart, and the fuzzer never restarts.
        "set_configuration" => json!({"operation": op, *r.pick(&["logging_level", "operationsApi_limits_callTimeout", "storage_writeAsync", "nosuch_key", "logging_rotation_maxSize"]): random_scalar(r)}),
        "system_information" => json!({"operation": op, "attributes": (0..r.below(4)).map(|_| json!(r.pick(&["time", "cpu", "memory", "disk", "network", "harperdb_processes", "table_size", "metrics", "threads", "system", "bogus"]))).collect::<Vec<_>>()}),
        "get_job" => {
            let known = fx.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let id = if !known.is_empty() && r.chance(60) { json!(r.pick(&known)) } else { json!(random_string(r)) };
            json!({"operation": op, "id": id})
        }
        "search_jobs_by_start_date" => json!({"operation": op, "from_date": iso_date(r), "to_date": iso_date(r)}),
        "export_local" => {
            let search = if r.chance(50) {
                json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "id", "value": "*", "get_attributes": ["*"]})
            } else {
                json!({"operation": "sql", "sql": sql_select(r)})
            };
            json!({"operation": op, "format": *r.pick(&["json", "csv", "xml"]), "path": fx.export_dir, "filename": format!("f{}", r.below(4)), "search_operation": search})
        }
        "delete_records_before" => json!({"operation": op, "database": "dev", "table": "scratch", "date": iso_date(r)}),
        "add_user" | "alter_user" => json!({"operation": op, "username": format!("fuzz_u{}", r.below(4)), "password": random_string(r), "role": *r.pick(&["fuzz_role", "fuzz_reader_role", "nosuch"]), "active": r.chance(80)}),
        "drop_user" => json!({"operation": op, "username": format!("fuzz_u{}", r.below(4))}),
        "add_role" => json!({"operation": op, "role": format!("fuzz_r{}", r.below(4)), "id": format!("fuzz_r{}", r.below(4)), "permission": permission(r)}),
        "alter_role" => json!({"operation": op, "id": *r.pick(&["fuzz_role", "fuzz_r0", "fuzz_r1", "nosuch"]), "role": format!("fuzz_r{}", r.below(4)), "permission": permission(r)}),
        "drop_role" => json!({"operation": op, "id": format!("fuzz_r{}", r.below(4))}),
        "create_authentication_tokens" => {
            if r.chance(50) {
                json!({"operation": op})
            } else {
                json!({"operation": op, "username": format!("fuzz_u{}", r.below(4)), "password": random_string(r)})
            }
        }
        "refresh_operation_token" => json!({"operation": op, "refresh_token": if r.chance(50) { fx.refresh_token.clone() } else { mutate_text(r, &fx.refresh_token) }}),
        "add_certificate" => json!({"operation": op, "name": format!("fz{}", r.below(4)), "certificate": format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----", random_string(r)), "is_authority": r.chance(50), "private_key": random_string(r)}),
        "remove_certificate" => json!({"operation": op, "name": format!("fz{}", r.below(4))}),
        _ => json!({"operation": op}),
    };
    (op.to_string(), v)
}

// ---------------------------------------------------------------------------------------------
// SQL from a grammar

fn sql_table(r: &mut Rng) -> &'static str {
    *r.pick(&["dev.dog", "dev.dog", "dev.dog", "dev.scratch", "`dev`.`dog`", "dog", "nosuch.x", "system.hdb_user", "dev.dog d", "dev.dog AS d"])
}

fn sql_write_table(r: &mut Rng) -> &'static str {
    *r.pick(&["dev.scratch", "dev.scratch", "dev.scratch", "dev.dog", "nosuch.x", "system.hdb_user"])
}

fn sql_col(r: &mut Rng) -> String {
    match r.below(10) {
        0 => format!("`{}`", r.pick(ATTRS)),
        1 => format!("d.{}", r.pick(ATTRS)),
        2 => r.pick(&["\"name\"", "nosuch", "*", "1", "NULL"]).to_string(),
        _ => r.pick(ATTRS).to_string(),
    }
}

fn sql_literal(r: &mut Rng) -> String {
    match r.below(12) {
        0..=2 => r.int(-5, 250).to_string(),
        3 => format!("{}.{}", r.int(-100, 100), r.below(1000)),
        4 => format!("'dog-{}'", r.below(250)),
        5 => format!("'{}'", random_string(r).replace('\'', "''")),
        6 => r.pick(&["NULL", "TRUE", "FALSE", "'Beagle'", "'Pug'", "''"]).to_string(),
        7 => RAW_NUMBERS[r.below(RAW_NUMBERS.len())].to_string(),
        8 => "9".repeat(*r.pick(&[20usize, 400, 5000])),
        9 => format!("\"{}\"", r.pick(STRINGS).replace('"', "")),
        10 => format!("-{}", r.below(100)),
        _ => format!("'{}'", r.pick(&["%a%", "dog-1%", "_og%", "%", "\\%"])),
    }
}

fn sql_pred(r: &mut Rng, depth: usize) -> String {
    if depth == 0 || r.chance(50) {
        let c = sql_col(r);
        return match r.below(9) {
            0..=2 => format!("{c} {} {}", r.pick(&["=", "<>", "!=", "<", ">", "<=", ">=", "==", "<=>"]), sql_literal(r)),
            3 => format!("{c} {}IN ({})", if r.chance(30) { "NOT " } else { "" }, (0..1 + r.below(5)).map(|_| sql_literal(r)).collect::<Vec<_>>().join(", ")),
            4 => format!("{c} {}BETWEEN {} AND {}", if r.chance(30) { "NOT " } else { "" }, sql_literal(r), sql_literal(r)),
            5 => format!("{c} {}LIKE {}", if r.chance(30) { "NOT " } else { "" }, sql_literal(r)),
            6 => format!("{c} IS {}NULL", if r.chance(50) { "NOT " } else { "" }),
            7 => format!("{} = {}", sql_literal(r), sql_col(r)),
            _ => format!("{c} = {}", sql_col(r)),
        };
    }
    match r.below(4) {
        0 => format!("NOT {}", sql_pred(r, depth - 1)),
        1 => format!("({})", sql_pred(r, depth - 1)),
        2 => format!("{} AND {}", sql_pred(r, depth - 1), sql_pred(r, depth - 1)),
        _ => format!("{} OR {}", sql_pred(r, depth - 1), sql_pred(r, depth - 1)),
    }
}

fn sql_select(r: &mut Rng) -> String {
    let items = match r.below(5) {
        0 => "*".to_string(),
        1 => format!("{}({}){}", r.pick(&["COUNT", "SUM", "AVG", "MIN", "MAX", "count", "LOWER"]), if r.chance(30) { "*".to_string() } else { sql_col(r) }, if r.chance(50) { " AS c" } else { "" }),
        _ => (0..1 + r.below(4)).map(|_| if r.chance(20) { format!("{} AS a{}", sql_col(r), r.below(9)) } else { sql_col(r) }).collect::<Vec<_>>().join(", "),
    };
    let mut s = format!("SELECT {}{items} FROM {}", if r.chance(10) { "DISTINCT " } else { "" }, sql_table(r));
    if r.chance(60) {
        s += &format!(" WHERE {}", sql_pred(r, 4));
    }
    if r.chance(15) {
        s += &format!(" GROUP BY {}", sql_col(r));
    }
    if r.chance(30) {
        s += &format!(" ORDER BY {}", (0..1 + r.below(3)).map(|_| format!("{}{}", sql_col(r), r.pick(&["", " ASC", " DESC"]))).collect::<Vec<_>>().join(", "));
    }
    if r.chance(30) {
        s += &format!(" LIMIT {}", r.pick(&["0", "1", "10", "1000", "-1", "18446744073709551616", "1e3", "'5'"]));
        if r.chance(50) {
            s += &format!(" OFFSET {}", r.pick(&["0", "1", "150", "1000000", "-1", "99999999999999999999"]));
        }
    }
    s
}

fn sql_statement(r: &mut Rng) -> String {
    match r.below(10) {
        0..=5 => sql_select(r),
        6 => {
            let cols: Vec<String> = (0..1 + r.below(4)).map(|_| r.pick(ATTRS).to_string()).collect();
            let rows: Vec<String> = (0..1 + r.below(3)).map(|_| format!("({})", cols.iter().map(|_| sql_literal(r)).collect::<Vec<_>>().join(", "))).collect();
            format!("INSERT INTO {} ({}) VALUES {}", sql_write_table(r), cols.join(", "), rows.join(", "))
        }
        7 => {
            let sets: Vec<String> = (0..1 + r.below(3)).map(|_| format!("{} = {}", r.pick(ATTRS), sql_literal(r))).collect();
            format!("UPDATE {} SET {}{}", sql_write_table(r), sets.join(", "), if r.chance(80) { format!(" WHERE {}", sql_pred(r, 3)) } else { String::new() })
        }
        8 => format!("DELETE FROM {}{}", sql_write_table(r), if r.chance(85) { format!(" WHERE {}", sql_pred(r, 3)) } else { String::new() }),
        _ => r.pick(&[
            "SELECT", "SELECT * FROM", "SELECT * FROM dev.dog; DROP TABLE dev.dog", "DROP TABLE dev.dog_nosuch", "CREATE TABLE x (a int)",
            "SELECT * FROM dev.dog JOIN dev.scratch ON dog.id = scratch.id", "SELECT * FROM (SELECT * FROM dev.dog)",
            "SELECT * FROM dev.dog WHERE id IN (SELECT id FROM dev.scratch)", "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT * FROM dev.dog UNION SELECT * FROM dev.scratch", "", ";", "--", "/*", "SELECT 1", "EXPLAIN SELECT * FROM dev.dog",
        ])
        .to_string(),
    }
}

/// Token-level damage to a statement: drop, repeat, swap or insert a token, or deep parentheses.
fn mutate_sql(r: &mut Rng, sql: &str) -> String {
    let mut tokens: Vec<String> = sql.split(' ').map(str::to_string).collect();
    match r.below(6) {
        0 if tokens.len() > 1 => {
            let i = r.below(tokens.len());
            tokens.remove(i);
        }
        1 => {
            let i = r.below(tokens.len());
            let t = tokens[i].clone();
            tokens.insert(i, t);
        }
        2 if tokens.len() > 1 => {
            let (i, j) = (r.below(tokens.len()), r.below(tokens.len()));
            tokens.swap(i, j);
        }
        3 => {
            let i = r.below(tokens.len() + 1);
            tokens.insert(i, r.pick(&["SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "(", ")", ",", "'", "\"", "`", "*", ";", "NULL", "LIMIT", "ORDER", "BY", "--", "/*", "\\"]).to_string());
        }
        4 => {
            let depth = *r.pick(&[10usize, 49, 50, 51, 200, 5000]);
            return format!("SELECT * FROM dev.dog WHERE {}id = 1{}", "(".repeat(depth), ")".repeat(depth));
        }
        _ => return mutate_text(r, sql),
    }
    tokens.join(" ")
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over one kept-alive connection per client

enum Outcome {
    Answer { status: u16, body: Vec<u8> },
    Failed(String),
    TimedOut,
}

impl Outcome {
    fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answer { status, .. } => Some(*status),
            _ => None,
        }
    }
    fn describe(&self) -> String {
        match self {
            Outcome::Answer { status, body } => format!("{status} {}", shorten(body, 300)),
            Outcome::Failed(e) => format!("connection error: {e}"),
            Outcome::TimedOut => format!("no answer within {} s", HANG.as_secs()),
        }
    }
}

/// A raw HTTP/1.1 client over a TcpStream, not an HTTP crate: the fuzzer must send malformed
/// bytes (broken framing, bad headers, truncated bodies) that a well-behaved client refuses to write.
struct Client {
    port: u16,
    conn: Option<TcpStream>,
}

/// Why one attempt failed: `Idle` when a reused connection gave no byte back (the server
/// closed it while idle; any HTTP client retries that once on a new connection).
enum Attempt {
    Idle(String),
    Broken(String),
    TimedOut,
}

impl Client {
    fn new(port: u16) -> Self {
        Client { port, conn: None }
    }

    fn call(&mut self, req: &Request) -> Outcome {
        let deadline = Instant::now() + HANG;
        let reused = self.conn.is_some();
        let first = self.attempt(req, deadline, reused);
        let result = match first {
            Err(Attempt::Idle(_)) if reused => {
                self.conn = None;
                self.attempt(req, deadline, false)
            }
            other => other,
        };
        match result {
            Ok((status, body, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Outcome::Answer { status, body }
            }
            Err(e) => {
                self.conn = None;
                match e {
                    Attempt::TimedOut => Outcome::TimedOut,
                    Attempt::Idle(e) | Attempt::Broken(e) => Outcome::Failed(e),
                }
            }
        }
    }

    fn attempt(&mut self, req: &Request, deadline: Instant, reused: bool) -> Result<(u16, Vec<u8>, bool), Attempt> {
        if self.conn.is_none() {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
            let stream = TcpStream::connect_timeout(&addr, HANG).map_err(|e| Attempt::Broken(format!("connect: {e}")))?;
            let _ = stream.set_nodelay(true);
            self.conn = Some(stream);
        }
        let Some(stream) = self.conn.as_mut() else { return Err(Attempt::Broken("no connection".into())) };
        let mut head = format!("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", req.body.len());
        if let Some(ct) = &req.content_type {
            head += &format!("Content-Type: {ct}\r\n");
        }
        if let Some(a) = &req.auth {
            head += &format!("Authorization: {a}\r\n");
        }
        head += "\r\n";
        let _ = stream.set_write_timeout(Some(HANG));
        let mut message = head.into_bytes();
        message.extend_from_slice(&req.body);
        // A write error is not final: the server may have answered (e.g. 413) and closed
        // before reading everything; the answer is what counts.
        let write_error = stream.write_all(&message).err();
        let mut buf: Vec<u8> = Vec::new();
        let fail = |buf: &Vec<u8>, what: String| {
            if buf.is_empty() && reused { Attempt::Idle(what) } else { Attempt::Broken(what) }
        };
        let read_more = |stream: &mut TcpStream, buf: &mut Vec<u8>| -> Result<bool, Attempt> {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Attempt::TimedOut);
            }
            let _ = stream.set_read_timeout(Some(left));
            let mut chunk = [0u8; 64 << 10];
            match stream.read(&mut chunk) {
                Ok(0) => Ok(false),
                Ok(k) => {
                    buf.extend_from_slice(&chunk[..k]);
                    Ok(true)
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Err(Attempt::TimedOut),
                Err(e) => Err(fail(buf, format!("read: {e}{}", write_error.as_ref().map(|w| format!(" (write: {w})")).unwrap_or_default()))),
            }
        };
        let header_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 1 << 20 {
                return Err(Attempt::Broken("response headers over 1 MiB".into()));
            }
            if !read_more(stream, &mut buf)? {
                return Err(fail(&buf, format!("closed without a complete response ({} bytes)", buf.len())));
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| Attempt::Broken(format!("bad status line: {}", head.lines().next().unwrap_or_default())))?;
        let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
        let mut keep = header("connection:").is_none_or(|v| v != "close");
        let mut body = buf[header_end..].to_vec();
        if let Some(len) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
            while body.len() < len {
                if !read_more(stream, &mut body)? {
                    return Err(Attempt::Broken("closed mid-body".into()));
                }
            }
            body.truncate(len);
        } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
            let mut raw = body;
            let mut out = Vec::new();
            let mut pos = 0;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&raw[pos..], b"\r\n") {
                        break pos + i;
                    }
                    if !read_more(stream, &mut raw)? {
                        return Err(Attempt::Broken("closed mid-chunk".into()));
                    }
                };
                let size_text = String::from_utf8_lossy(&raw[pos..line_end]).to_string();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| Attempt::Broken(format!("bad chunk size {size_text:?}")))?;
                pos = line_end + 2;
                if size == 0 {
                    // Trailers end with an empty line.
                    while find(&raw[pos..], b"\r\n").is_none() {
                        if !read_more(stream, &mut raw)? {
                            break;
                        }
                    }
                    break;
                }
                while raw.len() < pos + size + 2 {
                    if !read_more(stream, &mut raw)? {
                        return Err(Attempt::Broken("closed mid-chunk".into()));
                    }
                }
                if out.len() < 64 << 20 {
                    out.extend_from_slice(&raw[pos..pos + size]);
                }
                pos += size + 2;
            }
            body = out;
        } else {
            while read_more(stream, &mut body)? {}
            keep = false;
        }
        if write_error.is_some() {
            keep = false;
        }
        Ok((status, body, keep))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn shorten(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    let text: String = text.chars().map(|c| if c.is_control() && c != ' ' { '·' } else { c }).collect();
    if bytes.len() > max { format!("{text}… ({} bytes)", bytes.len()) } else { text }
}

/// The id a 5xx answer names, to find its detail in the server log.
fn request_id(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("(request id ")? + "(request id ".len();
    let end = text[start..].find(')')? + start;
    Some(text[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_reproducible_from_seed_and_index() {
        let fx = Fixture { export_dir: "/x".into(), operation_token: "t".into(), refresh_token: "r".into(), reader_token: "rt".into(), jobs: Mutex::new(Vec::new()) };
        for i in 0..500 {
            let (la, a) = generate(&mut Rng::new(7, i), &fx);
            let (lb, b) = generate(&mut Rng::new(7, i), &fx);
            assert_eq!((la, a.body), (lb, b.body));
        }
    }

    #[test]
    fn bodies_stay_small_enough_to_send_quickly() {
        let fx = Fixture { export_dir: "/x".into(), operation_token: "t".into(), refresh_token: "r".into(), reader_token: "rt".into(), jobs: Mutex::new(Vec::new()) };
        let sizes: Vec<usize> = (0..3000).map(|i| generate(&mut Rng::new(11, i), &fx).1.body.len()).collect();
        let (max, total) = (sizes.iter().max().copied().unwrap_or(0), sizes.iter().sum::<usize>());
        assert!(max < 4 << 20, "largest body {max} bytes");
        assert!(total / sizes.len() < 32 << 10, "mean body {} bytes", total / sizes.len());
    }

    #[test]
    fn raw_numbers_are_spliced_in() {
        let v = json!({"a": "\u{1}RAW0\u{1}", "b": ["\u{1}RAW3\u{1}", "\u{1}DIG12\u{1}"]});
        assert_eq!(String::from_utf8(render(&v)).expect("utf8"), r#"{"a":1e400,"b":[123456789012345678901234567890,112345678901]}"#);
    }
}
