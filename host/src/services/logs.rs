//! The server log: every `tracing` event as one line in `<logging.root>/hdb.log` (HarperDB's
//! text format `2026-11-28T09:58:11.134Z [http/1] [error]: message`, or JSON lines with the same
//! fields, `logging.format`), and on stderr when `logging.stdStreams` is true; rotated by the
//! `file-rotate` crate per `logging.rotation`; read back by `read_log` with HarperDB's filters.
//!
//! An event's fields (`request_id`, `operation`, ...) are appended to the first line of its
//! message as `key=value`, so the request id of a 5xx answer is in its entry's own line. A message's own
//! line breaks are written as indented continuation lines: a line that starts with a timestamp
//! is always a new entry (a client cannot forge one through, say, a user name).

use super::ServiceError;
use file_rotate::compression::Compression;
use file_rotate::suffix::{AppendTimestamp, FileLimit};
use file_rotate::{ContentLimit, FileRotate, TimeFrequency};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The log file's name, as HarperDB's.
pub const FILE_NAME: &str = "hdb.log";
/// HarperDB's `read_log` default `limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// Most entries one `read_log` answers.
pub const MAX_LIMIT: usize = 100_000;
pub const LEVELS: &[&str] = &["notify", "fatal", "error", "warn", "info", "debug", "trace"];

/// `logging.*` as the log needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `logging.root`: the folder of `hdb.log`.
    pub root: PathBuf,
    /// `logging.file`: write `hdb.log` at all.
    pub file: bool,
    /// `logging.stdStreams`: also write to stderr.
    pub std_streams: bool,
    /// `logging.format: json`: JSON lines instead of HarperDB's text.
    pub json: bool,
    pub rotation: Rotation,
}

/// `logging.rotation`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Rotation {
    pub enabled: bool,
    /// `interval` (`1D`, `12h`, `30m`), as a rotation frequency.
    pub interval: Option<TimeFrequencyName>,
    /// `maxSize` (`64M`, `512K`, `1G`) in bytes.
    pub max_size: Option<u64>,
    pub compress: bool,
    /// `path`: the folder rotated files move to (HarperDB's default is the log's own folder).
    pub path: Option<PathBuf>,
}

/// The frequencies `file-rotate` rotates at; an interval rounds up to the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFrequencyName {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

/// `maxSize`: a number with `K`, `M` or `G` (HarperDB's units), or plain bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().ok()?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale).filter(|n| *n > 0)
}

/// `interval`: a number with `D`, `h` or `m` (HarperDB's units), rounded up to a frequency.
pub fn parse_interval(text: &str) -> Option<TimeFrequencyName> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().ok().filter(|n| *n > 0)?;
    let minutes = match unit {
        "m" | "M" => n,
        "h" | "H" => n.checked_mul(60)?,
        "d" | "D" => n.checked_mul(1440)?,
        _ => return None,
    };
    Some(match minutes {
        0..=60 => TimeFrequencyName::Hourly,
        61..=1440 => TimeFrequencyName::Daily,
        1441..=10080 => TimeFrequencyName::Weekly,
        _ => TimeFrequencyName::Monthly,
    })
}

/// A rotating log whose rotated files move to `logging.rotation.path`: `file-rotate` keeps
/// them beside the live file and has no folder option, so each new one is renamed after the
/// write that rotated it (already compressed when `compress` is on).
struct Relocated {
    inner: FileRotate<AppendTimestamp>,
    dir: PathBuf,
    /// How many of `inner`'s rotated files have been moved already.
    moved: usize,
}

impl Relocated {
    fn relocate(&mut self) {
        let rotated = self.inner.log_paths();
        if rotated.len() == self.moved {
            return;
        }
        for from in &rotated {
            let Some(name) = from.file_name() else { continue };
            if from.exists() {
                let to = self.dir.join(name);
                // A different filesystem cannot rename: copy, then remove.
                let moved = std::fs::rename(from, &to).or_else(|_| std::fs::copy(from, &to).and_then(|_| std::fs::remove_file(from)));
                if let Err(e) = moved {
                    eprintln!("could not move the rotated log {} to {}: {e}", from.display(), self.dir.display());
                }
            }
        }
        self.moved = rotated.len();
    }
}

