//! `deploy_component`: checks a component sent as base64 and swaps it in, keeping the previous
//! versions for `rollback_component` (super_user). The host's loader checks it exactly as a
//! file dropped into `componentsRoot`: imports against grants, every name it claims, its
//! `describe` in a sandbox, and under `requireSigned` its signature; any failure changes nothing.
//!
//! Request: `{"operation": "deploy_component", "name": "my_op", "payload": "<base64 .wasm>",
//! "grants": ["storage"], "signature": "<base64 Ed25519>", "replicated": true}` (`grants`,
//! `signature` and `replicated` optional; `replicated`: every node of the cluster deploys it
//! too, each with the same checks) → `{"message": "Successfully
//! deployed: my_op version 2", "name": "my_op", "version": 2, "hash": "...", "size": 151234,
//! "operations": ["my_op"], "grants": ["storage"]}`. Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct DeployComponent;

#[derive(Deserialize)]
pub struct Request {
    name: String,
    payload: String,
    #[serde(default)]
    grants: Option<Vec<String>>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    replicated: Option<bool>,
}

impl Operation for DeployComponent {
    const NAME: &'static str = "deploy_component";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        components::deploy(&components::DeployRequest {
            name: req.name,
            payload: req.payload,
            grants: req.grants,
            signature: req.signature,
            replicated: req.replicated.unwrap_or(false),
        })
    }
}

opshost_guest::export_operation!(DeployComponent);
