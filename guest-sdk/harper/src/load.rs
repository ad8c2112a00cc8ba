//! Bulk loads (`csv_data_load`, `csv_file_load`, `csv_url_load`, `import_from_s3`): the request
//! fields they share (HarperDB's texts), a streaming CSV parser with HarperDB's type inference,
//! a streaming JSON-array reader, and the batched writer that stores rows through `storage` in
//! constant memory and names the row that failed.
//!
//! Failure semantics: rows are written in batches of [`BATCH`]; when a batch is refused, the
//! rows before the bad one are written and the job fails naming the bad row. Everything before
//! it stays stored (as in HarperDB, whose earlier chunks stay too), nothing after it is written.

use opshost_guest::bindings::opshost::host::sources;
use crate::data::{self, WriteMode};
use opshost_guest::Error;
use serde_json::{Map, Value};
use std::io::Read;

pub use opshost_guest::bindings::opshost::host::objectstore::S3Target;

/// Rows per storage write: large enough that the per-write cost (one fsync) is amortised,
/// small enough that what the host and RocksDB hold for one batch stays small (issue 16). Of a
/// 1,000,000-row load's peak RSS growth, most comes and goes with each batch: the host's copies
/// (parsed records, index entries, stored bytes, audit entry: ~20 MiB for 10,000 of the bench's
/// rows, freed after the write), the RocksDB write batch (8.6 MB) and the memtable it lands in,
/// past the shared budget. Halving the batch cut RocksDB's live heap peak during the bench's
/// 1M load from +34-36 MB to +22-27 MB and the median RSS peak growth from 47 to 39 MiB (README
/// "Bulk loads", round 8); the `csv_data_load` of 100,000 rows makes 20 writes instead of 10.
pub const BATCH: usize = 5_000;
/// JSON bytes per storage write, whatever the row count. The host holds a batch many times over
/// while it writes it (parsed records, index entries, the RocksDB write batch and memtable:
/// about 25 times the JSON text), so wide rows make smaller batches and a load's memory does not
/// grow with the width of its rows (5,000 rows of the bench's ~110-byte rows are 0.55 MB).
pub const BATCH_BYTES: usize = 1 << 20;
/// Bytes asked from the host per read.
const CHUNK: u32 = 1 << 20;

/// Where rows go and how: `database` (or `schema`, default `data`), `table`, `action`.
#[derive(Clone, Debug)]
pub struct Target {
    pub database: String,
    pub table: String,
    pub mode: WriteMode,
}

impl Target {
    /// The shared fields, checked in HarperDB's order with its texts; the table must exist.
    pub fn from_request(req: &Map<String, Value>) -> Result<Target, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            match req.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(Error::bad_request(format!("'{key}' must be a string"))),
            }
        };
        let database = match text("database")? {
            Some(d) => d,
            None => text("schema")?.unwrap_or_else(data::default_database),
        };
        let table = text("table")?.filter(|t| !t.is_empty()).ok_or_else(|| Error::bad_request("Table can't be blank"))?;
        let mode = match text("action")?.as_deref() {
            None | Some("insert") => WriteMode::Insert,
            Some("update") => WriteMode::Update,
            Some("upsert") => WriteMode::Upsert,
            Some(_) => return Err(Error::bad_request("Action is required and must be either insert, update, or upsert")),
        };
        let target = Target { database, table, mode };
        // The permission first: a role that may not write the table is refused (403) whether
        // or not the table exists, and learns nothing about it.
        target.check_permission()?;
        data::check_table(&target.database, &target.table)?;
        Ok(target)
    }

    /// Checks, changing nothing (an empty write), that the caller may write the table this way:
    /// a role without the permission is refused before any job exists, with HarperDB's 403
    /// and its `unauthorized_access` entry.
    fn check_permission(&self) -> Result<(), Error> {
        match opshost_guest::bindings::opshost::host::storage::write(&self.database, &self.table, self.mode, &[]) {
            Ok(_) => Ok(()),
            // A missing table is the request's fault (checked with HarperDB's text next).
            Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A required string field (`data`, `file_path`, `csv_url`): HarperDB's ` is required`.
pub fn required_text<'a>(req: &'a Map<String, Value>, key: &str, label: &str) -> Result<&'a str, Error> {
    match req.get(key) {
        None | Some(Value::Null) => Err(Error::bad_request(format!("{label} is required"))),
        Some(Value::String(s)) if s.is_empty() => Err(Error::bad_request(format!("{label} is required"))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::bad_request(format!("'{key}' must be a string"))),
    }
}

