//! `control` capability: asks the host to restart in place, or to restart one service, after
//! the call answers.

use super::CallState;
use crate::bindings::opshost::host::control::Host;
use crate::bindings::OpError;

/// The services `restart_service` accepts (HarperDB's list, case-sensitive).
pub const SERVICES: [&str; 6] = ["http_workers", "http", "clustering_config", "clustering", "harperdb", "custom_functions"];

impl Host for CallState {
    fn restart(&mut self) -> Result<(), OpError> {
        self.check("control")?;
        // Acted on by the HTTP layer once the response is on its way, so the caller gets it.
        self.effects.restart = true;
        Ok(())
    }

    fn restart_service(&mut self, service: String) -> Result<(), OpError> {
        self.check("control")?;
        if !SERVICES.contains(&service.as_str()) {
            return Err(OpError::BadRequest("Invalid service".into()));
        }
        self.effects.restart_service = Some(service);
        Ok(())
    }
}
