//! Inputs of bulk loads (`csv_file_load`, `csv_url_load`, `import_from_s3`), read as byte
//! streams in bounded chunks: a file inside the configured import roots (opened once with
//! `O_NOFOLLOW`, confinement checked on what was opened), an http(s) download with timeouts and
//! a size cap, or an S3 object through opendal. Nothing is ever held whole in memory.

use super::objectstore::S3Target;
use super::ServiceError;
use axum::body::Bytes;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest chunk one `read` hands out (the guest asks for less; this bounds a hostile ask).
pub const MAX_CHUNK: usize = 1 << 20;

/// Time to open a TCP (and TLS) connection to a URL's server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes: a server that stalls fails the load instead of holding a
/// job slot until `jobTimeout`.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// HarperDB's accepted content types for `csv_url_load` (compared on the media type alone, so
/// `text/csv; charset=utf-8` passes too).
const CSV_CONTENT_TYPES: [&str; 4] = ["text/csv", "application/octet-stream", "text/plain", "application/vnd.ms-excel"];

/// The folders loads may read files from (`operationsApi.importRoots`), resolved.
#[derive(Clone, Debug)]
pub struct ImportRoots(Vec<PathBuf>);

impl ImportRoots {
    /// Roots that do not exist (yet) are kept as given: they match nothing until created.
    pub fn new(roots: &[PathBuf]) -> Self {
        Self(roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).collect())
    }

    /// Opens `path` for reading: absolute, a regular file, its last component not a symbolic
    /// link (`O_NOFOLLOW`), and what was opened (read back from the descriptor, so a path
    /// swapped after a check cannot redirect the read) inside a root.
    pub fn open(&self, path: &str) -> Result<Source, ServiceError> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(ServiceError::BadRequest(format!("file_path '{path}' must be an absolute path")));
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(p)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => ServiceError::BadRequest(format!("No such file or directory {path}")),
                Some(libc::EACCES) | Some(libc::EPERM) => ServiceError::BadRequest(format!("Permission denied {path}")),
                Some(libc::ELOOP) => ServiceError::BadRequest(format!("file_path '{path}' is a symbolic link; loads read only real files")),
                _ => ServiceError::BadRequest(format!("file_path '{path}' cannot be opened: {e}")),
            })?;
        let resolved = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("resolving {path}: {e}")))?;
        if !self.0.iter().any(|root| resolved.starts_with(root)) {
            return Err(ServiceError::BadRequest(format!(
                "file_path '{path}' is outside the folders loads may read from (operationsApi.importRoots)"
            )));
        }
        let meta = file.metadata().map_err(|e| ServiceError::Internal(anyhow::anyhow!("reading {path}: {e}")))?;
        if !meta.is_file() {
            return Err(ServiceError::BadRequest(format!("file_path '{path}' is not a regular file")));
        }
        Ok(Source::File { file: Some(file), size: meta.len() })
    }
}

/// An open input of a load.
pub enum Source {
    File { file: Option<File>, size: u64 },
    Http { response: reqwest::Response, pending: Bytes, read: u64, cap: u64, url: String },
    S3 { reader: opendal::Reader, offset: u64, size: u64 },
}

impl Source {
    /// The input's size in bytes, when known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Source::File { size, .. } | Source::S3 { size, .. } => Some(*size),
            Source::Http { response, .. } => response.content_length(),
        }
    }

    /// Up to `max` bytes; empty at the end.
    pub async fn read(&mut self, max: usize) -> Result<Vec<u8>, ServiceError> {
        let max = max.clamp(1, MAX_CHUNK);
        match self {
            Source::File { file, .. } => {
                // Disk reads block: on a blocking thread, the file handed there and back.
                let mut f = file.take().ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("file read after a failure")))?;
                let (f, out) = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; max];
                    let n = loop {
                        match f.read(&mut buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            other => break other,
                        }
                    };
                    (f, n.map(|n| {
                        buf.truncate(n);
                        buf
                    }))
                })
                .await
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!("file read task: {e}")))?;
                *file = Some(f);
                out.map_err(|e| ServiceError::Internal(anyhow::anyhow!("reading the import file: {e}")))
            }
            Source::Http { response, pending, read, cap, url } => {
                if pending.is_empty() {
                    match tokio::time::timeout(READ_TIMEOUT, response.chunk()).await {
                        Err(_) => return Err(ServiceError::BadRequest(format!("CSV Load failed from URL: {url}, no data for {} s", READ_TIMEOUT.as_secs()))),
                        Ok(Err(e)) => return Err(ServiceError::BadRequest(format!("CSV Load failed from URL: {url}, {}", reqwest_reason(&e)))),
                        Ok(Ok(None)) => return Ok(Vec::new()),
                        Ok(Ok(Some(chunk))) => *pending = chunk,
                    }
                }
                let take = pending.split_to(max.min(pending.len()));
                *read += take.len() as u64;
                if *read > *cap {
                    return Err(too_large(url, *cap));
                }
                Ok(take.to_vec())
            }
            Source::S3 { reader, offset, size } => {
                if *offset >= *size {
                    return Ok(Vec::new());
                }
                let end = (*offset + max as u64).min(*size);
                let buf = reader.read(*offset..end).await.map_err(|e| ServiceError::BadRequest(format!("S3 download failed: {}", super::objectstore::describe(&e))))?;
                let out = buf.to_vec();
                if out.is_empty() {
                    return Err(ServiceError::BadRequest("S3 download failed: the object ended early".into()));
                }
                *offset += out.len() as u64;
                Ok(out)
            }
        }
    }
}

