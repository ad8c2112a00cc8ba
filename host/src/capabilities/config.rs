//! `config` capability: the configuration file, through the config service.

use super::CallState;
use crate::bindings::opshost::host::config::Host;
use crate::bindings::OpError;

impl Host for CallState {
    fn get(&mut self) -> Result<String, OpError> {
        self.check("config")?;
        let text = self.services.config.file_json()?;
        self.trace.reads.push(crate::answers::Read::Config(text.clone()));
        Ok(text.to_string())
    }

    fn set(&mut self, changes: Vec<(String, String)>) -> Result<(), OpError> {
        self.check("config")?;
        self.services.config.set(&changes).map_err(OpError::from)?;
        // Written here first; with clustering on, the cluster-wide keys then go to every node
        // (a 503 if NATS does not take them in time: the local change stays, as for writes).
        self.services.cluster.publish_configuration(&changes, &self.caller.username).map_err(OpError::from)
    }
}
