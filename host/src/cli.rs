//! The command-line client: `opshost <operation> key=value ...` runs one operation against a
//! running server (HarperDB's CLI, `harperdb describe_table database=dev table=dog`), prints the
//! answer as a table, JSON or YAML, and waits for a job's end with a progress bar.
//!
//! It speaks plain HTTP/1.1 over a std `TcpStream` (one request per connection): the host's own
//! hyper is built as a server only, and this needs no new crate.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// What `opshost help-operations` (and a bad flag) prints.
const USAGE: &str = "usage: opshost <operation> [key=value ...] [--json '{...}'] [--url URL] [--username U] [--password P]
                [--format table|json|yaml] [--no-wait]
  values parse as JSON where they can (records='[{\"id\":1}]', limit=10), else are strings.
  URL: --url, else $OPSHOST_URL, else the local configuration's address (http://127.0.0.1:9925).
  credentials: --username/--password, else $CLI_TARGET_USERNAME/$CLI_TARGET_PASSWORD.
  jobs wait for their end (progress on stderr); --no-wait prints the job id.
  shell completion of operation names: eval \"$(opshost completion bash)\"";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Yaml,
    /// One operation name a line (`list_operations` for completion).
    Names,
}

struct Invocation {
    request: Map<String, Value>,
    url: String,
    auth: Option<(String, String)>,
    format: Format,
    wait: bool,
}

/// Runs the CLI with `args` (the operation name first); returns the process exit code.
pub fn run(root: &Path, args: Vec<String>) -> i32 {
    if args.first().map(String::as_str) == Some("completion") {
        print!("{}", completion_script());
        return 0;
    }
    let invocation = match parse(root, args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("opshost: {e}\n{USAGE}");
            return 2;
        }
    };
    match execute(&invocation) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("opshost: {e:#}");
            1
        }
    }
}

fn parse(root: &Path, args: Vec<String>) -> Result<Invocation> {
    let mut args = args.into_iter();
    let operation = args.next().ok_or_else(|| anyhow!("no operation given"))?;
    let mut request = Map::new();
    request.insert("operation".into(), Value::String(operation));
    let mut url = std::env::var("OPSHOST_URL").ok().filter(|u| !u.is_empty());
    let mut username = std::env::var("CLI_TARGET_USERNAME").ok();
    let mut password = std::env::var("CLI_TARGET_PASSWORD").ok();
    let mut format = Format::Table;
    let mut wait = true;
    let mut extra_json = None;
    while let Some(arg) = args.next() {
        if let Some(flag) = arg.strip_prefix("--") {
            // `--flag value` or `--flag=value`.
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (flag.to_string(), None),
            };
            let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| anyhow!("--{name} needs a value"));
            match name.as_str() {
                "url" => url = Some(value()?),
                "username" => username = Some(value()?),
                "password" => password = Some(value()?),
                "json" => extra_json = Some(value()?),
                "no-wait" => wait = false,
                "format" => {
                    format = match value()?.as_str() {
                        "table" => Format::Table,
                        "json" => Format::Json,
                        "yaml" => Format::Yaml,
                        "names" => Format::Names,
                        other => bail!("--format {other}: expected table, json or yaml"),
                    }
                }
                _ => bail!("unknown flag --{name}"),
            }
        } else if let Some((key, raw)) = arg.split_once('=') {
            if key.is_empty() {
                bail!("'{arg}': expected key=value");
            }
            // HarperDB's CLI: a value is JSON when it parses as JSON, else a string.
            let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
            request.insert(key.to_string(), value);
        } else {
            bail!("'{arg}': expected key=value");
        }
    }
    if let Some(text) = extra_json {
        match serde_json::from_str::<Value>(&text).context("--json is not JSON")? {
            Value::Object(fields) => {
                for (k, v) in fields {
                    // The operation named on the command line wins over one inside --json.
                    if k != "operation" {
                        request.insert(k, v);
                    }
                }
            }
            _ => bail!("--json must be a JSON object"),
        }
    }
    let auth = match (username, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => bail!("give both a username and a password (--username/--password or CLI_TARGET_USERNAME/CLI_TARGET_PASSWORD)"),
    };
    Ok(Invocation { request, url: url.unwrap_or_else(|| local_url(root)), auth, format, wait })
}