/// Starts an http(s) GET of `url`: 200 and a CSV-like content type are required (HarperDB's
/// texts), and a declared length over `cap` is refused before any byte is read.
pub async fn open_url(url: &str, cap: u64) -> Result<Source, ServiceError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| ServiceError::BadRequest("'csv_url' must be a valid url".into()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ServiceError::BadRequest("'csv_url' must be a valid url".into()));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("building the HTTP client: {e}")))?;
    let response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| ServiceError::BadRequest(format!("Error downloading CSV file from {url}: {}", reqwest_reason(&e))))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(ServiceError::BadRequest(format!(
            "CSV Load failed from URL: {url}, status code: {}, message: {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )));
    }
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !CSV_CONTENT_TYPES.contains(&media.as_str()) {
        return Err(ServiceError::BadRequest(format!("CSV Load failed from URL: {url}, unsupported content type: {content_type}")));
    }
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(too_large(url, cap));
    }
    Ok(Source::Http { response, pending: Bytes::new(), read: 0, cap, url: url.to_string() })
}

/// Opens an S3 object for ranged reads; its size comes from a `stat`, which also turns a
/// missing object into a clear error before anything is loaded.
pub async fn open_s3(target: &S3Target) -> Result<Source, ServiceError> {
    let op = target.operator()?;
    let meta = op.stat(&target.key).await.map_err(|e| match e.kind() {
        opendal::ErrorKind::NotFound => ServiceError::BadRequest(format!("S3 object '{}' does not exist in bucket '{}'", target.key, target.bucket)),
        _ => ServiceError::BadRequest(format!("S3 download failed: {}", super::objectstore::describe(&e))),
    })?;
    let reader = op.reader(&target.key).await.map_err(|e| ServiceError::BadRequest(format!("S3 download failed: {}", super::objectstore::describe(&e))))?;
    Ok(Source::S3 { reader, offset: 0, size: meta.content_length() })
}

fn too_large(url: &str, cap: u64) -> ServiceError {
    ServiceError::BadRequest(format!(
        "CSV Load failed from URL: {url}, larger than the {} MB allowed (operationsApi.importMaxSizeMB)",
        cap >> 20
    ))
}

/// A network failure in words (the error chain without the URL repeated).
fn reqwest_reason(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_string() } else if e.is_connect() { "could not connect".to_string() } else { "transfer failed".to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opshost-imports-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("root/sub")).expect("mkdir");
        dir
    }

    fn refused(r: Result<Source, ServiceError>) -> String {
        match r {
            Err(ServiceError::BadRequest(m)) => m,
            Err(other) => panic!("expected a bad request, got {other:?}"),
            Ok(_) => panic!("expected a refusal"),
        }
    }

    #[tokio::test]
    async fn files_are_confined_to_the_roots() {
        let dir = temp();
        let roots = ImportRoots::new(&[dir.join("root")]);
        std::fs::write(dir.join("root/sub/a.csv"), "id\n1\n").expect("write");
        std::fs::write(dir.join("outside.csv"), "secret\n").expect("write");
        std::os::unix::fs::symlink(dir.join("outside.csv"), dir.join("root/link.csv")).expect("symlink");
        std::os::unix::fs::symlink(dir.as_path(), dir.join("root/up")).expect("symlink");

        let mut src = roots.open(&dir.join("root/sub/a.csv").display().to_string()).expect("inside");
        assert_eq!(src.size(), Some(5));
        assert_eq!(src.read(3).await.expect("read"), b"id\n");
        assert_eq!(src.read(100).await.expect("read"), b"1\n");
        assert!(src.read(100).await.expect("read").is_empty());

        let p = |rel: &str| dir.join(rel).display().to_string();
        assert!(refused(roots.open(&p("root/link.csv"))).contains("is a symbolic link"));
        assert!(refused(roots.open(&p("root/up/outside.csv"))).contains("outside the folders"));
        assert!(refused(roots.open(&p("root/sub/../../outside.csv"))).contains("outside the folders"));
        assert_eq!(refused(roots.open(&p("root/none.csv"))), format!("No such file or directory {}", p("root/none.csv")));
        assert!(refused(roots.open(&p("root/sub"))).contains("not a regular file"));
        assert!(refused(roots.open("relative.csv")).contains("must be an absolute path"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn urls_must_be_http() {
        for bad in ["ftp://x/a.csv", "not a url", "file:///etc/passwd"] {
            assert_eq!(refused(open_url(bad, 1 << 20).await), "'csv_url' must be a valid url", "{bad}");
        }
    }
}
