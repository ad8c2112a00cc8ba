//! Exports: HarperDB's export file formats as streamed encoders (JSON: one compact array; CSV:
//! json2csv's), the [`Sink`]s they write to (a file through the `filesystem` interface, an S3
//! object through `objectstore`), and the request checks `export_local` and `export_to_s3` share.
//! Rows are pulled from a [`Rows`] source in batches and written in ~1 MiB chunks, so memory
//! stays flat whatever the table's size.

use opshost_guest::bindings::opshost::host::{filesystem, objectstore};
use crate::search::Rows;
use opshost_guest::{jobs, Error};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use opshost_conditions::members::compact_members;

pub use objectstore::S3Target;

/// Rows pulled from the search per batch (and per progress report).
const BATCH: u32 = 1000;
/// Bytes gathered before one call into the host.
const CHUNK: usize = 1 << 20;

/// An export file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// The request's `format`, with HarperDB's texts: `format missing`, `format invalid. ...`.
    pub fn from_request(format: Option<&Value>) -> Result<Format, Error> {
        match format {
            None | Some(Value::Null) => Err(Error::bad_request("format missing")),
            Some(Value::String(s)) if s == "json" => Ok(Format::Json),
            Some(Value::String(s)) if s == "csv" => Ok(Format::Csv),
            Some(_) => Err(Error::bad_request("format invalid. must be one of the following values: json, csv")),
        }
    }

    /// The file extension: `json`, `csv`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    /// As HarperDB's result messages name it: `JSON`, `CSV`.
    pub fn label(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Csv => "CSV",
        }
    }
}

/// The request's `search_operation`: present and an object (its contents are checked by
/// [`crate::search::validate_operation`]).
pub fn search_operation(request: &Map<String, Value>) -> Result<&Value, Error> {
    match request.get("search_operation") {
        None | Some(Value::Null) => Err(Error::bad_request("'search_operation' is required")),
        Some(op @ Value::Object(_)) => Ok(op),
        // HarperDB's text for a search_operation that is not an object.
        Some(_) => Err(Error::bad_request("There was an error when trying to choose an operation path")),
    }
}

/// A request string field HarperDB calls missing when it is absent, null or blank
/// (`bucket is missing.`); `Ok(None)` then, so the caller picks the text.
pub fn text_field<'a>(object: &'a Map<String, Value>, name: &str, path: &str) -> Result<Option<&'a str>, Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::bad_request(format!("'{path}' must be a string"))),
    }
}

/// Where encoded bytes go. Dropping a sink unfinished discards what was written.
pub trait Sink {
    fn write(&mut self, data: &[u8]) -> Result<(), Error>;
    /// Completes the output; returns where it is (a file path, an object location).
    fn finish(self) -> Result<String, Error>;
}

/// A file under an allowed export root, written under a temporary name and renamed into place
/// by `finish`.
pub struct LocalFile(filesystem::Writer);

impl LocalFile {
    /// Starts writing `<folder>/<name>`; the host checks the folder is inside an export root.
    pub fn create(folder: &str, name: &str) -> Result<LocalFile, Error> {
        filesystem::create(folder, name).map(LocalFile)
    }
}

impl Sink for LocalFile {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.0.write(data)
    }
    fn finish(self) -> Result<String, Error> {
        self.0.finish()
    }
}

/// Checks that `folder` is an existing folder inside an allowed export root; returns it
/// resolved. A bad folder is a 400 with the host's text.
pub fn check_folder(folder: &str) -> Result<String, Error> {
    filesystem::check_folder(folder)
}

/// An S3 object, uploaded as it is written (multipart once large); it appears on `finish`.
pub struct S3Object(objectstore::Upload);

impl S3Object {
    /// Starts the upload. The credentials are used for this upload only and never logged.
    pub fn put(target: &S3Target) -> Result<S3Object, Error> {
        objectstore::put(target).map(S3Object)
    }
}

impl Sink for S3Object {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.0.write(data)
    }
    fn finish(self) -> Result<String, Error> {
        self.0.finish()
    }
}

/// Streams every row of `rows` into `sink` in `format`, reporting the job's progress once per
/// batch; returns the sink's location and the number of rows written.
pub fn export<S: Sink>(rows: Rows, format: Format, sink: S) -> Result<(String, u64), Error> {
    encode_all(rows, format, sink, jobs::progress)
}