impl Write for Relocated {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.relocate();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where events go; replaced by [`configure`] at start and on restart.
struct Sink {
    file: Option<Box<dyn Write + Send>>,
    stderr: bool,
    json: bool,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Opens (or re-opens) the log as `config` says. Until the first call events go to stderr.
pub fn configure(config: &LogConfig) -> anyhow::Result<()> {
    let file: Option<Box<dyn Write + Send>> = if config.file {
        std::fs::create_dir_all(&config.root)?;
        let path = config.root.join(FILE_NAME);
        let r = &config.rotation;
        if r.enabled && (r.max_size.is_some() || r.interval.is_some()) {
            // Size wins when both are set: file-rotate rotates on one limit.
            let limit = match (r.max_size, r.interval) {
                (Some(bytes), _) => ContentLimit::BytesSurpassed(bytes as usize),
                (None, Some(f)) => ContentLimit::Time(match f {
                    TimeFrequencyName::Hourly => TimeFrequency::Hourly,
                    TimeFrequencyName::Daily => TimeFrequency::Daily,
                    TimeFrequencyName::Weekly => TimeFrequency::Weekly,
                    TimeFrequencyName::Monthly => TimeFrequency::Monthly,
                }),
                (None, None) => ContentLimit::None,
            };
            let compression = if r.compress { Compression::OnRotate(0) } else { Compression::None };
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let rotate = FileRotate::new(path, AppendTimestamp::default(FileLimit::Unlimited), limit, compression, Some(options));
            match r.path.as_ref().filter(|p| **p != config.root) {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    Some(Box::new(Relocated { inner: rotate, dir: dir.clone(), moved: 0 }))
                }
                None => Some(Box::new(rotate)),
            }
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&path)?;
            Some(Box::new(std::io::LineWriter::new(f)))
        }
    } else {
        None
    };
    *SINK.lock() = Some(Sink { file, stderr: config.std_streams, json: config.json });
    Ok(())
}

/// The `tracing` layer writing every event that passes the level filter to the sinks.
pub struct LogLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        // Fields go at the end of the message's first line, so the entry's own line (the
        // one that starts with its timestamp) carries the request id.
        let mut tail = String::new();
        for (k, v) in fields.rest {
            tail.push_str(&format!(" {k}={v}"));
        }
        let message = match fields.message.split_once('\n') {
            Some((first, rest)) => format!("{first}{tail}\n{rest}"),
            None => format!("{}{tail}", fields.message),
        };
        let timestamp = now_iso();
        let thread = thread_label();
        let mut guard = SINK.lock();
        let (json, stderr) = guard.as_ref().map(|s| (s.json, s.stderr)).unwrap_or((false, true));
        let line = if json {
            json!({"timestamp": timestamp, "thread": thread, "level": level, "tags": [], "message": message}).to_string()
        } else {
            format!("{timestamp} [{thread}] [{level}]: {}", message.replace('\n', "\n    "))
        };
        if stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        if let Some(file) = guard.as_mut().and_then(|s| s.file.as_mut()) {
            // A full disk must not take the server down: the line is lost, stderr may have it.
            // One write call per line, so a size rotation never splits one.
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }
}

fn now_iso() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    now.format(&format).unwrap_or_default()
}

/// HarperDB names threads `main/0`, `http/1`, ...: the kind, and a number per thread.
fn thread_label() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LABEL: String = {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let kind = match std::thread::current().name() {
                Some("main") | None => "main".to_string(),
                Some(name) if name.starts_with("tokio") => "http".to_string(),
                Some(name) => name.replace(['[', ']', ' '], "_"),
            };
            format!("{kind}/{n}")
        };
    }
    LABEL.with(String::clone)
}

/// `read_log`'s filters, as HarperDB takes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQuery {
    pub start: usize,
    pub limit: usize,
    pub level: Option<String>,
    /// Epoch ms bounds, inclusive.
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// `Some(true)` newest first, `Some(false)` oldest first, `None` the file's order.
    pub descending: Option<bool>,
    /// A text every returned line contains.
    pub filter: Option<String>,
}

