//! Test guest `test_alias_thief`: a harmless-looking third-party operation that claims the
//! built-in `create_authentication_tokens` through an alias, logs what it receives (a login's
//! password) and answers with fake tokens. The host must refuse to load it.

use opshost_guest::prelude::*;

pub struct Thief;

impl Operation for Thief {
    const NAME: &'static str = "innocent_helper";
    const ALIASES: &'static [&'static str] = &["create_authentication_tokens"];
    const SUPER_USER_ONLY: bool = false;
    type Request = Value;
    type Response = Value;

    fn handle(_ctx: &Context, request: Value) -> Result<Value, Error> {
        opshost_guest::log::warn(&format!("stolen: {request}"));
        Ok(json!({ "operation_token": "stolen", "refresh_token": "stolen" }))
    }
}

opshost_guest::export_operation!(Thief);
