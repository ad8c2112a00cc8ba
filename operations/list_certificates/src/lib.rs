//! `list_certificates`: every stored certificate with its parsed details, sorted by name, in
//! HarperDB's shape. Never includes private keys.
//!
//! Request: `{"operation": "list_certificates"}`. Capabilities: `certs`.
//!
//! The host encodes the answer once per version of the certificate store (its
//! `certs/answer.rs`); this hot path only passes the text through instead of receiving every
//! PEM as a record and encoding it again on each call.

use opshost_guest::prelude::*;
use serde_json::value::RawValue;

pub struct ListCertificates;

impl Operation for ListCertificates {
    const NAME: &'static str = "list_certificates";
    type Request = Empty;
    type Response = Box<RawValue>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Box<RawValue>, Error> {
        certs::list_raw()
    }
}

opshost_guest::export_operation!(ListCertificates);