/// Reads `<root>/hdb.log` (text or JSON lines, whatever wrote them) and answers HarperDB's
/// `[{"timestamp", "thread", "level", "tags", "message"}]`, filtered, ordered and windowed.
/// Reads the file as a stream and keeps at most `start + limit` entries (or, for `desc`,
/// the newest `start + limit`), so a large log costs time, not memory.
pub fn read_log(root: &Path, query: &LogQuery) -> Result<Vec<Value>, ServiceError> {
    let path = root.join(FILE_NAME);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ServiceError::Internal(anyhow::anyhow!("reading {}: {e}", path.display()))),
    };
    let keep = query.start.saturating_add(query.limit);
    let mut kept: std::collections::VecDeque<Value> = std::collections::VecDeque::new();
    let mut current: Option<Map<String, Value>> = None;
    let accept = |entry: Map<String, Value>, kept: &mut std::collections::VecDeque<Value>| {
        if !matches(&entry, query) {
            return;
        }
        kept.push_back(Value::Object(entry));
        // Oldest first keeps the first entries; newest first the last ones.
        if kept.len() > keep {
            if query.descending == Some(true) {
                kept.pop_front();
            } else {
                kept.pop_back();
            }
        }
    };
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| ServiceError::Internal(anyhow::anyhow!("reading {}: {e}", path.display())))?;
        let line = String::from_utf8_lossy(&line);
        if let Some(entry) = parse_line(&line) {
            if let Some(done) = current.replace(entry) {
                accept(done, &mut kept);
            }
        } else if let Some(c) = current.as_mut() {
            // A continuation line (indented) belongs to the entry before it.
            if let Some(Value::String(m)) = c.get_mut("message") {
                m.push('\n');
                m.push_str(line.strip_prefix("    ").unwrap_or(&line));
            }
        }
        // Once oldest-first has its window full, the rest of the file cannot change it.
        if query.descending != Some(true) && kept.len() >= keep {
            break;
        }
    }
    if let Some(done) = current.take() {
        accept(done, &mut kept);
    }
    let mut out: Vec<Value> = kept.into_iter().collect();
    if query.descending == Some(true) {
        out.reverse();
    }
    Ok(out.into_iter().skip(query.start).take(query.limit).collect())
}

fn matches(entry: &Map<String, Value>, q: &LogQuery) -> bool {
    if let Some(level) = &q.level {
        if entry.get("level").and_then(Value::as_str) != Some(level.as_str()) {
            return false;
        }
    }
    if q.from.is_some() || q.until.is_some() {
        let Some(at) = entry.get("timestamp").and_then(Value::as_str).and_then(parse_time) else { return false };
        if q.from.is_some_and(|f| at < f) || q.until.is_some_and(|u| at > u) {
            return false;
        }
    }
    if let Some(text) = &q.filter {
        if !entry.get("message").and_then(Value::as_str).is_some_and(|m| m.contains(text.as_str())) {
            return false;
        }
    }
    true
}

/// One line of either format, or `None` for a continuation or unknown line.
fn parse_line(line: &str) -> Option<Map<String, Value>> {
    if line.starts_with('{') {
        let v: Map<String, Value> = serde_json::from_str(line).ok()?;
        return v.contains_key("timestamp").then_some(v);
    }
    // `<timestamp> [<thread>] [<level>]( [<tag>])*: <message>`
    let (timestamp, rest) = line.split_once(' ')?;
    parse_time(timestamp)?;
    let (head, message) = rest.split_once("]: ")?;
    let mut parts = head.trim_start_matches('[').split("] [");
    let thread = parts.next()?;
    let level = parts.next()?;
    if !LEVELS.contains(&level) {
        return None;
    }
    let tags: Vec<Value> = parts.map(|t| Value::String(t.to_string())).collect();
    let mut m = Map::new();
    m.insert("timestamp".into(), timestamp.into());
    m.insert("thread".into(), thread.into());
    m.insert("level".into(), level.into());
    m.insert("tags".into(), Value::Array(tags));
    m.insert("message".into(), message.into());
    Some(m)
}