/// The operations address of the local configuration (`<root>/opshost-config.yaml`), as a
/// client reaches it (a wildcard bind is reached on loopback).
fn local_url(root: &Path) -> String {
    let doc: Option<Value> = std::fs::read_to_string(root.join(opshost::services::config::FILE_NAME))
        .ok()
        .and_then(|text| yaml_serde::from_str(&text).ok());
    let network = doc.as_ref().map(|d| &d["operationsApi"]["network"]);
    let host = network.and_then(|n| n["host"].as_str()).unwrap_or("127.0.0.1");
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "[::1]",
        h if h.contains(':') && !h.starts_with('[') => return format!("http://[{h}]:{}", port(network)),
        h => h,
    };
    format!("http://{host}:{}", port(network))
}

fn port(network: Option<&Value>) -> u64 {
    network.and_then(|n| n["port"].as_u64()).unwrap_or(9925)
}

fn execute(inv: &Invocation) -> Result<i32> {
    let (status, answer) = post(inv, &Value::Object(inv.request.clone()))?;
    if status >= 400 {
        return Ok(fail(status, &answer));
    }
    let job_id = answer.get("job_id").and_then(Value::as_str).map(str::to_string);
    match job_id {
        Some(id) if inv.wait => wait_job(inv, &id),
        Some(id) if inv.format == Format::Table => {
            println!("{id}");
            Ok(0)
        }
        _ => {
            print_answer(inv.format, &answer)?;
            Ok(0)
        }
    }
}

/// The server's error on stderr; exit code 1.
fn fail(status: u16, answer: &Value) -> i32 {
    let message = answer.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| answer.to_string());
    eprintln!("error ({status}): {message}");
    if let Some(details) = answer.get("unauthorized_access").and_then(Value::as_array).filter(|d| !d.is_empty()) {
        for d in details {
            eprintln!("  {}", d.as_str().map(str::to_string).unwrap_or_else(|| d.to_string()));
        }
    }
    1
}

/// Polls `get_job` until the job ends, drawing its progress on stderr; prints its result.
fn wait_job(inv: &Invocation, id: &str) -> Result<i32> {
    let started = Instant::now();
    let mut drawn = false;
    loop {
        let (status, answer) = post(inv, &serde_json::json!({"operation": "get_job", "id": id}))?;
        if status >= 400 {
            return Ok(fail(status, &answer));
        }
        let job = answer.as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
        let state = job["status"].as_str().unwrap_or("");
        if state != "IN_PROGRESS" && state != "PENDING" && !state.is_empty() {
            let failed = state == "ERROR";
            // A finished job always ends with a full bar, also when it was done before the
            // first poll (a fast job, or a slow start of this process), so the user sees the
            // same last line either way.
            if !failed {
                eprintln!("\r{} 100% job {id} ({:.0?})", bar(1.0), started.elapsed());
            } else if drawn {
                eprintln!();
            }
            if failed {
                eprintln!("job {id} ended in {state}: {}", job["message"].as_str().unwrap_or(""));
            }
            let shown = if job["result"].is_null() { &job } else { &job["result"] };
            print_answer(inv.format, shown)?;
            return Ok(if failed { 1 } else { 0 });
        }
        let (done, total) = (job["progress"]["done"].as_f64().unwrap_or(0.0), job["progress"]["total"].as_f64().unwrap_or(0.0));
        let fraction = if total > 0.0 { (done / total).min(1.0) } else { 0.0 };
        eprint!("\r{} {:>3}% job {id} ({:.0?})", bar(fraction), (fraction * 100.0) as u32, started.elapsed());
        let _ = std::io::stderr().flush();
        drawn = true;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bar(fraction: f64) -> String {
    let width = 30;
    let filled = ((fraction * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), " ".repeat(width - filled))
}

fn print_answer(format: Format, answer: &Value) -> Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(answer)?,
        Format::Yaml => yaml_serde::to_string(answer)?.trim_end().to_string(),
        Format::Names => answer
            .as_array()
            .map(|ops| ops.iter().filter_map(|o| o["name"].as_str()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default(),
        Format::Table => table(answer),
    };
    println!("{text}");
    Ok(())
}

/// Lists of records as aligned columns; one object as `key: value` lines; scalars as they are.
fn table(answer: &Value) -> String {
    match answer {
        Value::Array(rows) if !rows.is_empty() && rows.iter().all(Value::is_object) => {
            let mut columns: Vec<&str> = Vec::new();
            for row in rows.iter().filter_map(Value::as_object) {
                for key in row.keys() {
                    if !columns.contains(&key.as_str()) {
                        columns.push(key);
                    }
                }
            }
            let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| cell(&r[*c])).collect()).collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
                .collect();
            let line = |values: Vec<&str>| {
                values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
            };
            let mut out = vec![line(columns.clone()), line(widths.iter().map(|w| &"--------------------------------------------------------------"[..(*w).min(62)]).collect())];
            out.extend(cells.iter().map(|r| line(r.iter().map(String::as_str).collect())));
            out.join("\n")
        }
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join("\n"),
        Value::Object(fields) => {
            let width = fields.keys().map(|k| k.len()).max().unwrap_or(0);
            fields.iter().map(|(k, v)| format!("{k:<width$}  {}", cell(v))).collect::<Vec<_>>().join("\n")
        }
        other => cell(other),
    }
}

