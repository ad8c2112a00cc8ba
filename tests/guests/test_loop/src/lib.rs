//! Test guest `test_loop`: loops forever, to prove the epoch deadline stops it.

use opshost_guest::prelude::*;

pub struct TestLoop;

impl Operation for TestLoop {
    const NAME: &'static str = "test_loop";
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _request: Empty) -> Result<Value, Error> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

opshost_guest::export_operation!(TestLoop);
