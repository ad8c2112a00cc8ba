//! The command-line client against a real server: `opshost <operation> key=value ...` with
//! values parsed as JSON, `--json`, tables by default and `--format json|yaml`, a non-zero exit
//! with the error on stderr for 4xx, a job waited for (result printed) or `--no-wait` (its id),
//! credentials from `CLI_TARGET_USERNAME`/`CLI_TARGET_PASSWORD`, the URL from the local
//! configuration when no `--url` is given, and `run`/`user add` still being subcommands.

use opshost_tests::{dist, Server, ADMIN, USER};
use serde_json::{json, Value};
use std::process::{Command, Output};

/// Runs `opshost <args>` as `who` against `server` (URL from `--url`).
fn cli_as(server: &Server, who: (&str, &str), args: &[&str]) -> Output {
    Command::new(dist().join("opshost"))
        .args(args)
        .args(["--url", &format!("http://127.0.0.1:{}", server.port)])
        .env("CLI_TARGET_USERNAME", who.0)
        .env("CLI_TARGET_PASSWORD", who.1)
        .env_remove("OPSHOST_URL")
        .env_remove("ROOTPATH")
        .output()
        .expect("running opshost")
}

fn cli(server: &Server, args: &[&str]) -> Output {
    cli_as(server, ADMIN, args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn assert_ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", out.status.code(), stdout(out), stderr(out));
    stdout(out)
}

#[test]
fn cli_runs_operations_with_json_values_and_prints_tables_json_and_yaml() {
    let server = Server::start();
    let created = assert_ok(&cli(&server, &["create_table", "database=dev", "table=dog", "primary_key=id"]));
    assert!(created.contains("successfully created"), "{created}");
    let inserted = assert_ok(&cli(&server, &["insert", "database=dev", "table=dog", r#"records=[{"id":1,"name":"Penny","age":5},{"id":2,"name":"Rex"}]"#]));
    assert!(inserted.contains("inserted 2 of 2 records"), "{inserted}");

    // A list of records is a table: a header line, a rule, one line per record.
    let table = assert_ok(&cli(&server, &["sql", "sql=SELECT id, name, age FROM dev.dog ORDER BY id"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for column in ["id", "name", "age"] {
        assert!(lines[0].split_whitespace().any(|c| c == column), "header {:?}", lines[0]);
    }
    assert!(lines[1].starts_with("--"), "{table}");
    assert!(lines[2].contains("Penny") && lines[2].contains('5') && lines[3].contains("Rex"), "{table}");

    // --format json is the server's answer, parseable; limit=1 arrives as a number.
    let json_out = assert_ok(&cli(&server, &["search_by_value", "database=dev", "table=dog", "search_attribute=name", "search_value=Rex", "get_attributes=[\"*\"]", "--format", "json"]));
    let rows: Value = serde_json::from_str(&json_out).expect("--format json prints JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["id"], 2);
    // --json gives the body; key=value fields add to it.
    let merged = assert_ok(&cli(&server, &["describe_table", "--json", r#"{"database":"dev"}"#, "table=dog", "--format=json"]));
    let described: Value = serde_json::from_str(&merged).expect("JSON");
    assert_eq!(described["hash_attribute"], "id");
    // YAML.
    let yaml = assert_ok(&cli(&server, &["user_info", "--format", "yaml"]));
    assert!(yaml.lines().any(|l| l == "username: admin"), "{yaml}");
    // The server saw exactly these records.
    let (_, count) = server.post(json!({"operation": "sql", "sql": "SELECT COUNT(*) AS n FROM dev.dog"}));
    assert_eq!(count[0]["n"], 2, "{count}");
}

#[test]
fn cli_exits_non_zero_with_the_error_on_stderr() {
    let server = Server::start();
    let missing = cli(&server, &["describe_table", "database=dev", "table=nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stdout(&missing).is_empty(), "{}", stdout(&missing));
    assert!(stderr(&missing).contains("error (404)") && stderr(&missing).contains("does not exist"), "{}", stderr(&missing));

    let refused = cli_as(&server, USER, &["list_users"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("error (403)") && stderr(&refused).contains("super_user"), "{}", stderr(&refused));

    let bad_password = cli_as(&server, (ADMIN.0, "wrong"), &["describe_all"]);
    assert_eq!(bad_password.status.code(), Some(1));
    assert!(stderr(&bad_password).contains("error (401)"), "{}", stderr(&bad_password));

    let bad_arg = cli(&server, &["describe_all", "not-a-pair"]);
    assert_eq!(bad_arg.status.code(), Some(2));
    assert!(stderr(&bad_arg).contains("expected key=value"), "{}", stderr(&bad_arg));

    let nobody = Command::new(dist().join("opshost")).args(["describe_all", "--url", "http://127.0.0.1:1"]).env("CLI_TARGET_USERNAME", "a").env("CLI_TARGET_PASSWORD", "b").output().expect("run");
    assert_eq!(nobody.status.code(), Some(1));
    assert!(stderr(&nobody).contains("connecting to http://127.0.0.1:1"), "{}", stderr(&nobody));
}

#[test]
fn cli_waits_for_a_job_and_prints_its_result_or_returns_its_id_with_no_wait() {
    let server = Server::start();
    let exports = server.root().join("exports");
    std::fs::create_dir_all(&exports).expect("exports");
    assert_eq!(server.post(json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"})).0, 200);
    let records: Vec<Value> = (0..500).map(|i| json!({"id": i})).collect();
    assert_eq!(server.post(json!({"operation": "insert", "database": "dev", "table": "dog", "records": records})).0, 200);
    let path = exports.display().to_string();
    let search = r#"{"search_operation":{"operation":"sql","sql":"SELECT * FROM dev.dog"}}"#;

    let waited = cli(&server, &["export_local", &format!("path={path}"), "format=json", "--json", search]);
    let out = assert_ok(&waited);
    assert!(out.contains("Successfully exported JSON locally."), "{out}");
    let file = out.lines().find_map(|l| l.strip_prefix("path")).map(str::trim).expect("the result's path").to_string();
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("exported file")).expect("JSON");
    assert_eq!(exported.as_array().map(Vec::len), Some(500));
    assert!(stderr(&waited).contains("100%"), "progress bar on stderr: {}", stderr(&waited));

    let queued = assert_ok(&cli(&server, &["export_local", &format!("path={path}"), "format=csv", "--json", search, "--no-wait"]));
    let id = queued.trim();
    assert_eq!(id.len(), 36, "just the job id: {queued}");
    let (status, job) = server.post(json!({"operation": "get_job", "id": id}));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job[0]["type"], "export_local");
}

#[test]
fn cli_finds_the_local_server_from_its_configuration_and_keeps_the_other_subcommands() {
    let server = Server::start();
    // No --url and no OPSHOST_URL: the root's configuration names the port.
    let out = Command::new(dist().join("opshost"))
        .args(["user_info", "--format", "json"])
        .env("ROOTPATH", server.root())
        .env("CLI_TARGET_USERNAME", ADMIN.0)
        .env("CLI_TARGET_PASSWORD", ADMIN.1)
        .env_remove("OPSHOST_URL")
        .output()
        .expect("run");
    let me: Value = serde_json::from_str(&assert_ok(&out)).expect("JSON");
    assert_eq!(me["username"], "admin");
    // Completion lists operation names from the server.
    let names = assert_ok(&cli(&server, &["list_operations", "--format", "names"]));
    assert!(names.lines().any(|l| l == "describe_all") && names.lines().any(|l| l == "export_local"), "{names}");
    let script = assert_ok(&Command::new(dist().join("opshost")).args(["completion", "bash"]).output().expect("run"));
    assert!(script.contains("complete -F"), "{script}");
    // `run`, `user add` and `precompile` are still subcommands, not operations.
    let help = assert_ok(&Command::new(dist().join("opshost")).arg("--help").output().expect("run"));
    for sub in ["run", "precompile", "user"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(sub)), "{sub} in --help: {help}");
    }
    let root = opshost_tests::TempRoot::new();
    let added = Command::new(dist().join("opshost"))
        .args(["user", "add", "--username", "cli_user", "--password", "pw-123456", "--role", "r"])
        .env("ROOTPATH", root.path())
        .output()
        .expect("run");
    assert_ok(&added);
}