/// What a load did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    /// Rows read from the input.
    pub rows: u64,
    pub written: u64,
    pub skipped: u64,
}

impl Loaded {
    /// HarperDB's job message: `successfully loaded <written> of <records> records`, where
    /// HarperDB counts the records it did not skip (its `records.length` after removing the
    /// skipped hashes).
    pub fn message(&self) -> String {
        format!("successfully loaded {} of {} records", self.written, self.rows - self.skipped)
    }

    /// The job's answer: HarperDB's message, with the counts as opshost's `result`.
    pub fn response(&self) -> Value {
        serde_json::json!({
            "message": self.message(),
            "result": { "message": self.message(), "rows": self.rows, "written": self.written, "skipped": self.skipped },
        })
    }
}

/// An input the host streams (file, URL or S3 object), as a [`Read`].
pub struct Source {
    inner: sources::Source,
    buf: Vec<u8>,
    pos: usize,
}

impl Source {
    /// A file inside `operationsApi.importRoots`.
    pub fn file(path: &str) -> Result<Source, Error> {
        sources::open_file(path).map(Source::new)
    }

    /// An http(s) download.
    pub fn url(url: &str) -> Result<Source, Error> {
        sources::open_url(url).map(Source::new)
    }

    /// An S3 object.
    pub fn s3(target: &S3Target) -> Result<Source, Error> {
        sources::open_s3(target).map(Source::new)
    }

    fn new(inner: sources::Source) -> Source {
        Source { inner, buf: Vec::new(), pos: 0 }
    }

    /// Size in bytes when known.
    pub fn size(&self) -> Option<u64> {
        self.inner.size()
    }
}

/// Host errors travel through `io::Error` (the parsers take a `Read`) and come back out intact.
struct HostError(Error);

impl std::fmt::Debug for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl std::error::Error for HostError {}

fn from_io(e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<HostError>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(host) = inner.downcast::<HostError>() {
                return host.0;
            }
        }
        return Error::Internal("reading the input failed".into());
    }
    Error::Internal(format!("reading the input failed: {e}"))
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.buf = self.inner.read(CHUNK).map_err(|e| std::io::Error::other(HostError(e)))?;
            self.pos = 0;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// How a row is named in an error. Kept as numbers: the text is formatted only for the one row
/// an error names, not for each of a million rows.
#[derive(Clone, Copy, Debug)]
pub enum RowLabel {
    /// `CSV row 7 (line 9)`.
    Csv { row: u64, line: u64 },
    /// `JSON record 7`.
    Json(u64),
}

impl std::fmt::Display for RowLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowLabel::Csv { row, line } => write!(f, "CSV row {row} (line {line})"),
            RowLabel::Json(n) => write!(f, "JSON record {n}"),
        }
    }
}

/// Writes rows in batches, reporting progress, and pins a refused batch down to its first bad
/// row. A batch is kept as the one JSON array text `storage.write-text` takes (issue 16): the
/// rows are appended to one buffer, reused from batch to batch, instead of a string each, so
/// the guest makes no allocation per row, the host copies one text in (not 5,000 strings),
/// and the keys come back as one text instead of a string per row.
pub struct Writer {
    target: Target,
    /// `[`, then the batch's rows separated by commas; the closing `]` is added to write it.
    text: String,
    /// Where each row of the batch starts in `text`.
    starts: Vec<usize>,
    /// How each row of the batch is named in an error.
    labels: Vec<RowLabel>,
    loaded: Loaded,
    total_hint: u64,
}

impl Writer {
    pub fn new(target: Target) -> Writer {
        Writer { target, text: String::new(), starts: Vec::with_capacity(BATCH), labels: Vec::with_capacity(BATCH), loaded: Loaded::default(), total_hint: 0 }
    }

