//! `list_operations`: every component file the host knows (built-in and from
//! `componentsRoot`), with its version, source, hash, grants, load status, last load error and
//! call statistics, as the host's catalog reports them (passed through unchanged).
//!
//! Request: `{"operation": "list_operations"}` → `[{"name": "get_configuration", "aliases": [],
//! "version": "0.1.0", "source": ".../get_configuration.wasm", "builtin": true, "hash": "...",
//! "grants": ["config", "log", "types"], "loaded_at": 1764211200000, "status": "serving", "last_error": null,
//! "stats": {"calls": 3, "errors": 0, "latency_ms": {"p50": 0.1, "p90": 0.2, "p99": 0.4}}}, ...]`.
//! Capabilities: `catalog`.

use opshost_guest::prelude::*;

pub struct ListOperations;

impl Operation for ListOperations {
    const NAME: &'static str = "list_operations";
    type Request = Empty;
    type Response = Vec<Value>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Vec<Value>, Error> {
        catalog::operations()
    }
}

opshost_guest::export_operation!(ListOperations);