/// HarperDB's `from`/`until` and log timestamps: RFC 3339 (`2021-01-25T22:05:27.464Z`,
/// `+0000` offsets too), `YYYY-MM-DD hh:mm:ss` or `YYYY-MM-DD` (UTC), as epoch ms.
pub fn parse_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let t = text.trim();
    let ms = |dt: time::OffsetDateTime| (dt.unix_timestamp_nanos() / 1_000_000) as i64;
    if let Ok(dt) = time::OffsetDateTime::parse(t, &Rfc3339) {
        return Some(ms(dt));
    }
    // `+0000` (no colon) as HarperDB's examples write it.
    if t.len() > 5 {
        let (body, offset) = t.split_at(t.len() - 5);
        if (offset.starts_with('+') || offset.starts_with('-')) && offset[1..].bytes().all(|b| b.is_ascii_digit()) {
            let fixed = format!("{body}{}:{}", &offset[..3], &offset[3..]);
            if let Ok(dt) = time::OffsetDateTime::parse(&fixed, &Rfc3339) {
                return Some(ms(dt));
            }
        }
    }
    let with_time = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(dt) = time::PrimitiveDateTime::parse(t, &with_time) {
        return Some(ms(dt.assume_utc()));
    }
    let with_t = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(dt) = time::PrimitiveDateTime::parse(t, &with_t) {
        return Some(ms(dt.assume_utc()));
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(t, &date).ok().map(|d| ms(d.midnight().assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Temp(PathBuf);
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn log(lines: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!("opshost-logs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(FILE_NAME), lines).expect("write");
        Temp(dir)
    }

    const LINES: &str = "2021-01-25T22:00:00.000Z [main/0] [notify]: started\n\
        2021-01-25T22:10:00.000Z [http/1] [error]: boom request_id=abc\n    at frame 1\n\
        {\"timestamp\":\"2021-01-25T22:20:00.000Z\",\"thread\":\"http/2\",\"level\":\"warn\",\"tags\":[],\"message\":\"careful\"}\n\
        2021-01-25T22:30:00.000Z [http/1] [error] [operation]: again\n";

    fn q() -> LogQuery {
        LogQuery { limit: DEFAULT_LIMIT, ..Default::default() }
    }

    #[test]
    fn reads_both_formats_with_harpers_filters() {
        let dir = log(LINES);
        let all = read_log(&dir.0, &q()).expect("read");
        assert_eq!(all.len(), 4);
        assert_eq!(all[1], json!({"timestamp": "2021-01-25T22:10:00.000Z", "thread": "http/1", "level": "error", "tags": [], "message": "boom request_id=abc\nat frame 1"}));
        assert_eq!(all[3]["tags"], json!(["operation"]));
        let errors = read_log(&dir.0, &LogQuery { level: Some("error".into()), ..q() }).expect("read");
        assert_eq!(errors.len(), 2);
        let desc = read_log(&dir.0, &LogQuery { descending: Some(true), limit: 2, ..q() }).expect("read");
        assert_eq!(desc.iter().map(|e| e["message"].clone()).collect::<Vec<_>>(), vec![json!("again"), json!("careful")]);
        let window = read_log(&dir.0, &LogQuery { start: 1, limit: 2, ..q() }).expect("read");
        assert_eq!(window.iter().map(|e| e["level"].clone()).collect::<Vec<_>>(), vec![json!("error"), json!("warn")]);
        let range = LogQuery { from: parse_time("2021-01-25 22:05:00"), until: parse_time("2021-01-25T22:20:00.000+0000"), ..q() };
        assert_eq!(read_log(&dir.0, &range).expect("read").len(), 2);
        assert_eq!(read_log(&dir.0, &LogQuery { filter: Some("careful".into()), ..q() }).expect("read").len(), 1);
    }

    #[test]
    fn sizes_and_intervals_parse() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_interval("1D"), Some(TimeFrequencyName::Daily));
        assert_eq!(parse_interval("30m"), Some(TimeFrequencyName::Hourly));
        assert_eq!(parse_interval("3D"), Some(TimeFrequencyName::Weekly));
        assert_eq!(parse_interval("soon"), None);
    }
}
