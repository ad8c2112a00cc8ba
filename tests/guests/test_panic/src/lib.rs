//! Test guest `test_panic`: panics on every call, to prove a trap answers 500 and the server
//! keeps serving (and that the SDK's panic hook puts the message in the host log).

use opshost_guest::prelude::*;

pub struct TestPanic;

impl Operation for TestPanic {
    const NAME: &'static str = "test_panic";
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _request: Empty) -> Result<Value, Error> {
        panic!("boom from test_panic");
    }
}

opshost_guest::export_operation!(TestPanic);