/// [`export`] with the progress report given, so it runs without a host in tests.
fn encode_all<S: Sink>(mut rows: Rows, format: Format, sink: S, progress: impl Fn(u64, u64)) -> Result<(String, u64), Error> {
    let total = rows.total_hint();
    let mut encoder = Encoder::new(format, sink);
    loop {
        // One text per page: rows are copied (JSON) or split (CSV) without being parsed.
        let page = rows.next_page(BATCH)?;
        if page.is_empty() {
            break;
        }
        for row in page.split_terminator('\n') {
            encoder.row_text(row)?;
        }
        progress(encoder.rows(), total.max(encoder.rows()));
    }
    let count = encoder.rows();
    Ok((encoder.finish()?, count))
}

/// Encodes rows (raw JSON objects) one at a time in HarperDB's export format.
///
/// * JSON: `[row,row]`, compact (no spaces), no trailing newline; `[]` when empty.
/// * CSV (json2csv): a header row of the first row's keys, each quoted; strings quoted with
///   `"` doubled; numbers and booleans bare, exactly as the JSON text gives them; null or
///   missing as an empty field; objects and arrays as compact JSON, quoted; `\n` between lines,
///   none at the end; no rows → no bytes at all.
pub struct Encoder<S: Sink> {
    format: Format,
    sink: S,
    buf: Vec<u8>,
    columns: Vec<String>,
    rows: u64,
}

impl<S: Sink> Encoder<S> {
    pub fn new(format: Format, sink: S) -> Self {
        Encoder { format, sink, buf: Vec::new(), columns: Vec::new(), rows: 0 }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn row(&mut self, row: &RawValue) -> Result<(), Error> {
        self.row_text(row.get())
    }

    /// One row from its text: a compact JSON object (the host's text, or serde_json's).
    pub fn row_text(&mut self, row: &str) -> Result<(), Error> {
        match self.format {
            Format::Json => {
                self.buf.push(if self.rows == 0 { b'[' } else { b',' });
                // Rows are compact JSON already: copied as is.
                self.buf.extend_from_slice(row.as_bytes());
            }
            Format::Csv => self.csv_row(row)?,
        }
        self.rows += 1;
        if self.buf.len() >= CHUNK {
            self.sink.write(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn csv_row(&mut self, row: &str) -> Result<(), Error> {
        let mut fields = Vec::with_capacity(self.columns.len().max(8));
        if compact_members(row, &mut fields) {
            return self.csv_fields(&fields);
        }
        // Escaped keys or whitespace: let serde_json read it.
        let RawRow(owned) =
            serde_json::from_str(row).map_err(|e| Error::Internal(format!("an exported row is not a JSON object: {e}")))?;
        let fields: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        self.csv_fields(&fields)
    }

    /// One CSV line from a row's members (keys unescaped, values as JSON text).
    fn csv_fields(&mut self, fields: &[(&str, &str)]) -> Result<(), Error> {
        if self.rows == 0 {
            self.columns = fields.iter().map(|(k, _)| k.to_string()).collect();
            for (i, c) in self.columns.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                quoted(c, &mut self.buf);
            }
        }
        self.buf.push(b'\n');
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            // Rows usually carry the columns in the same order: look there first.
            let value = match fields.get(i) {
                Some((k, v)) if k == column => Some(*v),
                _ => fields.iter().find(|(k, _)| k == column).map(|(_, v)| *v),
            };
            if let Some(v) = value {
                csv_field(v, &mut self.buf)?;
            }
        }
        Ok(())
    }

    /// Closes the array (JSON), flushes and finishes the sink; returns its location.
    pub fn finish(mut self) -> Result<String, Error> {
        if self.format == Format::Json {
            self.buf.extend_from_slice(if self.rows == 0 { b"[]" } else { b"]" });
        }
        if !self.buf.is_empty() {
            self.sink.write(&self.buf)?;
        }
        self.sink.finish()
    }
}

/// One CSV field from one JSON value's text.
fn csv_field(text: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    match text.as_bytes().first() {
        None => {}
        Some(b'n') => {}
        Some(b'"') if !text.contains('\\') => {
            // No escapes, so no `"` inside either: the JSON text is already the quoted field.
            out.extend_from_slice(text.as_bytes());
        }
        Some(b'"') => {
            let s: String = serde_json::from_str(text).map_err(|e| Error::Internal(format!("invalid string in an exported row: {e}")))?;
            quoted(&s, out);
        }
        Some(b'{' | b'[') => {
            let mut json = Vec::with_capacity(text.len());
            minify_into(text, &mut json);
            quoted_bytes(&json, out);
        }
        // Numbers and booleans, exactly as written.
        Some(_) => out.extend_from_slice(text.as_bytes()),
    }
    Ok(())
}

fn quoted(s: &str, out: &mut Vec<u8>) {
    quoted_bytes(s.as_bytes(), out);
}

fn quoted_bytes(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Copies JSON text without the whitespace between tokens (strings untouched), so numbers
/// keep their exact text.
fn minify_into(text: &str, out: &mut Vec<u8>) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
}

/// A JSON object's members in order, values left as raw text.
struct RawRow<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawRow<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRow<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push((k, v));
                }
                Ok(RawRow(fields))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects in memory; records how many writes reached it.
    #[derive(Default)]
    struct Memory {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl Sink for &mut Memory {
        fn write(&mut self, data: &[u8]) -> Result<(), Error> {
            self.bytes.extend_from_slice(data);
            self.writes += 1;
            Ok(())
        }
        fn finish(self) -> Result<String, Error> {
            Ok("memory".into())
        }
    }