/// One value in a cell: strings bare, the rest as compact JSON, cut at 60 characters.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

/// A bash completion of operation names, asked of the server (`list_operations`) on Tab.
fn completion_script() -> &'static str {
    r#"# opshost: completes operation names from the running server's list_operations.
_opshost_complete() {
    if [ "$COMP_CWORD" -eq 1 ]; then
        local ops
        ops="$(opshost list_operations --format names 2>/dev/null) run user precompile completion"
        COMPREPLY=( $(compgen -W "$ops" -- "${COMP_WORDS[1]}") )
    fi
}
complete -F _opshost_complete opshost
"#
}

/// One `POST /` with the JSON body; answers the status and the parsed body.
fn post(inv: &Invocation, body: &Value) -> Result<(u16, Value)> {
    let rest = inv
        .url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url {}: only http:// URLs are supported by the CLI", inv.url))?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let address = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let payload = serde_json::to_vec(body)?;
    let mut stream = TcpStream::connect(&address).with_context(|| format!("connecting to {}", inv.url))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        payload.len()
    );
    if let Some((user, pass)) = &inv.auth {
        use base64::Engine;
        head.push_str(&format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&payload)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("reading the answer from {}", inv.url))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("{} sent no HTTP answer", inv.url))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{} sent a malformed status line", inv.url))?;
    if head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")) {
        body = dechunk(&body)?;
    }
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).to_string()))
    };
    Ok((status, value))
}

/// Decodes a chunked body (`<hex size>\r\n<data>\r\n ... 0\r\n\r\n`).
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow!("malformed chunked answer"))?;
        let size_text = String::from_utf8_lossy(&data[..end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).context("malformed chunk size")?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("truncated chunked answer");
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_json_where_they_can() {
        let inv = parse(Path::new("/nonexistent"), ["insert", "records=[{\"id\":1}]", "table=dog", "limit=10", "--url", "http://h:1"].map(String::from).to_vec()).unwrap();
        assert_eq!(inv.request["records"], serde_json::json!([{"id": 1}]));
        assert_eq!(inv.request["table"], "dog");
        assert_eq!(inv.request["limit"], 10);
        assert_eq!(inv.url, "http://h:1");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&serde_json::json!([{"a": 1, "b": "x"}, {"a": 22}]));
        assert_eq!(t.lines().next(), Some("a   b"));
        assert_eq!(t.lines().nth(2), Some("1   x"));
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde");
    }
}
