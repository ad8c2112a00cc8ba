//! `certs` capability: the certificate store, through the certificate service. Private keys
//! go in (add) but never come out.

use super::{blocking, CallState};
use crate::bindings::opshost::host::certs::{Certificate, Details, Host};
use crate::bindings::OpError;

impl Host for CallState {
    fn list_all(&mut self) -> Result<Vec<Certificate>, OpError> {
        self.check("certs")?;
        let all = self.services.certs.list()?;
        Ok(all
            .iter()
            .map(|c| Certificate {
                name: c.name.clone(),
                certificate: c.certificate.clone(),
                private_key_name: c.private_key_name.clone(),
                is_authority: c.is_authority,
                details: Details {
                    issuer: c.details.issuer.clone(),
                    subject: c.details.subject.clone(),
                    subject_alt_name: c.details.subject_alt_name.clone(),
                    serial_number: c.details.serial_number.clone(),
                    valid_from: c.details.valid_from.clone(),
                    valid_to: c.details.valid_to.clone(),
                },
                is_self_signed: c.is_self_signed,
                uses: c.uses.clone(),
                updated: c.updated,
            })
            .collect())
    }

    fn list_json(&mut self) -> Result<String, OpError> {
        self.check("certs")?;
        let text = self.services.certs.list_json()?;
        self.trace.reads.push(crate::answers::Read::Certs(text.clone()));
        Ok(text.to_string())
    }

    async fn add(
        &mut self,
        name: String,
        certificate: String,
        is_authority: bool,
        private_key: Option<String>,
        _hosts: Option<Vec<String>>,
    ) -> Result<(), OpError> {
        self.check("certs")?;
        // Writes key files and a record, each with fsync: on a blocking thread, so a slow disk
        // does not stall one of the async workers every other request shares.
        let certs = self.services.certs.clone();
        blocking("certificate store", move || certs.add(&name, &certificate, is_authority, private_key.as_deref())).await.map(drop)
    }

    async fn remove(&mut self, name: String) -> Result<(), OpError> {
        self.check("certs")?;
        let certs = self.services.certs.clone();
        blocking("certificate store", move || certs.remove(&name)).await.map(drop)
    }
}