    /// Adds one row (a JSON object's text); `label` names it in an error.
    pub fn push(&mut self, row: &str, label: RowLabel) -> Result<(), Error> {
        self.text.push(if self.starts.is_empty() { '[' } else { ',' });
        self.starts.push(self.text.len());
        self.text.push_str(row);
        self.labels.push(label);
        self.loaded.rows += 1;
        if self.starts.len() >= BATCH || self.text.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is pending. On a refused batch: finds the first bad row by halving (the rows
    /// before it are written, O(log n) writes), and fails naming it.
    pub fn flush(&mut self) -> Result<(), Error> {
        let n = self.starts.len();
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let attempt = if (lo, hi) == (0, n) {
                // The whole batch: the buffer itself, closed.
                self.text.push(']');
                let done = write(&self.target, &mut self.loaded, &self.text);
                self.text.pop();
                done
            } else {
                let rows = self.rows(lo, hi);
                write(&self.target, &mut self.loaded, &rows)
            };
            match attempt {
                Ok(()) => break,
                Err(Error::BadRequest(reason)) if hi - lo == 1 => {
                    return Err(Error::bad_request(format!("{}: {reason}", self.labels[lo])));
                }
                Err(Error::BadRequest(_)) => {
                    let mid = lo + (hi - lo) / 2;
                    let rows = self.rows(lo, mid);
                    match write(&self.target, &mut self.loaded, &rows) {
                        // The bad row is in the second half: the first is stored now.
                        Ok(()) => lo = mid,
                        Err(Error::BadRequest(_)) => hi = mid,
                        Err(other) => return Err(other),
                    }
                }
                Err(other) => return Err(other),
            }
        }
        crate::jobs::progress(self.loaded.rows, self.total_hint.max(self.loaded.rows));
        self.text.clear();
        self.starts.clear();
        self.labels.clear();
        Ok(())
    }

    /// Rows `lo..hi` of the batch as a JSON array text.
    fn rows(&self, lo: usize, hi: usize) -> String {
        // A row ends where the next one's comma is, the last at the end of the text.
        let end = self.starts.get(hi).map_or(self.text.len(), |s| s - 1);
        let mut out = String::with_capacity(end - self.starts[lo] + 2);
        out.push('[');
        out.push_str(&self.text[self.starts[lo]..end]);
        out.push(']');
        out
    }

    /// Writes the rest; the counts.
    pub fn finish(mut self) -> Result<Loaded, Error> {
        if !self.starts.is_empty() {
            self.flush()?;
        }
        Ok(self.loaded)
    }
}

/// One `write-text` of `rows` (a JSON array text) into `target`, counted into `loaded`.
fn write(target: &Target, loaded: &mut Loaded, rows: &str) -> Result<(), Error> {
    let out = opshost_guest::bindings::opshost::host::storage::write_text(&target.database, &target.table, target.mode, rows)?;
    loaded.written += u64::from(out.written_count);
    loaded.skipped += u64::from(out.skipped_count);
    Ok(())
}

/// Loads CSV (a header row, then records) from `input` into `target`.
pub fn load_csv(input: impl Read, target: Target) -> Result<Loaded, Error> {
    let mut csv = CsvReader::new(input);
    let mut fields = Fields::default();
    let Some(_) = csv.next_record(&mut fields)? else {
        return Writer::new(target).finish();
    };
    let mut header: Vec<String> = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let f = if i == 0 { f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f) } else { f };
        let name = std::str::from_utf8(f).map_err(|_| Error::bad_request("the CSV header is not valid UTF-8"))?;
        header.push(name.trim().to_string());
    }
    // Header names as JSON string texts, encoded once.
    let keys: Vec<String> = header.iter().map(|h| Value::String(h.clone()).to_string()).collect();
    let mut writer = Writer::new(target);
    let mut row = 0u64;
    let mut out = String::new();
    while let Some(line) = csv.next_record(&mut fields)? {
        row += 1;
        let label = RowLabel::Csv { row, line };
        out.clear();
        out.push('{');
        let mut first = true;
        // Fields past the header are dropped and missing ones left out (papaparse's header mode).
        for (key, field) in keys.iter().zip(fields.iter()) {
            let text = std::str::from_utf8(field).map_err(|_| Error::bad_request(format!("{label}: not valid UTF-8")))?;
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(key);
            out.push(':');
            infer(text, &mut out);
        }
        out.push('}');
        writer.push(&out, label)?;
    }
    writer.finish()
}

