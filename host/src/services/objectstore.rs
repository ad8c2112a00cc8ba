//! Object uploads to S3 or an S3-compatible store over opendal, with the caller's credentials.
//! Nothing here logs or keeps the credentials beyond the one upload.

use super::ServiceError;
use opendal::services::S3;
use opendal::Operator;
use std::time::Duration;

/// Where an object goes, and with whose keys. `Debug` leaves the secret out.
pub struct S3Target {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub bucket: String,
    pub key: String,
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target").field("bucket", &self.bucket).field("key", &self.key).field("region", &self.region).finish_non_exhaustive()
    }
}

/// Parts above this size go up as a multipart upload; the whole object is never in memory.
const PART_SIZE: usize = 8 << 20;

/// Time to open a TCP (and TLS) connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of an answer: a store that accepts and then says nothing
/// (a tarpit) fails the request instead of holding a job slot forever.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest single request (one listing, one 8 MiB part at a slow but working link).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Installs the process-wide HTTP transport opendal uses: reqwest over rustls with ring, with
/// connect, read and per-request timeouts (opendal's default client has none). The job's
/// `jobTimeout` bounds the whole upload on top of these.
pub fn install_transport() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build();
    match client {
        Ok(client) => opendal::HttpTransporter::install_default(opendal_http_transport_reqwest::ReqwestTransport::new(client)),
        Err(e) => {
            tracing::error!("could not build the S3 HTTP client with timeouts ({e}); S3 calls are bounded by jobTimeout only");
            opendal_http_transport_reqwest::install_default();
        }
    }
}

/// `s3.region`: a region name such as `us-east-1`, never a URL. opendal puts it verbatim into
/// `https://s3.{region}.amazonaws.com`, so anything else could point the request at any host.
pub fn check_region(region: &str) -> Result<(), ServiceError> {
    let ok = !region.is_empty() && region.len() <= 64 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(format!("s3.region '{region}' must be a region name such as 'us-east-1' (a-z, 0-9 and '-')")))
    }
}

/// `s3.bucket` against S3's bucket naming rules: 3 to 63 lowercase letters, digits, '.' and
/// '-', starting and ending with a letter or digit, no '..', not an IP address.
pub fn check_bucket(bucket: &str) -> Result<(), ServiceError> {
    let b = bucket.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge(c) || c == b'.' || c == b'-')
        && b.first().is_some_and(|&c| edge(c))
        && b.last().is_some_and(|&c| edge(c))
        && !bucket.contains("..")
        && bucket.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(format!(
            "s3.bucket '{bucket}' is not a valid bucket name (3-63 characters: a-z, 0-9, '.' and '-', starting and ending with a letter or digit)"
        )))
    }
}

/// An upload in progress.
pub struct Upload {
    writer: Option<opendal::Writer>,
    location: String,
}

impl S3Target {
    pub(crate) fn operator(&self) -> Result<Operator, ServiceError> {
        // Checked before any client exists: these two end up in the URL.
        check_region(&self.region)?;
        check_bucket(&self.bucket)?;
        // Only the request's credentials: no environment, profile files or instance metadata.
        let mut builder = S3::default()
            .bucket(&self.bucket)
            .region(&self.region)
            .access_key_id(&self.access_key_id)
            .secret_access_key(&self.secret_access_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(ServiceError::BadRequest(format!("s3.endpoint '{endpoint}' must start with http:// or https://")));
            }
            builder = builder.endpoint(endpoint);
        }
        Operator::new(builder).map_err(|e| ServiceError::BadRequest(format!("invalid S3 settings: {}", describe(&e))))
    }

    pub async fn start(&self) -> Result<Upload, ServiceError> {
        let op = self.operator()?;
        // Ask for one listing entry first: a missing bucket or refused credentials fail here,
        // clearly, before any data moves (some S3-compatible stores would create the bucket
        // on PUT).
        let first = async {
            use futures::StreamExt;
            let mut lister = op.lister_with("/").limit(1).await?;
            lister.next().await.transpose()
        };
        match first.await {
            Ok(_) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                return Err(ServiceError::BadRequest(format!("S3 bucket '{}' does not exist ({})", self.bucket, describe(&e))));
            }
            Err(e) => return Err(failed(e)),
        }
        let writer = op.writer_with(&self.key).chunk(PART_SIZE).await.map_err(failed)?;
        Ok(Upload { writer: Some(writer), location: format!("s3://{}/{}", self.bucket, self.key) })
    }
}

impl Upload {
    pub async fn write(&mut self, data: Vec<u8>) -> Result<(), ServiceError> {
        let writer = self.writer.as_mut().ok_or_else(|| ServiceError::BadRequest("the upload is already finished".into()))?;
        writer.write(data).await.map_err(failed)
    }

    pub async fn finish(&mut self) -> Result<String, ServiceError> {
        let mut writer = self.writer.take().ok_or_else(|| ServiceError::BadRequest("the upload is already finished".into()))?;
        writer.close().await.map_err(failed)?;
        Ok(self.location.clone())
    }

    /// Aborts an unfinished upload (so no multipart parts are left behind).
    pub async fn abort(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.abort().await;
        }
    }
}

/// The store's answer as the job's error text: opendal's message names the S3 error code
/// (`InvalidAccessKeyId`, `NoSuchBucket`, `SignatureDoesNotMatch`, ...) and never the secret.
fn failed(e: opendal::Error) -> ServiceError {
    ServiceError::BadRequest(format!("S3 upload failed: {}", describe(&e)))
}

pub(crate) fn describe(e: &opendal::Error) -> String {
    let text = e.message().trim();
    let mut text = if text.is_empty() { e.kind().to_string() } else { text.replace('\n', " ") };
    // The store's answer is quoted only as far as it helps (the S3 error code and message).
    if let Some((cut, _)) = text.char_indices().nth(300) {
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{} ({})", text, e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_and_bucket_are_names_not_urls() {
        for region in ["us-east-1", "eu-central-1", "r"] {
            assert!(check_region(region).is_ok(), "{region}");
        }
        for region in ["", "x@127.0.0.1:8443/", "evil.example/", "US-EAST-1", "a/b", "a.b", "a b", "a?b"] {
            assert!(matches!(check_region(region), Err(ServiceError::BadRequest(m)) if m.contains("s3.region")), "{region}");
        }
        for bucket in ["abc", "my-bucket.logs", "opshost-123-formats", "a1b"] {
            assert!(check_bucket(bucket).is_ok(), "{bucket}");
        }
        for bucket in ["b", "ab", "-abc", "abc-", "a..b", "ABC", "a_b", "192.168.1.1", "a/b", "x@y:1", &"a".repeat(64)] {
            assert!(matches!(check_bucket(bucket), Err(ServiceError::BadRequest(m)) if m.contains("s3.bucket")), "{bucket}");
        }
    }
}
