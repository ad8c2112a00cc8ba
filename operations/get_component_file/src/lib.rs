//! `get_component_file`: one kept version of a deployed component (super_user): its bytes as
//! base64 and its metadata.
//!
//! Request: `{"operation": "get_component_file", "name": "my_op", "version": 1}` (`version`
//! optional: the serving one) → `{"name": "my_op", "version": 1, "hash": "...", "size": 151234,
//! "grants": null, "signature": null, "payload": "<base64>"}`. Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct GetComponentFile;

#[derive(Deserialize)]
pub struct Request {
    name: String,
    #[serde(default)]
    version: Option<u64>,
}

impl Operation for GetComponentFile {
    const NAME: &'static str = "get_component_file";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        components::file(&req.name, req.version)
    }
}

opshost_guest::export_operation!(GetComponentFile);
