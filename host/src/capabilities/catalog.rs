//! `catalog` capability: the operation catalog as `list_operations` shows it.

use super::CallState;
use crate::bindings::opshost::host::catalog::Host;

impl Host for CallState {
    fn operations(&mut self) -> Vec<String> {
        if self.check("catalog").is_err() {
            return Vec::new();
        }
        self.services.catalog.to_json().iter().map(|v| v.to_string()).collect()
    }
}
