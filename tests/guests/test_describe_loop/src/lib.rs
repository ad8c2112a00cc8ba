//! Test guest `test_describe_loop`: loops forever in `describe`, to prove `describe` has a short
//! deadline of its own (a reload is not held up for `callTimeout`). The SDK's export macro always
//! describes successfully, so the exports are written by hand over the raw bindings.

use opshost_guest::bindings::opshost::host::types::OperationInfo;
use opshost_guest::{Context, Error};

struct DescribeLoop;

impl opshost_guest::bindings::Guest for DescribeLoop {
    fn describe() -> OperationInfo {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn handle(_ctx: Context, _request: String) -> Result<String, Error> {
        Ok("{\"never\":\"reached\"}".to_string())
    }
}

opshost_guest::bindings::export!(DescribeLoop with_types_in opshost_guest::bindings);
