//! `get_configuration`: the configuration file as nested JSON, exactly as the file says.
//!
//! Request: `{"operation": "get_configuration"}`. Capabilities: `config`.

use opshost_guest::prelude::*;
use serde_json::value::RawValue;

pub struct GetConfiguration;

impl Operation for GetConfiguration {
    const NAME: &'static str = "get_configuration";
    type Request = Empty;
    type Response = Box<RawValue>;

    fn handle(_ctx: &Context, _request: Empty) -> Result<Box<RawValue>, Error> {
        config::get_raw()
    }
}

opshost_guest::export_operation!(GetConfiguration);
