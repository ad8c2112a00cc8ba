//! Jobs over HTTP (harper-behaviour.md §4, §5; deviations.md): `export_local` and
//! `export_to_s3` write HarperDB's exact file formats, `delete_records_before` deletes by
//! creation time and keeps the indexes consistent, `get_job` / `search_jobs_by_start_date`
//! show the job records, `restart_service` runs as a job, a job cut off by `restart` ends in
//! ERROR, and bad input is refused up front (400, no job, nothing written).
//!
//! `export_to_s3` talks to the real S3 server `cargo xtask test` starts on loopback
//! (`OPSHOST_TEST_S3_ENDPOINT`, `_ACCESS_KEY`, `_SECRET_KEY`, and `_ROOT`: the folder it stores
//! in, where a bucket is a folder and an object `<bucket>/<key>` a file).

use opshost_tests::{err, ok, Server, USER};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Helpers

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Epoch milliseconds as an ISO 8601 UTC timestamp (`2026-11-27T03:49:21.123Z`), like
/// JavaScript's `Date.prototype.toISOString`.
fn iso(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// Starts a job: 200 `{"message":"Starting job with id <id>","job_id":"<id>"}`; returns the id.
fn start_job(server: &Server, body: Value) -> String {
    let resp = ok(server, body);
    let id = resp["job_id"].as_str().unwrap_or_else(|| panic!("no job_id: {resp}")).to_string();
    assert!(is_uuid(&id), "job id {id}");
    assert_eq!(resp, json!({"message": format!("Starting job with id {id}"), "job_id": id}));
    id
}

/// `get_job`: always an array.
fn get_job(server: &Server, id: &str) -> Vec<Value> {
    let resp = ok(server, json!({"operation": "get_job", "id": id}));
    resp.as_array().unwrap_or_else(|| panic!("get_job answers an array: {resp}")).clone()
}

/// Polls `get_job` until the job is no longer IN_PROGRESS (30 s at most); returns the job.
fn wait_job(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = get_job(server, id);
        assert_eq!(jobs.len(), 1, "get_job {id}: {jobs:?}");
        let job = jobs[0].clone();
        if job["status"] != "IN_PROGRESS" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still IN_PROGRESS after 30 s: {job}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

/// A finished job's shape: key order, status, message, type, user, times.
fn assert_finished(job: &Value, id: &str, job_type: &str, status: &str) {
    let expected_keys: &[&str] = if job.get("result").is_some() {
        &["id", "result", "status", "message", "end_datetime", "type", "start_datetime", "created_datetime", "user"]
    } else {
        &["id", "status", "message", "end_datetime", "type", "start_datetime", "created_datetime", "user"]
    };
    assert_eq!(keys(job), expected_keys, "{job}");
    assert_eq!((job["id"].as_str(), job["type"].as_str(), job["status"].as_str(), job["user"].as_str()), (Some(id), Some(job_type), Some(status), Some("admin")), "{job}");
    let t = |k: &str| job[k].as_u64().unwrap_or_else(|| panic!("{k} is epoch ms: {job}"));
    assert!(t("created_datetime") > 1_700_000_000_000 && t("created_datetime") <= t("start_datetime") && t("start_datetime") <= t("end_datetime"), "{job}");
    assert!(job["message"].as_str().is_some_and(|m| !m.is_empty()), "{job}");
}

/// The job finished COMPLETE with `Successfully completed job: <id>`.
fn assert_complete(job: &Value, id: &str, job_type: &str) {
    assert_finished(job, id, job_type, "COMPLETE");
    assert_eq!(job["message"], format!("Successfully completed job: {id}"), "{job}");
}

/// Every job the admin can see (search_jobs_by_start_date over all time).
fn job_count(server: &Server) -> usize {
    let all = ok(server, json!({"operation": "search_jobs_by_start_date", "from_date": "2000-01-01T00:00:00.000Z", "to_date": iso(now_ms() + 86_400_000)}));
    all.as_array().map(Vec::len).unwrap_or_else(|| panic!("an array: {all}"))
}

/// A fresh folder inside `<rootPath>/exports` (an export root by default).
pub(crate) fn export_dir(server: &Server, name: &str) -> PathBuf {
    let dir = server.root().join("exports").join(name);
    std::fs::create_dir_all(&dir).expect("export dir");
    dir.canonicalize().expect("canonical export dir")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))).expect("utf-8")
}

/// HarperDB's JSON export of `rows`: one compact array, keys in the rows' order.
pub(crate) fn harper_json(rows: &[Value]) -> String {
    serde_json::to_string(rows).expect("json")
}

/// HarperDB's (json2csv's) CSV export of `rows`: quoted header from the first row's keys,
/// strings quoted with `"` doubled, numbers and booleans bare, null/missing empty, objects and
/// arrays as quoted JSON, `\n` between lines, none at the end; no rows → empty.
pub(crate) fn harper_csv(rows: &[Value]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let Some(first) = rows.first() else { return String::new() };
    let columns: Vec<&str> = keys(first);
    let mut lines = vec![columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",")];
    for row in rows {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| match row.get(*c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(v @ (Value::Object(_) | Value::Array(_))) => quote(&v.to_string()),
                Some(v) => v.to_string(),
            })
            .collect();
        lines.push(fields.join(","));
    }
    lines.join("\n")
}

