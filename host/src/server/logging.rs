//! The tracing subscriber: HarperDB's level names, hdb.log and stderr, reloadable on restart.

use tracing_subscriber::{reload, EnvFilter};

pub(super) type LogHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// HarperDB's level names mapped onto tracing's; `RUST_LOG` wins when set.
pub(super) fn filter_for(level: &str) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_env("RUST_LOG") {
        return filter;
    }
    let level = match level {
        "notify" | "info" => "info",
        "fatal" | "error" => "error",
        "warn" => "warn",
        "debug" => "debug",
        "trace" => "trace",
        _ => "warn",
    };
    EnvFilter::new(format!("opshost={level},wasmtime=warn"))
}

pub(super) fn init_logging(level: &str) -> Option<LogHandle> {
    use tracing_subscriber::prelude::*;
    let (filter, handle) = reload::Layer::new(filter_for(level));
    // hdb.log and stderr (services/logs.rs), as `logging.*` says once configured.
    tracing_subscriber::registry().with(filter).with(crate::services::logs::LogLayer).try_init().ok().map(|_| handle)
}