/// Loads a JSON array of objects from `input` into `target`, element by element.
pub fn load_json(input: impl Read, target: Target) -> Result<Loaded, Error> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    struct Elements<'w> {
        writer: &'w mut Writer,
        failed: &'w mut Option<Error>,
    }
    impl<'de> Visitor<'de> for Elements<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0u64;
            loop {
                let next: Option<Box<serde_json::value::RawValue>> = seq.next_element()?;
                let Some(raw) = next else { return Ok(()) };
                n += 1;
                let text = raw.get();
                if !text.starts_with('{') {
                    *self.failed = Some(Error::bad_request(format!("JSON record {n}: not an object")));
                    return Err(serde::de::Error::custom("stopped"));
                }
                if let Err(e) = self.writer.push(text, RowLabel::Json(n)) {
                    *self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
        }
    }
    let mut writer = Writer::new(target);
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, input));
    let parsed = de.deserialize_seq(Elements { writer: &mut writer, failed: &mut failed }).and_then(|_| de.end());
    if let Some(e) = failed {
        return Err(e);
    }
    if let Err(e) = parsed {
        if e.is_io() {
            return Err(from_io(e.into()));
        }
        return Err(Error::bad_request(format!("the JSON input is not an array of records: {e}")));
    }
    writer.finish()
}

/// HarperDB's CSV type inference (its `autoCast` then `autoCastJSON`) for one cell, appended
/// to `out` as JSON: `""` stays an empty string; `true`/`TRUE`/`false`/`FALSE` are booleans;
/// `null`/`NULL`/`undefined` (and `NaN`, which JSON cannot hold) are null; numbers as
/// JavaScript reads them, except with an exponent or a leading zero (`007`, a zip code, stays
/// text; `0.5` is a number); an ISO 8601 date-time with a zone becomes the instant in
/// `toISOString` form; text that looks like a JSON object or array and parses as one is stored
/// as that object or array; anything else is a string.
pub fn infer(cell: &str, out: &mut String) {
    match cell {
        "" => return out.push_str("\"\""),
        "true" | "TRUE" => return out.push_str("true"),
        "false" | "FALSE" => return out.push_str("false"),
        "null" | "NULL" | "undefined" | "NaN" => return out.push_str("null"),
        _ => {}
    }
    if let Some(n) = js_number(cell) {
        if let Some(n) = serde_json::Number::from_f64(n) {
            // Integral values print as integers, as JavaScript does.
            let v = n.as_f64().unwrap_or(0.0);
            if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
                out.push_str(&(v as i64).to_string());
            } else {
                out.push_str(&n.to_string());
            }
            return;
        }
    }
    if let Some(iso) = iso_instant(cell) {
        return push_string(&iso, out);
    }
    let b = cell.as_bytes();
    if matches!((b.first(), b.last()), (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))) {
        if let Ok(v) = serde_json::from_str::<Value>(cell) {
            out.push_str(&v.to_string());
            return;
        }
    }
    push_string(cell, out);
}

fn push_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

/// HarperDB's `autoCasterIsNumberCheck` then `Number(text)`: finite decimal numbers without an
/// exponent and without a leading zero (other than `0` itself and `0.`-fractions).
fn js_number(text: &str) -> Option<f64> {
    let leading_zero = text != "0" && text.starts_with('0') && !text.starts_with("0.");
    if leading_zero || text.contains(['e', 'E']) {
        return None;
    }
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')) {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A date-time with seconds or minutes and a zone (HarperDB's `ISO_DATE`), as `toISOString`
/// prints the instant.
fn iso_instant(text: &str) -> Option<String> {
    let b = text.as_bytes();
    if b.len() < 17 || b.get(10) != Some(&b'T') || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let zoned = text.ends_with('Z') || matches!(b.get(b.len() - 6), Some(b'+' | b'-')) && b.get(b.len() - 3) == Some(&b':');
    if !zoned {
        return None;
    }
    let ms = crate::jobs::parse_iso8601(text)?;
    u64::try_from(ms).ok().map(crate::jobs::iso8601)
}