/// `exp.rec`: strings with quotes, commas, newlines, non-ASCII and an empty one; nulls;
/// integers; floats; booleans; nested objects and arrays; attributes missing from some records.
fn records_table(server: &Server, database: &str) {
    ok(server, json!({"operation": "create_table", "database": database, "table": "rec", "primary_key": "id"}));
    let resp = ok(server, json!({"operation": "insert", "database": database, "table": "rec", "records": [
        {"id": 1, "text": "say \"hi\", then\nleave", "int_v": 42, "float_v": 3.25, "flag": true, "maybe": null,
         "obj": {"a": 1, "b": [1, "x,y"]}, "arr": [1, "two", null], "only_some": "here"},
        {"id": 2, "text": "plain", "int_v": -7, "float_v": -0.5, "flag": false, "maybe": "m", "obj": {}, "arr": []},
        {"id": 3, "text": "café ✓ \"q\"", "int_v": 0, "float_v": 2.5, "flag": true, "maybe": "",
         "obj": {"nested": {"deep": true}}, "arr": [[1], [2]], "only_some": null},
        {"id": 4, "text": "007", "int_v": 100, "float_v": 0.125, "flag": false, "obj": null, "arr": null},
    ]}));
    assert_eq!(resp["message"], "inserted 4 of 4 records");
}

const ATTRS: [&str; 9] = ["id", "text", "int_v", "float_v", "flag", "maybe", "obj", "arr", "only_some"];

/// The four records with `ATTRS`, as HarperDB writes them (written out by hand).
const EXPECTED_JSON: &str = concat!(
    r#"[{"id":1,"text":"say \"hi\", then\nleave","int_v":42,"float_v":3.25,"flag":true,"maybe":null,"obj":{"a":1,"b":[1,"x,y"]},"arr":[1,"two",null],"only_some":"here"},"#,
    r#"{"id":2,"text":"plain","int_v":-7,"float_v":-0.5,"flag":false,"maybe":"m","obj":{},"arr":[],"only_some":null},"#,
    r#"{"id":3,"text":"café ✓ \"q\"","int_v":0,"float_v":2.5,"flag":true,"maybe":"","obj":{"nested":{"deep":true}},"arr":[[1],[2]],"only_some":null},"#,
    r#"{"id":4,"text":"007","int_v":100,"float_v":0.125,"flag":false,"maybe":null,"obj":null,"arr":null,"only_some":null}]"#,
);
const EXPECTED_CSV: &str = concat!(
    "\"id\",\"text\",\"int_v\",\"float_v\",\"flag\",\"maybe\",\"obj\",\"arr\",\"only_some\"\n",
    "1,\"say \"\"hi\"\", then\nleave\",42,3.25,true,,\"{\"\"a\"\":1,\"\"b\"\":[1,\"\"x,y\"\"]}\",\"[1,\"\"two\"\",null]\",\"here\"\n",
    "2,\"plain\",-7,-0.5,false,\"m\",\"{}\",\"[]\",\n",
    "3,\"café ✓ \"\"q\"\"\",0,2.5,true,\"\",\"{\"\"nested\"\":{\"\"deep\"\":true}}\",\"[[1],[2]]\",\n",
    "4,\"007\",100,0.125,false,,,,",
);

fn by_hash(database: &str, attrs: &[&str]) -> Value {
    json!({"operation": "search_by_hash", "database": database, "table": "rec", "hash_values": [1, 2, 3, 4], "get_attributes": attrs})
}

/// Runs `export_local`, waits for it and checks the job record; returns the file's text.
pub(crate) fn export_local(server: &Server, dir: &Path, format: &str, filename: &str, search: &Value) -> String {
    let id = start_job(server, json!({"operation": "export_local", "format": format, "path": dir.display().to_string(), "filename": filename, "search_operation": search}));
    let job = wait_job(server, &id);
    assert_complete(&job, &id, "export_local");
    let path = dir.join(format!("{filename}.{format}"));
    let label = if format == "json" { "JSON" } else { "CSV" };
    assert_eq!(job["result"], json!({"message": format!("Successfully exported {label} locally."), "path": path.display().to_string()}));
    read(&path)
}

// ---------------------------------------------------------------------------------------------
// export_local

#[test]
fn iso_dates_are_javascript_iso_strings() {
    assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso(1_795_736_087_111), "2026-11-26T23:34:47.111Z");
}

#[test]
fn the_hand_written_bytes_agree_with_the_generic_writers() {
    let rows = json!([
        {"id": 1, "text": "say \"hi\", then\nleave", "int_v": 42, "float_v": 3.25, "flag": true, "maybe": null, "obj": {"a": 1, "b": [1, "x,y"]}, "arr": [1, "two", null], "only_some": "here"},
        {"id": 2, "text": "plain", "int_v": -7, "float_v": -0.5, "flag": false, "maybe": "m", "obj": {}, "arr": [], "only_some": null},
        {"id": 3, "text": "café ✓ \"q\"", "int_v": 0, "float_v": 2.5, "flag": true, "maybe": "", "obj": {"nested": {"deep": true}}, "arr": [[1], [2]], "only_some": null},
        {"id": 4, "text": "007", "int_v": 100, "float_v": 0.125, "flag": false, "maybe": null, "obj": null, "arr": null, "only_some": null},
    ]);
    let rows = rows.as_array().expect("rows");
    assert_eq!(harper_json(rows), EXPECTED_JSON);
    assert_eq!(harper_csv(rows), EXPECTED_CSV);
    assert_eq!(harper_csv(&[]), "");
    assert_eq!(harper_json(&[]), "[]");
}

