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
        self.services.config.set(&changes).map_err(OpError::from)
    }
}
