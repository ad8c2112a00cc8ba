//! Test guest `test_wasi`: uses std features that need WASI, to prove a wasm32-wasip1 guest
//! (adapted to WASI preview 2) runs under the host's locked-down WASI: the wall clock
//! (`SystemTime::now`, which traps on wasm32-unknown-unknown) and stdout (`println!`, which the
//! host writes to its log).
//!
//! Request: `{"operation": "test_wasi"}` → `{"now_ms": 1764211200000, "wasi": true}`, and the
//! log line `stdout: hello from wasi`. Capabilities: `wasi` (must be granted).

use opshost_guest::prelude::*;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct TestWasi;

impl Operation for TestWasi {
    const NAME: &'static str = "test_wasi";
    const SUPER_USER_ONLY: bool = false;
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _request: Empty) -> Result<Value, Error> {
        println!("hello from wasi");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| Error::Internal(format!("the clock is before 1970: {e}")))?;
        Ok(json!({ "now_ms": now.as_millis() as u64, "wasi": true }))
    }
}

opshost_guest::export_operation!(TestWasi);
