//! `control` capability: asks the host to restart in place after the call answers.

use super::CallState;
use crate::bindings::opshost::host::control::Host;
use crate::bindings::OpError;

impl Host for CallState {
    fn restart(&mut self) -> Result<(), OpError> {
        self.check("control")?;
        // Acted on by the HTTP layer once the response is on its way, so the caller gets it.
        self.effects.restart = true;
        Ok(())
    }
}
