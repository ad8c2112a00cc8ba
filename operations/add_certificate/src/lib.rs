//! `add_certificate`: stores a certificate (and its private key, which must match) under a
//! name; re-adding a name replaces it.
//!
//! Request: `{"operation": "add_certificate", "name": "my-cert", "certificate": "-----BEGIN
//! CERTIFICATE-----...", "is_authority": false, "private_key": "-----BEGIN PRIVATE KEY-----..."}`.
//! Capabilities: `certs`.

use opshost_guest::prelude::*;

pub struct AddCertificate;

#[derive(Deserialize)]
pub struct Request {
    name: String,
    certificate: String,
    is_authority: bool,
    private_key: Option<String>,
    hosts: Option<Vec<String>>,
}

impl Operation for AddCertificate {
    const NAME: &'static str = "add_certificate";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        certs::add(&req.name, &req.certificate, req.is_authority, req.private_key.as_deref(), req.hosts.as_deref())?;
        Ok(json!({ "message": format!("Successfully added certificate: {}", req.name) }))
    }
}

opshost_guest::export_operation!(AddCertificate);
