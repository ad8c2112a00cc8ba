//! Test guest `test_memory`: allocates without bound, to prove the memory limit stops it.

use opshost_guest::prelude::*;

pub struct TestMemory;

impl Operation for TestMemory {
    const NAME: &'static str = "test_memory";
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _request: Empty) -> Result<Value, Error> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

opshost_guest::export_operation!(TestMemory);
