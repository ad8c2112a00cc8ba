//! `packages` capability: `npm install` in project folders under `componentsRoot`.

use super::CallState;
use crate::bindings::opshost::host::packages::{Host, NpmResult};
use crate::bindings::OpError;

impl Host for CallState {
    async fn npm_install(&mut self, project: String, dry_run: bool) -> Result<NpmResult, OpError> {
        self.check("packages")?;
        // The settings in effect (no file read or name resolution on this path); the install
        // is bounded by callTimeout like the call it runs in.
        let settings = self.services.config.current().map_err(|e| OpError::Internal(format!("reading the configuration: {e:#}")))?;
        let (output, error) =
            crate::services::packages::npm_install(&settings.components_root, &project, dry_run, settings.call_timeout).await?;
        Ok(NpmResult { output, error })
    }
}
