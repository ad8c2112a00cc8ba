//! `filesystem` capability: files written only inside `operationsApi.exportRoots`, through a
//! writer resource that renames into place on finish.

use super::CallState;
use crate::bindings::opshost::host::filesystem::{Host, HostWriter};
use crate::bindings::OpError;
use crate::services::files::Writer;
use wasmtime::component::Resource;

impl Host for CallState {
    fn check_folder(&mut self, folder: String) -> Result<String, OpError> {
        self.check("filesystem")?;
        let roots = self.services.export_roots();
        Ok(roots.check_folder(&folder)?.to_string_lossy().into_owned())
    }

    fn create(&mut self, folder: String, name: String) -> Result<Resource<Writer>, OpError> {
        self.check("filesystem")?;
        let writer = self.services.export_roots().create(&folder, &name)?;
        self.table.push(writer).map_err(|e| OpError::Internal(format!("too many open files: {e}")))
    }
}

impl HostWriter for CallState {
    fn write(&mut self, writer: Resource<Writer>, data: Vec<u8>) -> Result<(), OpError> {
        let writer = self.table.get_mut(&writer).map_err(|_| OpError::BadRequest("unknown writer".into()))?;
        Ok(writer.write(&data)?)
    }

    fn finish(&mut self, writer: Resource<Writer>) -> Result<String, OpError> {
        let writer = self.table.get_mut(&writer).map_err(|_| OpError::BadRequest("unknown writer".into()))?;
        Ok(writer.finish()?.to_string_lossy().into_owned())
    }

    fn drop(&mut self, writer: Resource<Writer>) -> wasmtime::Result<()> {
        // Dropping an unfinished writer removes its temporary file.
        self.table.delete(writer)?;
        Ok(())
    }
}
