//! `config` capability: the configuration file, through the config service.

use super::CallState;
use crate::bindings::opshost::host::config::Host;
use crate::bindings::OpError;

impl Host for CallState {
    fn get(&mut self) -> Result<String, OpError> {
        self.check("config")?;
        self.services.config.file_json().map(|s| s.to_string()).map_err(OpError::from)
    }

    fn set(&mut self, changes: Vec<(String, String)>) -> Result<(), OpError> {
        self.check("config")?;
        self.services.config.set(&changes).map_err(OpError::from)?;
        // Written here first; with clustering on, the cluster-wide keys then go to every node
        // (a 503 if NATS does not take them in time: the local change stays, as for writes).
        self.services.cluster.publish_configuration(&changes, &self.caller.username).map_err(OpError::from)
    }
}
