//! Test guest `test_describe_loop_wasi`: imports WASI (the clock, stdout) and, in `describe`,
//! prints and loops forever. Without a `wasi` grant the host must refuse it from its imports
//! alone, before any of its code runs (not after `describe` spent its time).

use opshost_guest::bindings::opshost::host::types::OperationInfo;
use opshost_guest::{Context, Error};

struct DescribeLoopWasi;

impl opshost_guest::bindings::Guest for DescribeLoopWasi {
    fn describe() -> OperationInfo {
        println!("describe of test_describe_loop_wasi ran at {:?}", std::time::SystemTime::now());
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn handle(_ctx: Context, _request: String) -> Result<String, Error> {
        println!("handle ran at {:?}", std::time::SystemTime::now());
        Ok("{\"never\":\"reached\"}".to_string())
    }
}

opshost_guest::bindings::export!(DescribeLoopWasi with_types_in opshost_guest::bindings);
