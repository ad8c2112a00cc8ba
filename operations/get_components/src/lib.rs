//! `get_components`: the components deployed through the operations API (super_user), each
//! with its serving version, hash, size, grants, deployer, deploy time, status and kept versions.
//!
//! Request: `{"operation": "get_components"}` → `[{"name": "my_op", "version": 2, "hash": "...",
//! "size": 151234, "grants": null, "signed": false, "deployed_by": "admin", "deployed_at":
//! 1764211200000, "status": "serving", "versions": [{"version": 1, ...}, {"version": 2, ...}]}]`.
//! Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct GetComponents;

impl Operation for GetComponents {
    const NAME: &'static str = "get_components";
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Value, Error> {
        components::list()
    }
}

opshost_guest::export_operation!(GetComponents);
