//! Object uploads to S3 or an S3-compatible store over opendal, with the caller's credentials.
//! Nothing here logs or keeps the credentials beyond the one upload.

use super::ServiceError;
use opendal::services::S3;
use opendal::Operator;

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

/// Installs the process-wide HTTP transport opendal uses (reqwest over rustls with ring).
pub fn install_transport() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    opendal_http_transport_reqwest::install_default();
}

/// An upload in progress.
pub struct Upload {
    writer: Option<opendal::Writer>,
    location: String,
}

impl S3Target {
    fn operator(&self) -> Result<Operator, ServiceError> {
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

fn describe(e: &opendal::Error) -> String {
    let text = e.message().trim();
    let mut text = if text.is_empty() { e.kind().to_string() } else { text.replace('\n', " ") };
    // The store's answer is quoted only as far as it helps (the S3 error code and message).
    if let Some((cut, _)) = text.char_indices().nth(300) {
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{} ({})", text, e.kind())
}
