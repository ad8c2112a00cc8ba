//! `log` capability: an operation's log lines, tagged with its name and the request id.

use super::CallState;
use crate::bindings::opshost::host::log::{Host, Level};

/// Guests cannot flood the log with one huge line.
const MAX_LINE: usize = 4096;

impl Host for CallState {
    fn write(&mut self, level: Level, message: String) {
        if !self.grants.has("log") {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("…");
        }
        let (op, id) = (&self.operation, &self.request_id);
        match level {
            Level::Trace => tracing::trace!(operation = %op, request_id = %id, "{message}"),
            Level::Debug => tracing::debug!(operation = %op, request_id = %id, "{message}"),
            Level::Info => tracing::info!(operation = %op, request_id = %id, "{message}"),
            Level::Warn => tracing::warn!(operation = %op, request_id = %id, "{message}"),
            Level::Error => tracing::error!(operation = %op, request_id = %id, "{message}"),
        }
    }
}
