//! `packages` capability: `npm install` in project folders under `componentsRoot`.

use super::CallState;
use crate::bindings::opshost::host::packages::{Host, NpmResult};
use crate::bindings::OpError;

impl Host for CallState {
    async fn npm_install(&mut self, project: String, dry_run: bool) -> Result<NpmResult, OpError> {
        self.check("packages")?;
        let root = self.services.config.settings().map_err(|e| OpError::Internal(format!("reading the configuration: {e:#}")))?.components_root;
        let (output, error) = crate::services::packages::npm_install(&root, &project, dry_run).await?;
        Ok(NpmResult { output, error })
    }
}