    fn encode(format: Format, rows: &[&str]) -> String {
        let mut mem = Memory::default();
        let mut e = Encoder::new(format, &mut mem);
        for r in rows {
            let raw = RawValue::from_string((*r).to_string()).expect("valid JSON");
            e.row(&raw).expect("row");
        }
        assert_eq!(e.finish().expect("finish"), "memory");
        String::from_utf8(mem.bytes).expect("utf-8")
    }

    const TRICKY: &[&str] = &[
        r#"{"id":1,"__createdtime__":1795736087111.1882,"name":"Penny \"P\", the 1st","note":"line1\nline2","ok":true,"n":null,"obj":{"x":1,"s":"a\"b"},"arr":[1,"two",null]}"#,
        // Rows arrive compact (the storage WIT promises it).
        r#"{"id":2,"__createdtime__":1795736087112,"name":"Beagle","note":"","ok":false,"n":0.5,"obj":{"x":[]},"arr":[]}"#,
        r#"{"id":"a,b","name":"tab\there \\ back","ok":null,"extra":"ignored","__createdtime__":-1e-7}"#,
    ];

    #[test]
    fn json_is_one_compact_array() {
        assert_eq!(encode(Format::Json, &[]), "[]");
        assert_eq!(
            encode(Format::Json, TRICKY),
            concat!(
                r#"[{"id":1,"__createdtime__":1795736087111.1882,"name":"Penny \"P\", the 1st","note":"line1\nline2","ok":true,"n":null,"obj":{"x":1,"s":"a\"b"},"arr":[1,"two",null]},"#,
                r#"{"id":2,"__createdtime__":1795736087112,"name":"Beagle","note":"","ok":false,"n":0.5,"obj":{"x":[]},"arr":[]},"#,
                r#"{"id":"a,b","name":"tab\there \\ back","ok":null,"extra":"ignored","__createdtime__":-1e-7}]"#
            )
        );
    }

