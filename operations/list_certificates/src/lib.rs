//! `list_certificates`: every stored certificate with its parsed details, sorted by name, in
//! HarperDB's shape. Never includes private keys.
//!
//! Request: `{"operation": "list_certificates"}`. Capabilities: `certs`.

use opshost_guest::certs::Certificate;
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct ListCertificates;

impl Operation for ListCertificates {
    const NAME: &'static str = "list_certificates";
    type Request = Empty;
    type Response = Vec<Value>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Vec<Value>, Error> {
        Ok(certs::list()?.iter().map(entry).collect())
    }
}

opshost_guest::export_operation!(ListCertificates);

/// HarperDB's entry: optional keys are absent, not null.
fn entry(c: &Certificate) -> Value {
    let mut details = Map::new();
    details.insert("issuer".into(), json!(c.details.issuer));
    details.insert("subject".into(), json!(c.details.subject));
    if let Some(san) = &c.details.subject_alt_name {
        details.insert("subject_alt_name".into(), json!(san));
    }
    details.insert("serial_number".into(), json!(c.details.serial_number));
    details.insert("valid_from".into(), json!(c.details.valid_from));
    details.insert("valid_to".into(), json!(c.details.valid_to));
    let mut out = Map::new();
    out.insert("name".into(), json!(c.name));
    out.insert("certificate".into(), json!(c.certificate));
    if let Some(key) = &c.private_key_name {
        out.insert("private_key_name".into(), json!(key));
    }
    out.insert("is_authority".into(), json!(c.is_authority));
    out.insert("details".into(), Value::Object(details));
    if let Some(s) = c.is_self_signed {
        out.insert("is_self_signed".into(), json!(s));
    }
    if let Some(uses) = &c.uses {
        out.insert("uses".into(), json!(uses));
    }
    out.insert("__updatedtime__".into(), json!(c.updated));
    Value::Object(out)
}
