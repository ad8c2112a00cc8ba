//! `package_component`: a deployed component as a request body ready to deploy elsewhere
//! (super_user): its name, bytes (base64), grants and signature.
//!
//! Request: `{"operation": "package_component", "name": "my_op", "version": 1}` (`version`
//! optional) → `{"operation": "deploy_component", "name": "my_op", "payload": "<base64>",
//! "grants": null, "signature": null, "version": 1, "hash": "..."}`. Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct PackageComponent;

#[derive(Deserialize)]
pub struct Request {
    name: String,
    #[serde(default)]
    version: Option<u64>,
}

impl Operation for PackageComponent {
    const NAME: &'static str = "package_component";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let file = components::file(&req.name, req.version)?;
        Ok(json!({
            "operation": "deploy_component",
            "name": file["name"],
            "payload": file["payload"],
            "grants": file["grants"],
            "signature": file["signature"],
            "version": file["version"],
            "hash": file["hash"],
        }))
    }
}

opshost_guest::export_operation!(PackageComponent);