/// One record's fields, their buffers reused from record to record.
#[derive(Default)]
pub struct Fields {
    bufs: Vec<Vec<u8>>,
    len: usize,
}

impl Fields {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs[..self.len].iter().map(Vec::as_slice)
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    fn start(&mut self) {
        if self.len == self.bufs.len() {
            self.bufs.push(Vec::new());
        }
        self.bufs[self.len].clear();
        self.len += 1;
    }
    fn push(&mut self, b: u8) {
        if self.len == 0 {
            self.start();
        }
        self.bufs[self.len - 1].push(b);
    }
}

/// A streaming RFC 4180 reader (papaparse's dialect for HarperDB's loads): `,` between fields,
/// `"` quotes with `""` inside, records end at `\n`, `\r\n` or `\r`, empty lines are skipped.
/// Quoted fields may span lines. A stray quote inside an unquoted field is kept as text.
pub struct CsvReader<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    line: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl<R: Read> CsvReader<R> {
    pub fn new(input: R) -> Self {
        CsvReader { input, buf: vec![0; 1 << 16], pos: 0, len: 0, eof: false, line: 1 }
    }

    fn byte(&mut self) -> Result<Option<u8>, Error> {
        if self.pos == self.len {
            if self.eof {
                return Ok(None);
            }
            self.len = loop {
                match self.input.read(&mut self.buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other.map_err(from_io)?,
                }
            };
            self.pos = 0;
            if self.len == 0 {
                self.eof = true;
                return Ok(None);
            }
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    fn peek(&mut self) -> Result<Option<u8>, Error> {
        let b = self.byte()?;
        if b.is_some() {
            self.pos -= 1;
        }
        Ok(b)
    }

    /// The next non-empty record into `fields`; the line it starts on, or `None` at the end.
    pub fn next_record(&mut self, fields: &mut Fields) -> Result<Option<u64>, Error> {
        loop {
            fields.clear();
            let start = self.line;
            let mut state = State::FieldStart;
            let mut any = false;
            loop {
                let Some(b) = self.byte()? else {
                    if state == State::Quoted {
                        return Err(Error::bad_request(format!("CSV record starting on line {start}: a quoted field is not closed")));
                    }
                    if !any {
                        return Ok(None);
                    }
                    if state == State::FieldStart {
                        fields.start();
                    }
                    return Ok(Some(start));
                };
                any = true;
                match (state, b) {
                    (State::Quoted, b'"') => state = State::QuoteInQuoted,
                    (State::Quoted, b) => {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        fields.push(b);
                    }
                    (State::QuoteInQuoted, b'"') => {
                        fields.push(b'"');
                        state = State::Quoted;
                    }
                    (State::FieldStart, b'"') => {
                        fields.start();
                        state = State::Quoted;
                    }
                    (_, b',') => {
                        if state == State::FieldStart {
                            fields.start();
                        }
                        state = State::FieldStart;
                    }
                    (_, b'\n' | b'\r') => {
                        if b == b'\r' && self.peek()? == Some(b'\n') {
                            self.pos += 1;
                        }
                        self.line += 1;
                        if state == State::FieldStart && fields.is_empty() {
                            // An empty line.
                            break;
                        }
                        if state == State::FieldStart {
                            fields.start();
                        }
                        return Ok(Some(start));
                    }
                    (State::FieldStart, b) => {
                        fields.start();
                        fields.push(b);
                        state = State::Unquoted;
                    }
                    (_, b) => {
                        fields.push(b);
                        state = State::Unquoted;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_labels_read_as_the_error_texts() {
        assert_eq!(RowLabel::Csv { row: 15001, line: 15002 }.to_string(), "CSV row 15001 (line 15002)");
        assert_eq!(RowLabel::Json(2).to_string(), "JSON record 2");
    }

    fn records(text: &str) -> Vec<(u64, Vec<String>)> {
        let mut r = CsvReader::new(text.as_bytes());
        let mut f = Fields::default();
        let mut out = Vec::new();
        while let Some(line) = r.next_record(&mut f).expect("parse") {
            out.push((line, f.iter().map(|b| String::from_utf8(b.to_vec()).expect("utf8")).collect()));
        }
        out
    }

    #[test]
    fn csv_dialect() {
        assert_eq!(records("a,b\n1,2\n"), vec![(1, vec!["a".into(), "b".into()]), (2, vec!["1".into(), "2".into()])]);
        assert_eq!(records("a,b\r\n\r\n1,\"x,\"\"y\"\"\nz\"\r\n3,"), vec![
            (1, vec!["a".into(), "b".into()]),
            (3, vec!["1".into(), "x,\"y\"\nz".into()]),
            (5, vec!["3".into(), "".into()]),
        ]);
        assert_eq!(records(",\n\n\nx"), vec![(1, vec!["".into(), "".into()]), (4, vec!["x".into()])]);
        assert_eq!(records(""), vec![]);
        assert_eq!(records("a\"b,c"), vec![(1, vec!["a\"b".into(), "c".into()])]);
        let mut r = CsvReader::new("a\n\"open".as_bytes());
        let mut f = Fields::default();
        assert!(r.next_record(&mut f).expect("header").is_some());
        assert!(matches!(r.next_record(&mut f), Err(Error::BadRequest(m)) if m.contains("line 2")));
    }

    fn cell(s: &str) -> String {
        let mut out = String::new();
        infer(s, &mut out);
        out
    }

    #[test]
    fn harper_type_inference() {
        let cases = [
            ("", "\"\""),
            ("true", "true"),
            ("FALSE", "false"),
            ("True", "\"True\""),
            ("null", "null"),
            ("undefined", "null"),
            ("42", "42"),
            ("-7", "-7"),
            ("1.50", "1.5"),
            ("0.25", "0.25"),
            ("0", "0"),
            ("007", "\"007\""),
            ("1e5", "\"1e5\""),
            ("Infinity", "\"Infinity\""),
            ("12abc", "\"12abc\""),
            ("{\"a\":[1,2]}", "{\"a\":[1,2]}"),
            ("[1, \"x\"]", "[1,\"x\"]"),
            ("{not json}", "\"{not json}\""),
            ("2024-01-02T03:04:05Z", "\"2024-01-02T03:04:05.000Z\""),
            ("2024-01-02T05:04:05+02:00", "\"2024-01-02T03:04:05.000Z\""),
            ("2024-01-02", "\"2024-01-02\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
        ];
        for (input, json) in cases {
            assert_eq!(cell(input), json, "{input}");
        }
    }

    #[test]
    fn a_batch_is_one_array_text_and_its_ranges_are_arrays_too() {
        let target = Target { database: "dev".into(), table: "dog".into(), mode: WriteMode::Insert };
        let mut w = Writer::new(target);
        for (n, row) in [r#"{"id":1,"s":"a,b"}"#, r#"{"id":2}"#, r#"{"id":3,"o":{"x":[1,2]}}"#].into_iter().enumerate() {
            w.push(row, RowLabel::Json(n as u64 + 1)).expect("below a batch: nothing written");
        }
        let whole: Value = serde_json::from_str(&format!("{}]", w.text)).expect("the batch text closes into JSON");
        assert_eq!(whole.as_array().map(Vec::len), Some(3));
        assert_eq!(w.rows(0, 3), format!("{}]", w.text));
        assert_eq!(w.rows(0, 1), r#"[{"id":1,"s":"a,b"}]"#);
        assert_eq!(w.rows(1, 2), r#"[{"id":2}]"#);
        assert_eq!(w.rows(1, 3), r#"[{"id":2},{"id":3,"o":{"x":[1,2]}}]"#);
        assert_eq!(w.rows(2, 3), r#"[{"id":3,"o":{"x":[1,2]}}]"#);
    }

    #[test]
    fn the_message_counts_as_harper_does() {
        let l = Loaded { rows: 3, written: 2, skipped: 1 };
        assert_eq!(l.message(), "successfully loaded 2 of 2 records");
    }
}
