//! `remove_certificate`: deletes a stored certificate and its private key file.
//!
//! Request: `{"operation": "remove_certificate", "name": "my-cert"}`. Capabilities: `certs`.

use opshost_guest::prelude::*;

pub struct RemoveCertificate;

#[derive(Deserialize)]
pub struct Request {
    name: String,
}

impl Operation for RemoveCertificate {
    const NAME: &'static str = "remove_certificate";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        certs::remove(&req.name)?;
        Ok(json!({ "message": format!("Successfully removed {}", req.name) }))
    }
}

opshost_guest::export_operation!(RemoveCertificate);
