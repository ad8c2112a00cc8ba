//! `log` capability: an operation's log lines, tagged with its name and the request id.

use super::{blocking, CallState};
use crate::bindings::opshost::host::log::{Host, Level, LogQuery};
use crate::bindings::OpError;
use crate::services::logs;

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

    async fn read(&mut self, query: LogQuery) -> Result<String, OpError> {
        self.check("log")?;
        if !self.caller.super_user {
            return Err(OpError::Forbidden("the server log is restricted to 'super_user' roles".into()));
        }
        let root = self.services.config.current().map_err(|e| OpError::Internal(format!("{e:#}")))?.log.root.clone();
        let query = logs::LogQuery {
            start: usize::try_from(query.start).unwrap_or(usize::MAX),
            limit: usize::try_from(query.limit).unwrap_or(usize::MAX).min(logs::MAX_LIMIT),
            level: query.level,
            from: query.since,
            until: query.until,
            descending: query.descending,
            filter: query.filter,
        };
        let entries = blocking("log read", move || logs::read_log(&root, &query)).await?;
        Ok(serde_json::Value::Array(entries).to_string())
    }
}