    #[test]
    fn csv_is_json2csv() {
        assert_eq!(encode(Format::Csv, &[]), "");
        assert_eq!(
            encode(Format::Csv, TRICKY),
            concat!(
                "\"id\",\"__createdtime__\",\"name\",\"note\",\"ok\",\"n\",\"obj\",\"arr\"\n",
                "1,1795736087111.1882,\"Penny \"\"P\"\", the 1st\",\"line1\nline2\",true,,\"{\"\"x\"\":1,\"\"s\"\":\"\"a\\\"\"b\"\"}\",\"[1,\"\"two\"\",null]\"\n",
                "2,1795736087112,\"Beagle\",\"\",false,0.5,\"{\"\"x\"\":[]}\",\"[]\"\n",
                "\"a,b\",-1e-7,\"tab\there \\ back\",,,,,"
            )
        );
        assert_eq!(encode(Format::Csv, &[r#"{"we\"ird":1}"#]), "\"we\"\"ird\"\n1");
    }

    /// The fast splitter agrees with serde_json on every row it accepts, and refuses (so the
    /// row is parsed) whatever it cannot split exactly.
    #[test]
    fn compact_rows_split_like_serde_json() {
        let mut out = Vec::new();
        for row in TRICKY.iter().copied().chain([r#"{}"#, r#"{"a":"}","b":"{[","c":[{"d":"]"}]}"#, r#"{"k":"\\"}"#]) {
            assert!(compact_members(row, &mut out), "{row}");
            let RawRow(want) = serde_json::from_str(row).expect("valid");
            let want: Vec<(&str, &str)> = want.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
            assert_eq!(out, want, "{row}");
        }
        for row in [r#"{"a": 1}"#, "{\"a\":1,\n\"b\":2}", r#"{"we\"ird":1}"#, r#"[1,2]"#, r#"{"a":1}x"#, ""] {
            assert!(!compact_members(row, &mut out), "{row}");
        }
        // A refused row still exports, the same as its compact form.
        assert_eq!(encode(Format::Csv, &["{\"id\": 1, \"n\": [1, 2]}", r#"{"id":2,"n":[3]}"#]), "\"id\",\"n\"\n1,\"[1,2]\"\n2,\"[3]\"");
    }

    /// A page from [`RowSource::next_page`]'s default (what a SQL export reads) encodes to the
    /// same bytes as its rows one by one, a row with newlines between its tokens included.
    #[test]
    fn pages_encode_like_rows() {
        use crate::search::Rows;
        let texts = [TRICKY[0], TRICKY[1], "{\"id\":\n3,\"name\":\"a\\nb\"}"];
        for format in [Format::Json, Format::Csv] {
            let raws: Vec<Box<RawValue>> = texts.iter().map(|t| RawValue::from_string(t.to_string()).expect("raw")).collect();
            let mut mem = Memory::default();
            let (location, n) = encode_all(Rows::from_vec(raws), format, &mut mem, |_, _| {}).expect("export");
            assert_eq!((location.as_str(), n), ("memory", 3));
            let one_by_one = encode(format, &[TRICKY[0], TRICKY[1], "{\"id\":3,\"name\":\"a\\nb\"}"]);
            assert_eq!(String::from_utf8(mem.bytes).expect("utf-8"), one_by_one);
        }
    }

    #[test]
    fn big_exports_cross_to_the_host_in_chunks() {
        let mut mem = Memory::default();
        let mut e = Encoder::new(Format::Json, &mut mem);
        let raw = RawValue::from_string(format!(r#"{{"s":"{}"}}"#, "x".repeat(1000))).expect("raw");
        for _ in 0..3000 {
            e.row(&raw).expect("row");
        }
        e.finish().expect("finish");
        assert_eq!(mem.bytes.len(), 3000 * 1009 + 1);
        assert_eq!(mem.writes, 3);
    }

    #[test]
    fn request_checks_use_harper_texts() {
        let text = |r: Result<Format, Error>| match r {
            Err(Error::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(Format::from_request(None)), "format missing");
        assert_eq!(text(Format::from_request(Some(&Value::from("xml")))), "format invalid. must be one of the following values: json, csv");
        assert_eq!(text(Format::from_request(Some(&Value::from("JSON")))), "format invalid. must be one of the following values: json, csv");
        assert_eq!(Format::from_request(Some(&Value::from("csv"))).ok(), Some(Format::Csv));
        let req = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(matches!(search_operation(&req(serde_json::json!({}))), Err(Error::BadRequest(m)) if m == "'search_operation' is required"));
        assert!(matches!(search_operation(&req(serde_json::json!({"search_operation": "x"}))), Err(Error::BadRequest(m)) if m == "There was an error when trying to choose an operation path"));
        let s3 = req(serde_json::json!({"bucket": " ", "key": 5, "region": "eu"}));
        assert_eq!(text_field(&s3, "bucket", "s3.bucket").ok(), Some(None));
        assert_eq!(text_field(&s3, "region", "s3.region").ok(), Some(Some("eu")));
        assert!(matches!(text_field(&s3, "key", "s3.key"), Err(Error::BadRequest(m)) if m == "'s3.key' must be a string"));
    }
}
