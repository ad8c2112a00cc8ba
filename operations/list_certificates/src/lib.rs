//! `list_certificates`: every stored certificate with its parsed details, sorted by name, in
//! HarperDB's shape. Never includes private keys.
//!
//! Request: `{"operation": "list_certificates"}`. Capabilities: `certs`.

use opshost_guest::certs::Certificate;
use opshost_guest::prelude::*;

pub struct ListCertificates;

impl Operation for ListCertificates {
    const NAME: &'static str = "list_certificates";
    type Request = Empty;
    type Response = Vec<Entry>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Vec<Entry>, Error> {
        Ok(certs::list()?.into_iter().map(Entry::from).collect())
    }
}

opshost_guest::export_operation!(ListCertificates);

/// HarperDB's entry: optional keys are absent, not null. Serialized straight from a struct
/// (no intermediate JSON maps): this operation is a hot path.
#[derive(Serialize)]
pub struct Entry {
    name: String,
    certificate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_name: Option<String>,
    is_authority: bool,
    details: Details,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uses: Option<Vec<String>>,
    #[serde(rename = "__updatedtime__")]
    updated: u64,
}

#[derive(Serialize)]
pub struct Details {
    issuer: String,
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_alt_name: Option<String>,
    serial_number: String,
    valid_from: String,
    valid_to: String,
}

impl From<Certificate> for Entry {
    fn from(c: Certificate) -> Self {
        Entry {
            name: c.name,
            certificate: c.certificate,
            private_key_name: c.private_key_name,
            is_authority: c.is_authority,
            details: Details {
                issuer: c.details.issuer,
                subject: c.details.subject,
                subject_alt_name: c.details.subject_alt_name,
                serial_number: c.details.serial_number,
                valid_from: c.details.valid_from,
                valid_to: c.details.valid_to,
            },
            is_self_signed: c.is_self_signed,
            uses: c.uses,
            updated: c.updated,
        }
    }
}