#[test]
fn export_local_writes_harpers_json_and_csv_byte_for_byte() {
    let server = Server::start();
    records_table(&server, "exp");
    let dir = export_dir(&server, "formats");

    // Explicit attributes: the expected bytes are written out by hand.
    assert_eq!(export_local(&server, &dir, "json", "hash", &by_hash("exp", &ATTRS)), EXPECTED_JSON);
    assert_eq!(export_local(&server, &dir, "csv", "hash", &by_hash("exp", &ATTRS)), EXPECTED_CSV);
    // The generic writers below agree with the hand-written bytes.
    let direct = ok(&server, by_hash("exp", &ATTRS));
    assert_eq!(harper_json(direct.as_array().expect("rows")), EXPECTED_JSON);
    assert_eq!(harper_csv(direct.as_array().expect("rows")), EXPECTED_CSV);

    // `*` through search_by_value's wildcard: primary key, the two timestamps, then every
    // attribute alphabetically (missing ones as null). Timestamps vary, so the expected bytes
    // are built from the same search run directly.
    let star = json!({"operation": "search_by_value", "database": "exp", "table": "rec", "attribute": "id", "value": "*", "get_attributes": ["*"]});
    let rows = ok(&server, star.clone());
    let rows = rows.as_array().expect("rows").clone();
    assert_eq!(rows.len(), 4);
    let columns = ["id", "__createdtime__", "__updatedtime__", "arr", "flag", "float_v", "int_v", "maybe", "obj", "only_some", "text"];
    for row in &rows {
        assert_eq!(keys(row), columns, "{row}");
    }
    assert_eq!(export_local(&server, &dir, "json", "star", &star), harper_json(&rows));
    let csv = export_local(&server, &dir, "csv", "star", &star);
    assert_eq!(csv, harper_csv(&rows));
    assert!(csv.starts_with("\"id\",\"__createdtime__\",\"__updatedtime__\",\"arr\",\"flag\",\"float_v\",\"int_v\",\"maybe\",\"obj\",\"only_some\",\"text\"\n"), "{csv}");
    assert!(!csv.ends_with('\n'));

    // search_by_hash with `*`.
    let rows = ok(&server, by_hash("exp", &["*"]));
    assert_eq!(export_local(&server, &dir, "json", "hash_star", &by_hash("exp", &["*"])), harper_json(rows.as_array().expect("rows")));

    // search_by_conditions.
    let conditions = json!({"operation": "search_by_conditions", "database": "exp", "table": "rec", "get_attributes": ["id", "text", "obj", "flag"],
                            "conditions": [{"search_attribute": "int_v", "search_type": "greater_than_equal", "search_value": 0}]});
    let rows = ok(&server, conditions.clone());
    let rows = rows.as_array().expect("rows").clone();
    let mut ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    ids.sort();
    assert_eq!(ids, [1, 3, 4]);
    assert_eq!(export_local(&server, &dir, "json", "conditions", &conditions), harper_json(&rows));
    assert_eq!(export_local(&server, &dir, "csv", "conditions", &conditions), harper_csv(&rows));

    // sql, explicit columns (hand-written) and `*`.
    let sql = json!({"operation": "sql", "sql": "SELECT id, text, int_v FROM exp.rec WHERE id < 3 ORDER BY id"});
    assert_eq!(export_local(&server, &dir, "json", "sql", &sql), r#"[{"id":1,"text":"say \"hi\", then\nleave","int_v":42},{"id":2,"text":"plain","int_v":-7}]"#);
    assert_eq!(export_local(&server, &dir, "csv", "sql", &sql), "\"id\",\"text\",\"int_v\"\n1,\"say \"\"hi\"\", then\nleave\",42\n2,\"plain\",-7");
    let sql_star = json!({"operation": "sql", "sql": "SELECT * FROM exp.rec ORDER BY id"});
    let rows = ok(&server, sql_star.clone());
    assert_eq!(rows.as_array().map(Vec::len), Some(4));
    assert_eq!(export_local(&server, &dir, "json", "sql_star", &sql_star), harper_json(rows.as_array().expect("rows")));
    assert_eq!(export_local(&server, &dir, "csv", "sql_star", &sql_star), harper_csv(rows.as_array().expect("rows")));

    // An empty result: `[]`, and a 0-byte CSV file (no header).
    let none = json!({"operation": "search_by_value", "database": "exp", "table": "rec", "attribute": "text", "value": "no such text", "get_attributes": ["*"]});
    assert_eq!(ok(&server, none.clone()), json!([]));
    assert_eq!(export_local(&server, &dir, "json", "empty", &none), "[]");
    assert_eq!(export_local(&server, &dir, "csv", "empty", &none), "");
    assert_eq!(std::fs::metadata(dir.join("empty.csv")).expect("empty.csv").len(), 0);

    // The same name again overwrites the file silently.
    assert_eq!(export_local(&server, &dir, "json", "empty", &by_hash("exp", &ATTRS)), EXPECTED_JSON);

    // Only the finished files are there (no temporary leftovers).
    let expected: Vec<String> = [
        "conditions.csv", "conditions.json", "empty.csv", "empty.json", "hash.csv", "hash.json", "hash_star.json",
        "sql.csv", "sql.json", "sql_star.csv", "sql_star.json", "star.csv", "star.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(files_in(&dir), expected);
}

#[test]
fn export_local_default_filename_and_trailing_slash() {
    let server = Server::start();
    records_table(&server, "exp");
    let search = by_hash("exp", &ATTRS);

    // Without `filename`: `<epoch ms>.<format>`.
    let dir = export_dir(&server, "default_name");
    let before = now_ms();
    let id = start_job(&server, json!({"operation": "export_local", "format": "json", "path": dir.display().to_string(), "search_operation": search}));
    let job = wait_job(&server, &id);
    let after = now_ms();
    assert_complete(&job, &id, "export_local");
    let files = files_in(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let stem = files[0].strip_suffix(".json").unwrap_or_else(|| panic!("a .json file: {files:?}"));
    let ms: u64 = stem.parse().unwrap_or_else(|_| panic!("epoch ms file name: {stem}"));
    assert!(stem.len() == 13 && (before..=after).contains(&ms), "{stem} not within {before}..={after}");
    assert_eq!(job["result"]["path"], dir.join(&files[0]).display().to_string());
    assert_eq!(read(&dir.join(&files[0])), EXPECTED_JSON);

    // A trailing `/` on the path is stripped.
    let dir = export_dir(&server, "slash");
    let id = start_job(&server, json!({"operation": "export_local", "format": "csv", "path": format!("{}/", dir.display()), "filename": "dogs", "search_operation": search}));
    let job = wait_job(&server, &id);
    assert_complete(&job, &id, "export_local");
    assert_eq!(job["result"], json!({"message": "Successfully exported CSV locally.", "path": dir.join("dogs.csv").display().to_string()}));
    assert_eq!(read(&dir.join("dogs.csv")), EXPECTED_CSV);
}

#[test]
fn export_local_bad_input_is_a_400_and_starts_no_job() {
    let server = Server::start();
    records_table(&server, "exp");
    let dir = export_dir(&server, "bad");
    // A link inside the export root that points out of it.
    std::os::unix::fs::symlink("/etc", dir.join("escape")).expect("symlink");
    let jobs_before = job_count(&server);
    let good = json!({"operation": "export_local", "format": "json", "path": dir.display().to_string(), "filename": "out", "search_operation": by_hash("exp", &ATTRS)});
    let with = |changes: Value| {
        let mut body = good.clone();
        for (k, v) in changes.as_object().expect("object") {
            if v.is_null() {
                body.as_object_mut().expect("object").remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let refused = |changes: Value| {
        let body = with(changes);
        let (status, text) = err(&server, body.clone());
        assert_eq!(status, 400, "{body} -> {text}");
        text
    };

    assert_eq!(refused(json!({"format": null})), "format missing");
    assert_eq!(refused(json!({"format": "xml"})), "format invalid. must be one of the following values: json, csv");
    assert_eq!(refused(json!({"format": "JSON"})), "format invalid. must be one of the following values: json, csv");
    assert_eq!(refused(json!({"path": null})), "path is missing.");
    let missing = dir.join("nope");
    assert_eq!(refused(json!({"path": missing.display().to_string()})), format!("path '{}' does not exist", missing.display()));
    refused(json!({"path": "relative/dir"}));
    // Outside the export roots: refused even though the folder exists.
    assert!(refused(json!({"path": "/etc"})).contains("'/etc'"));
    refused(json!({"path": format!("{}/../../../../../../../etc", dir.display())}));
    refused(json!({"path": dir.join("escape").display().to_string()}));
    // A file name may not leave the folder.
    for evil in ["a/b", "..", "../out", "x..y"] {
        refused(json!({"filename": evil}));
    }
    // search_operation: missing, not an object, unknown operation, unknown table, bad SQL.
    let missing_search = refused(json!({"search_operation": null}));
    assert!(
        ["'search_operation' is required", "Cannot read properties of undefined (reading 'operation')"].contains(&missing_search.as_str()),
        "{missing_search}"
    );
    assert_eq!(refused(json!({"search_operation": "SELECT 1"})), "There was an error when trying to choose an operation path");
    assert_eq!(
        refused(json!({"search_operation": {"operation": "describe_all"}})),
        "searchOperation.operation must be one of the following values: search_by_value, search_by_hash, sql, search_by_conditions"
    );
    let unknown_table = with(json!({"search_operation": {"operation": "search_by_hash", "database": "exp", "table": "nosuch", "hash_values": [1], "get_attributes": ["*"]}}));
    let (status, text) = err(&server, unknown_table);
    assert!((status == 400 || status == 404) && text == "Table 'exp.nosuch' does not exist", "{status} {text}");
    let unknown_sql_table = with(json!({"search_operation": {"operation": "sql", "sql": "SELECT * FROM exp.nosuch"}}));
    let (status, text) = err(&server, unknown_sql_table);
    assert!((status == 400 || status == 404) && text == "Table 'exp.nosuch' does not exist", "{status} {text}");
    refused(json!({"search_operation": {"operation": "sql", "sql": "SELEC nonsense FROM"}}));

    // Nothing was written anywhere, and no job was created.
    assert_eq!(files_in(&dir), ["escape"]);
    assert!(!Path::new("/etc/out.json").exists());
    assert_eq!(job_count(&server), jobs_before);
    // The good request itself works.
    let id = start_job(&server, good);
    assert_complete(&wait_job(&server, &id), &id, "export_local");
    assert_eq!(read(&dir.join("out.json")), EXPECTED_JSON);
}

// ---------------------------------------------------------------------------------------------
// export_to_s3

/// The loopback S3 server `cargo xtask test` starts.
struct S3 {
    endpoint: String,
    access_key: String,
    secret_key: String,
    root: PathBuf,
}

impl S3 {
    fn from_env() -> Option<S3> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var("OPSHOST_TEST_S3_ENDPOINT") else {
            eprintln!("note: OPSHOST_TEST_S3_ENDPOINT is not set (run through `cargo xtask test`); skipping the S3 upload checks");
            return None;
        };
        Some(S3 {
            endpoint,
            access_key: var("OPSHOST_TEST_S3_ACCESS_KEY").expect("OPSHOST_TEST_S3_ACCESS_KEY"),
            secret_key: var("OPSHOST_TEST_S3_SECRET_KEY").expect("OPSHOST_TEST_S3_SECRET_KEY"),
            root: PathBuf::from(var("OPSHOST_TEST_S3_ROOT").expect("OPSHOST_TEST_S3_ROOT")),
        })
    }

    /// A new, empty bucket (a folder in the server's root).
    fn bucket(&self, name: &str) -> String {
        let bucket = format!("opshost-{}-{name}", std::process::id());
        std::fs::create_dir_all(self.root.join(&bucket)).expect("bucket folder");
        bucket
    }

    fn target(&self, bucket: &str, key: &str) -> Value {
        json!({"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key, "bucket": bucket, "key": key,
               "region": "us-east-1", "endpoint": self.endpoint})
    }

    fn object(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

fn export_to_s3(server: &Server, format: &str, s3: Value, search: &Value) -> (String, Value) {
    let id = start_job(server, json!({"operation": "export_to_s3", "format": format, "s3": s3, "search_operation": search}));
    let job = wait_job(server, &id);
    (id, job)
}

#[test]
fn export_to_s3_uploads_harpers_formats_and_reports_store_errors() {
    let Some(s3) = S3::from_env() else { return };
    let server = Server::start();
    records_table(&server, "cloud");
    let bucket = s3.bucket("formats");
    let search = by_hash("cloud", &ATTRS);

    let (id, job) = export_to_s3(&server, "json", s3.target(&bucket, "exports/recs"), &search);
    assert_complete(&job, &id, "export_to_s3");
    assert_eq!(read(&s3.object(&bucket, "exports/recs.json")), EXPECTED_JSON);
    let (id, job) = export_to_s3(&server, "csv", s3.target(&bucket, "recs"), &search);
    assert_complete(&job, &id, "export_to_s3");
    assert_eq!(read(&s3.object(&bucket, "recs.csv")), EXPECTED_CSV);
    // Empty results: `[]` and a 0-byte CSV object.
    let none = json!({"operation": "search_by_value", "database": "cloud", "table": "rec", "attribute": "text", "value": "no such text", "get_attributes": ["*"]});
    let (id, job) = export_to_s3(&server, "json", s3.target(&bucket, "empty"), &none);
    assert_complete(&job, &id, "export_to_s3");
    assert_eq!(read(&s3.object(&bucket, "empty.json")), "[]");
    let (id, job) = export_to_s3(&server, "csv", s3.target(&bucket, "empty"), &none);
    assert_complete(&job, &id, "export_to_s3");
    assert_eq!(read(&s3.object(&bucket, "empty.csv")), "");

    // A wrong secret key: the store refuses the signature; the job says so without the secret.
    let wrong_secret = "wrong-secret-Zq81xPv";
    let mut target = s3.target(&bucket, "denied");
    target["aws_secret_access_key"] = json!(wrong_secret);
    let (id, job) = export_to_s3(&server, "json", target, &search);
    assert_finished(&job, &id, "export_to_s3", "ERROR");
    let message = job["message"].as_str().unwrap_or_default().to_string();
    let lower = message.to_lowercase();
    assert!(
        ["signature", "denied", "forbidden", "403", "credential", "permission"].iter().any(|w| lower.contains(w)),
        "the message should say the store refused the credentials: {message}"
    );
    assert!(!s3.object(&bucket, "denied.json").exists());
    // A bucket that does not exist.
    let missing_bucket = format!("opshost-{}-never-created", std::process::id());
    let (id, job) = export_to_s3(&server, "json", s3.target(&missing_bucket, "recs"), &search);
    assert_finished(&job, &id, "export_to_s3", "ERROR");
    assert!(job["message"].as_str().is_some_and(|m| m.to_lowercase().contains("bucket")), "{job}");

    // Neither secret is ever shown or logged.
    let everything = format!("{}{}", ok(&server, json!({"operation": "search_jobs_by_start_date", "from_date": "2000-01-01", "to_date": iso(now_ms() + 86_400_000)})), server.log());
    for secret in [wrong_secret, s3.secret_key.as_str()] {
        assert!(!everything.contains(secret), "a secret key leaked into a job record or the log");
    }
}

#[test]
fn export_to_s3_checks_its_fields_up_front_in_harpers_order() {
    let server = Server::start();
    records_table(&server, "cloud");
    let jobs_before = job_count(&server);
    let search = by_hash("cloud", &ATTRS);
    let refused = |body: Value| {
        let (status, text) = err(&server, body.clone());
        assert_eq!(status, 400, "{body} -> {text}");
        text
    };
    assert_eq!(refused(json!({"operation": "export_to_s3", "format": "json", "search_operation": search})), "S3 object is missing.");
    let mut s3 = json!({});
    for (field, value) in [("aws_access_key_id", "AK"), ("aws_secret_access_key", "SK"), ("bucket", "b"), ("key", "k"), ("region", "us-east-1")] {
        assert_eq!(refused(json!({"operation": "export_to_s3", "format": "json", "s3": s3, "search_operation": search})), format!("{field} is missing."));
        s3[field] = json!(value);
    }
    // Then export_local's checks.
    assert_eq!(refused(json!({"operation": "export_to_s3", "s3": s3, "search_operation": search})), "format missing");
    assert_eq!(refused(json!({"operation": "export_to_s3", "format": "xml", "s3": s3, "search_operation": search})), "format invalid. must be one of the following values: json, csv");
    assert_eq!(
        refused(json!({"operation": "export_to_s3", "format": "json", "s3": s3, "search_operation": {"operation": "insert"}})),
        "searchOperation.operation must be one of the following values: search_by_value, search_by_hash, sql, search_by_conditions"
    );
    let (status, text) = err(&server, json!({"operation": "export_to_s3", "format": "json", "s3": s3,
        "search_operation": {"operation": "search_by_value", "database": "cloud", "table": "nosuch", "attribute": "id", "value": "*", "get_attributes": ["*"]}}));
    assert!((status == 400 || status == 404) && text == "Table 'cloud.nosuch' does not exist", "{status} {text}");
    assert_eq!(job_count(&server), jobs_before);
}

// ---------------------------------------------------------------------------------------------
// delete_records_before

#[test]
fn delete_records_before_deletes_by_creation_time_and_keeps_indexes_consistent() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "del", "table": "ev", "primary_key": "id"}));
    let insert = |records: Value| ok(&server, json!({"operation": "insert", "database": "del", "table": "ev", "records": records}));
    insert(json!((1..=5).map(|i| json!({"id": i, "kind": "old", "n": i})).collect::<Vec<_>>()));
    std::thread::sleep(Duration::from_millis(25));
    insert(json!((6..=8).map(|i| json!({"id": i, "kind": "new", "n": i})).collect::<Vec<_>>()));
    // The cutoff from the server's own timestamps: after every old record, before every new one.
    let all = ok(&server, json!({"operation": "search_by_hash", "database": "del", "table": "ev", "hash_values": [1, 2, 3, 4, 5, 6, 7, 8], "get_attributes": ["id", "__createdtime__"]}));
    let created = |id: i64| all.as_array().expect("rows").iter().find(|r| r["id"] == id).and_then(|r| r["__createdtime__"].as_f64()).expect("created");
    let last_old = (1..=5).map(created).fold(f64::MIN, f64::max);
    let first_new = (6..=8).map(created).fold(f64::MAX, f64::min);
    let cutoff = last_old.floor() as u64 + 1;
    assert!((cutoff as f64) < first_new, "old {last_old}, new {first_new}");
    // Updated after the cutoff, still created before it: deleted too.
    ok(&server, json!({"operation": "update", "database": "del", "table": "ev", "records": [{"id": 1, "n": 100}]}));

    let jobs_before = job_count(&server);
    let refused = |body: Value| {
        let (status, text) = err(&server, body.clone());
        assert_eq!(status, 400, "{body} -> {text}");
        text
    };
    assert_eq!(refused(json!({"operation": "delete_records_before", "database": "del", "table": "ev"})), "'date' is required");
    assert_eq!(refused(json!({"operation": "delete_records_before", "database": "del", "date": iso(cutoff)})), "'table' is required");
    assert_eq!(refused(json!({"operation": "delete_records_before", "database": "del", "table": "ev", "date": "not a date"})), "'date' must be in ISO 8601 date format");
    let (status, text) = err(&server, json!({"operation": "delete_records_before", "database": "del", "table": "nosuch", "date": iso(cutoff)}));
    assert!((status == 400 || status == 404) && text == "Table 'del.nosuch' does not exist", "{status} {text}");
    // `database` defaults to `data`, which does not exist here.
    let (status, text) = err(&server, json!({"operation": "delete_records_before", "table": "ev", "date": iso(cutoff)}));
    assert!((status == 400 || status == 404) && text == "database 'data' does not exist", "{status} {text}");
    assert_eq!(job_count(&server), jobs_before);
    assert_eq!(ok(&server, json!({"operation": "describe_table", "database": "del", "table": "ev"}))["record_count"], 8);

    let id = start_job(&server, json!({"operation": "delete_records_before", "database": "del", "table": "ev", "date": iso(cutoff)}));
    let job = wait_job(&server, &id);
    assert_finished(&job, &id, "delete_records_before", "COMPLETE");
    assert_eq!(job["message"], "5 of 5 records successfully deleted");
    assert!(job.get("result").is_none(), "{job}");

    // Exactly the later records remain, through the primary key and through every index.
    let ids = |v: Value| {
        let mut ids: Vec<i64> = v.as_array().expect("rows").iter().filter_map(|r| r["id"].as_i64()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(ok(&server, json!({"operation": "search_by_hash", "database": "del", "table": "ev", "hash_values": [1, 2, 3, 4, 5, 6, 7, 8], "get_attributes": ["*"]}))), [6, 7, 8]);
    let by_value = |attribute: &str, value: Value| ids(ok(&server, json!({"operation": "search_by_value", "database": "del", "table": "ev", "attribute": attribute, "value": value, "get_attributes": ["id"]})));
    assert_eq!(by_value("kind", json!("old")), Vec::<i64>::new());
    assert_eq!(by_value("kind", json!("*")), [6, 7, 8]);
    assert_eq!(by_value("n", json!(100)), Vec::<i64>::new());
    assert_eq!(by_value("id", json!("*")), [6, 7, 8]);
    assert_eq!(ok(&server, json!({"operation": "sql", "sql": "SELECT COUNT(*) AS c FROM del.ev"})), json!([{"c": 3}]));
    assert_eq!(ok(&server, json!({"operation": "describe_table", "database": "del", "table": "ev"}))["record_count"], 3);

    // Again: nothing left to delete.
    let id = start_job(&server, json!({"operation": "delete_records_before", "schema": "del", "table": "ev", "date": iso(cutoff)}));
    let job = wait_job(&server, &id);
    assert_finished(&job, &id, "delete_records_before", "COMPLETE");
    assert_eq!(job["message"], "No records found to delete");
    assert_eq!(by_value("id", json!("*")), [6, 7, 8]);
}

// ---------------------------------------------------------------------------------------------
// get_job, search_jobs_by_start_date, restart_service

#[test]
fn get_job_and_search_jobs_by_start_date_show_the_job_records() {
    let server = Server::start();
    records_table(&server, "exp");
    let dir = export_dir(&server, "jobs");
    assert_eq!(ok(&server, json!({"operation": "get_job", "id": "00000000-0000-4000-8000-000000000000"})), json!([]));
    assert_eq!(err(&server, json!({"operation": "get_job"})), (400, "'id' is required".into()));

    let before = now_ms();
    let export = start_job(&server, json!({"operation": "export_local", "format": "json", "path": dir.display().to_string(), "filename": "x", "search_operation": by_hash("exp", &ATTRS)}));
    let resp = ok(&server, json!({"operation": "restart_service", "service": "clustering"}));
    let restart = resp["job_id"].as_str().expect("job_id").to_string();
    let export_job = wait_job(&server, &export);
    wait_job(&server, &restart);
    let after = now_ms();

    let found = ok(&server, json!({"operation": "search_jobs_by_start_date", "from_date": iso(before - 1000), "to_date": iso(after + 1000)}));
    let found = found.as_array().expect("an array").clone();
    for id in [&export, &restart] {
        let job = found.iter().find(|j| j["id"] == **id).unwrap_or_else(|| panic!("job {id} not found in {found:?}"));
        assert!(job.get("result").is_none(), "no result in searches: {job}");
        assert_eq!(job["status"], "COMPLETE");
        let start = job["start_datetime"].as_u64().expect("start_datetime");
        let end = job["end_datetime"].as_u64().expect("end_datetime");
        assert_eq!(job["start_datetime_converted"], iso(start), "{job}");
        assert_eq!(job["end_datetime_converted"], iso(end), "{job}");
    }
    let listed = found.iter().find(|j| j["id"] == export).expect("export job");
    for key in ["id", "status", "message", "end_datetime", "type", "start_datetime", "created_datetime", "user"] {
        assert_eq!(listed[key], export_job[key], "{key}");
    }
    // from > to: nothing. A window in the past: nothing.
    assert_eq!(ok(&server, json!({"operation": "search_jobs_by_start_date", "from_date": iso(after + 1000), "to_date": iso(before - 1000)})), json!([]));
    assert_eq!(ok(&server, json!({"operation": "search_jobs_by_start_date", "from_date": "2001-01-01", "to_date": "2001-01-02"})), json!([]));
    // Bad dates: HarperDB's texts.
    let (status, text) = err(&server, json!({"operation": "search_jobs_by_start_date", "from_date": "yesterday", "to_date": "2001-01-02"}));
    assert!(status == 400 || status == 500, "{status}");
    assert_eq!(text, "There was an error searching jobs by date: Error: Invalid 'from' date, must be in ISO-8601 format (YYYY-MM-DD).");
    let (status, text) = err(&server, json!({"operation": "search_jobs_by_start_date", "from_date": "2001-01-01"}));
    assert!(status == 400 || status == 500, "{status}");
    assert_eq!(text, "There was an error searching jobs by date: Error: Invalid 'to' date, must be in ISO-8601 format (YYYY-MM-DD)");
}

#[test]
fn restart_service_runs_as_a_job() {
    let server = Server::start();
    for service in ["http_workers", "clustering", "clustering_config"] {
        let resp = ok(&server, json!({"operation": "restart_service", "service": service}));
        let id = resp["job_id"].as_str().unwrap_or_else(|| panic!("job_id: {resp}")).to_string();
        assert!(is_uuid(&id));
        assert_eq!(resp, json!({"message": format!("Restarting {service}"), "job_id": id}));
        let job = wait_job(&server, &id);
        assert_complete(&job, &id, "restart_service");
        // Still serving.
        let (status, _) = server.post(json!({"operation": "get_configuration"}));
        assert_eq!(status, 200, "after restart_service {service}");
    }
    let jobs_before = job_count(&server);
    for bad in [json!({"service": "bogus"}), json!({}), json!({"service": 5}), json!({"service": "HTTP_WORKERS"})] {
        let mut body = json!({"operation": "restart_service"});
        for (k, v) in bad.as_object().expect("object") {
            body[k] = v.clone();
        }
        assert_eq!(server.post(body.clone()), (400, json!({"error": "Invalid service"})), "{body}");
    }
    assert_eq!(job_count(&server), jobs_before);
}

// ---------------------------------------------------------------------------------------------
// A job cut off by restart

/// Adds `by` rows to `big.t` in inserts of 10,000.
fn grow_big_table(server: &Server, rows: &mut u64, by: u64) {
    let pad = "x".repeat(100);
    for start in (*rows..*rows + by).step_by(10_000) {
        let records: Vec<Value> = (start..start + 10_000).map(|i| json!({"id": i, "name": format!("name-{i}"), "grp": i % 10, "pad": pad})).collect();
        let resp = ok(server, json!({"operation": "insert", "database": "big", "table": "t", "records": records}));
        assert_eq!(resp["message"], "inserted 10000 of 10000 records");
    }
    *rows += by;
}

#[test]
fn a_job_running_across_restart_ends_in_error() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "big", "table": "t", "primary_key": "id"}));
    let dir = export_dir(&server, "big");
    let mut rows = 0u64;
    grow_big_table(&server, &mut rows, 200_000);
    for attempt in 1..=3 {
        let id = start_job(&server, json!({"operation": "export_local", "format": "csv", "path": dir.display().to_string(), "filename": "big",
            "search_operation": {"operation": "search_by_value", "database": "big", "table": "t", "attribute": "id", "value": "*", "get_attributes": ["*"]}}));
        // While it runs: IN_PROGRESS, a progress object, no message or end yet.
        let job = get_job(&server, &id).pop().expect("the job");
        if job["status"] == "IN_PROGRESS" {
            assert_eq!(keys(&job).iter().filter(|k| ["message", "end_datetime", "result"].contains(k)).count(), 0, "{job}");
            let (done, total) = (job["progress"]["done"].as_u64(), job["progress"]["total"].as_u64());
            assert!(matches!((done, total), (Some(d), Some(t)) if d <= t), "progress {{done, total}} with done <= total: {job}");
            assert_eq!((job["type"].as_str(), job["user"].as_str()), (Some("export_local"), Some("admin")));
            let (status, _) = server.post(json!({"operation": "restart"}));
            assert_eq!(status, 200);
            // The restart is in place; wait until the server answers again.
            let deadline = Instant::now() + Duration::from_secs(30);
            while server.post(json!({"operation": "get_configuration"})).0 != 200 {
                assert!(Instant::now() < deadline, "server did not come back after restart");
                std::thread::sleep(Duration::from_millis(50));
            }
            let job = wait_job(&server, &id);
            if job["status"] == "ERROR" {
                assert_finished(&job, &id, "export_local", "ERROR");
                let message = job["message"].as_str().unwrap_or_default();
                assert!(message.to_lowercase().contains("restart"), "the message should name the restart: {message}");
                assert!(!dir.join("big.csv").exists(), "an interrupted export leaves no file");
                let leftovers = files_in(&dir);
                if !leftovers.is_empty() {
                    eprintln!("note: files left in the export folder after an interrupted export: {leftovers:?}");
                }
                return;
            }
            assert_eq!(job["status"], "COMPLETE", "{job}");
        } else {
            assert_eq!(wait_job(&server, &id)["status"], "COMPLETE");
        }
        // It finished before the restart could cut it off: a bigger table, and again.
        eprintln!("attempt {attempt}: the export of {rows} rows finished before the restart; growing the table");
        let _ = std::fs::remove_file(dir.join("big.csv"));
        grow_big_table(&server, &mut rows, 200_000);
    }
    panic!("the export always finished before the restart ({rows} rows)");
}

