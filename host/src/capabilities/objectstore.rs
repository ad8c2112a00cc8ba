//! `objectstore` capability: streamed uploads to S3-compatible stores with the caller's
//! credentials (never logged, never stored).

use super::CallState;
use crate::bindings::opshost::host::objectstore::{Host, HostUpload, S3Target};
use crate::bindings::OpError;
use crate::services::objectstore::{self, Upload};
use wasmtime::component::Resource;

impl Host for CallState {
    async fn put(&mut self, target: S3Target) -> Result<Resource<Upload>, OpError> {
        self.check("objectstore")?;
        // A custom endpoint makes the server send requests wherever it points (and report what
        // came back): only a super_user may choose one. Everyone else writes to AWS.
        if target.endpoint.as_deref().is_some_and(|e| !e.is_empty()) && !self.caller.super_user {
            return Err(OpError::Forbidden("only a super_user may set 's3.endpoint'".into()));
        }
        let target = objectstore::S3Target {
            access_key_id: target.access_key_id,
            secret_access_key: target.secret_access_key,
            region: target.region,
            bucket: target.bucket,
            key: target.key,
            endpoint: target.endpoint.filter(|e| !e.is_empty()),
        };
        let upload = target.start().await?;
        self.table.push(upload).map_err(|e| OpError::Internal(format!("too many uploads: {e}")))
    }
}

impl HostUpload for CallState {
    async fn write(&mut self, upload: Resource<Upload>, data: Vec<u8>) -> Result<(), OpError> {
        let upload = self.table.get_mut(&upload).map_err(|_| OpError::BadRequest("unknown upload".into()))?;
        Ok(upload.write(data).await?)
    }

    async fn finish(&mut self, upload: Resource<Upload>) -> Result<String, OpError> {
        let upload = self.table.get_mut(&upload).map_err(|_| OpError::BadRequest("unknown upload".into()))?;
        Ok(upload.finish().await?)
    }

    fn drop(&mut self, upload: Resource<Upload>) -> wasmtime::Result<()> {
        let mut upload = self.table.delete(upload)?;
        // An unfinished multipart upload is aborted so the store keeps no orphaned parts.
        tokio::spawn(async move { upload.abort().await });
        Ok(())
    }
}
