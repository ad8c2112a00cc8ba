//! Test guest `hello_v2`: version 2 of the third-party operation `test_hello`, used to prove
//! that replacing a component file and restarting serves the new version.

use opshost_guest::prelude::*;

pub struct Hello;

impl Operation for Hello {
    const NAME: &'static str = "test_hello";
    const SUPER_USER_ONLY: bool = false;
    type Request = Empty;
    type Response = Value;

    fn handle(ctx: &Context, _request: Empty) -> Result<Value, Error> {
        Ok(json!({ "version": 2, "user": ctx.username }))
    }
}

opshost_guest::export_operation!(Hello);