// ---------------------------------------------------------------------------------------------
// Permissions

#[test]
fn non_super_users_cannot_run_job_operations_or_see_other_jobs() {
    let server = Server::start();
    records_table(&server, "exp");
    let dir = export_dir(&server, "perm");
    let forbidden = |op: &str, body: Value| {
        let (status, resp) = server.post_as(USER, body);
        assert_eq!(status, 403, "{op}: {resp}");
        assert_eq!(
            resp,
            json!({
                "error": "This operation is not authorized due to role restrictions and/or invalid database items",
                "unauthorized_access": [format!("Operation '{op}' is restricted to 'super_user' roles")],
                "invalid_schema_items": [],
            })
        );
    };
    let export = json!({"operation": "export_local", "format": "json", "path": dir.display().to_string(), "filename": "x", "search_operation": by_hash("exp", &ATTRS)});
    forbidden("export_local", export.clone());
    forbidden("delete_records_before", json!({"operation": "delete_records_before", "database": "exp", "table": "rec", "date": iso(now_ms())}));
    forbidden("restart_service", json!({"operation": "restart_service", "service": "http_workers"}));
    forbidden("search_jobs_by_start_date", json!({"operation": "search_jobs_by_start_date", "from_date": "2000-01-01", "to_date": "2100-01-01"}));
    assert!(files_in(&dir).is_empty());
    // A job of the admin's is invisible to them.
    let id = start_job(&server, export);
    wait_job(&server, &id);
    assert_eq!(server.post_as(USER, json!({"operation": "get_job", "id": id})), (200, json!([])));
}
