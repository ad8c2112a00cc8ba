//! `sources` capability: the inputs of bulk loads (a file under `operationsApi.importRoots`, an
//! http(s) URL, an S3 object) as streams the guest reads in bounded chunks.

use super::CallState;
use crate::bindings::opshost::host::objectstore::S3Target;
use crate::bindings::opshost::host::sources::{Host, HostSource};
use crate::bindings::OpError;
use crate::services::imports::{self, ImportRoots, Source};
use crate::services::objectstore;
use wasmtime::component::Resource;

impl Host for CallState {
    fn open_file(&mut self, path: String) -> Result<Resource<Source>, OpError> {
        self.check("sources")?;
        let settings = self.services.config.current().map_err(|e| OpError::Internal(format!("reading the settings: {e:#}")))?;
        let source = ImportRoots::new(&settings.import_roots).open(&path)?;
        self.table.push(source).map_err(|e| OpError::Internal(format!("too many open sources: {e}")))
    }

    async fn open_url(&mut self, url: String) -> Result<Resource<Source>, OpError> {
        self.check("sources")?;
        let settings = self.services.config.current().map_err(|e| OpError::Internal(format!("reading the settings: {e:#}")))?;
        let source = imports::open_url(&url, settings.import_max_bytes).await?;
        self.table.push(source).map_err(|e| OpError::Internal(format!("too many open sources: {e}")))
    }

    async fn open_s3(&mut self, target: S3Target) -> Result<Resource<Source>, OpError> {
        self.check("sources")?;
        // A custom endpoint makes the server send requests wherever it points: super_user only,
        // as for uploads.
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
        let source = imports::open_s3(&target).await?;
        self.table.push(source).map_err(|e| OpError::Internal(format!("too many open sources: {e}")))
    }
}

impl HostSource for CallState {
    async fn read(&mut self, source: Resource<Source>, max: u32) -> Result<Vec<u8>, OpError> {
        let source = self.table.get_mut(&source).map_err(|_| OpError::BadRequest("unknown source".into()))?;
        Ok(source.read(max as usize).await?)
    }

    fn size(&mut self, source: Resource<Source>) -> Option<u64> {
        self.table.get(&source).ok().and_then(Source::size)
    }

    fn drop(&mut self, source: Resource<Source>) -> wasmtime::Result<()> {
        self.table.delete(source)?;
        Ok(())
    }
}
