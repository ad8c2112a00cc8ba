//! The `list_certificates` answer, encoded once per version of the certificate store and
//! handed out as one JSON text (issue 18): the operation used to receive every PEM as a WIT
//! record and encode them again on each call. The cached text is keyed by the parsed list it
//! was made from, so whatever invalidates that list (an add, a remove) invalidates it too.

use super::{CertRecord, Details};
use crate::services::ServiceError;
use parking_lot::RwLock;
use serde::Serialize;
use std::sync::Arc;

/// The last answer and the list it was encoded from.
#[derive(Default)]
pub struct AnswerCache(RwLock<Option<(Arc<Vec<CertRecord>>, Arc<str>)>>);

impl AnswerCache {
    /// The answer for `records`: the cached text when it was made from this very list.
    pub fn get(&self, records: &Arc<Vec<CertRecord>>) -> Result<Arc<str>, ServiceError> {
        if let Some((from, text)) = self.0.read().as_ref() {
            if Arc::ptr_eq(from, records) {
                return Ok(text.clone());
            }
        }
        let entries: Vec<Entry<'_>> = records.iter().map(Entry::from).collect();
        let text: Arc<str> = serde_json::to_string(&entries).map_err(|e| ServiceError::Internal(e.into()))?.into();
        *self.0.write() = Some((records.clone(), text.clone()));
        Ok(text)
    }
}

/// HarperDB's entry: optional keys are absent, not null. Never a private key (the record has
/// none, only the key file's name).
#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    certificate: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_name: Option<&'a str>,
    is_authority: bool,
    details: EntryDetails<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uses: Option<&'a [String]>,
    #[serde(rename = "__updatedtime__")]
    updated: u64,
}

#[derive(Serialize)]
struct EntryDetails<'a> {
    issuer: &'a str,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_alt_name: Option<&'a str>,
    serial_number: &'a str,
    valid_from: &'a str,
    valid_to: &'a str,
}

impl<'a> From<&'a CertRecord> for Entry<'a> {
    fn from(c: &'a CertRecord) -> Self {
        let d: &'a Details = &c.details;
        Entry {
            name: &c.name,
            certificate: &c.certificate,
            private_key_name: c.private_key_name.as_deref(),
            is_authority: c.is_authority,
            details: EntryDetails {
                issuer: &d.issuer,
                subject: &d.subject,
                subject_alt_name: d.subject_alt_name.as_deref(),
                serial_number: &d.serial_number,
                valid_from: &d.valid_from,
                valid_to: &d.valid_to,
            },
            is_self_signed: c.is_self_signed,
            uses: c.uses.as_deref(),
            updated: c.updated,
        }
    }
}
