//! Test guest `test_describe_trap`: traps while describing itself, to prove the host refuses
//! such a component with the reason in the catalog and keeps serving. The SDK's export macro
//! always describes successfully, so the exports are written by hand over the raw bindings.

use opshost_guest::bindings::opshost::host::types::OperationInfo;
use opshost_guest::{Context, Error};

struct DescribeTrap;

impl opshost_guest::bindings::Guest for DescribeTrap {
    fn describe() -> OperationInfo {
        // A panic aborts, which traps (`unreachable`) in the host.
        panic!("test_describe_trap refuses to describe itself");
    }

    fn handle(_ctx: Context, _request: String) -> Result<String, Error> {
        Ok("{\"never\":\"reached\"}".to_string())
    }
}

opshost_guest::bindings::export!(DescribeTrap with_types_in opshost_guest::bindings);
