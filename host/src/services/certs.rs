//! The certificate service: parses X.509 certificates into HarperDB's `details` (x509-parser),
//! matches private keys to certificates, generates a CA and a node certificate at first start
//! (rcgen), and stores certificates in `system.hdb_certificate` with their private keys as
//! 0600 files under `<rootPath>/keys/`. Key material never leaves this module but as files.

use super::storage::{StorageBackend, WriteMode, SYSTEM_DATABASE};
use super::ServiceError;
use anyhow::Context as _;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::prelude::*;

mod answer;

const TABLE: &str = "hdb_certificate";
const VALIDITY_DAYS: i64 = 3650;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Details {
    pub issuer: String,
    pub subject: String,
    pub subject_alt_name: Option<String>,
    pub serial_number: String,
    pub valid_from: String,
    pub valid_to: String,
}

/// A stored certificate (never with its key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    pub name: String,
    pub certificate: String,
    pub private_key_name: Option<String>,
    pub is_authority: bool,
    pub details: Details,
    pub is_self_signed: Option<bool>,
    pub uses: Option<Vec<String>>,
    #[serde(default, rename = "__updatedtime__")]
    pub updated: u64,
}

/// What parsing a certificate yields beyond its details.
pub struct Parsed {
    pub details: Details,
    /// The subject public key bytes (compared with a private key's public half).
    pub public_key: Vec<u8>,
}

pub struct CertService {
    keys_dir: PathBuf,
    storage: Arc<dyn StorageBackend>,
    /// Parsed once, handed out until the next add or remove.
    cache: RwLock<Option<Arc<Vec<CertRecord>>>>,
    /// Bumped with every invalidation: a list read from storage before one is not cached
    /// after it (it may miss the change that caused it).
    changes: std::sync::atomic::AtomicU64,
    /// `list_certificates`'s JSON, encoded once per version of `cache` (answer.rs).
    answer: answer::AnswerCache,
}

/// Certificate names become key file names: no separators, no leading dot.
pub fn valid_cert_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl CertService {
    pub fn open(root: &Path, storage: Arc<dyn StorageBackend>) -> anyhow::Result<Self> {
        let keys_dir = root.join("keys");
        std::fs::create_dir_all(&keys_dir)?;
        if storage.describe_table(SYSTEM_DATABASE, TABLE).is_err() {
            storage
                .create_table(SYSTEM_DATABASE, TABLE, "name")
                .map_err(ServiceError::into_anyhow)
                .context("creating system.hdb_certificate")?;
        }
        Ok(Self { keys_dir, storage, cache: RwLock::new(None), changes: Default::default(), answer: Default::default() })
    }

    /// Every certificate, sorted by name.
    pub fn list(&self) -> Result<Arc<Vec<CertRecord>>, ServiceError> {
        if let Some(cached) = self.cache.read().as_ref() {
            return Ok(cached.clone());
        }
        let changes = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        let rows = self.storage.search(SYSTEM_DATABASE, TABLE, Default::default())?.collect_all()?;
        let mut all = rows
            .into_iter()
            .map(|record| serde_json::from_value::<CertRecord>(record).map_err(|e| ServiceError::Internal(e.into())))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let all = Arc::new(all);
        let mut cache = self.cache.write();
        if self.changes.load(std::sync::atomic::Ordering::SeqCst) == changes {
            *cache = Some(all.clone());
        }
        Ok(all)
    }

    /// Forgets the cached list (after the table changed), and any list being read meanwhile.
    fn invalidate(&self) {
        let mut cache = self.cache.write();
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *cache = None;
    }

    /// Forgets the cached list after replication changed `system.hdb_certificate`.
    pub fn reload_replicated(&self) {
        self.invalidate();
    }

    /// Every certificate as `list_certificates` answers (HarperDB's JSON), cached.
    pub fn list_json(&self) -> Result<Arc<str>, ServiceError> {
        self.answer.get(&self.list()?)
    }

    pub fn get(&self, name: &str) -> Result<Option<CertRecord>, ServiceError> {
        Ok(self.list()?.iter().find(|c| c.name == name).cloned())
    }

    /// Adds or replaces a certificate. Everything is checked before anything is written.
    pub fn add(
        &self,
        name: &str,
        pem: &str,
        is_authority: bool,
        private_key: Option<&str>,
    ) -> Result<(), ServiceError> {
        if !valid_cert_name(name) {
            return Err(ServiceError::BadRequest(format!(
                "'name' must be letters, digits, '-', '_' or '.', got '{name}'"
            )));
        }
        let parsed = parse_certificate(pem).map_err(ServiceError::BadRequest)?;
        let key_name = match private_key {
            Some(key) => {
                let public = key_public(key).map_err(ServiceError::BadRequest)?;
                if public != parsed.public_key {
                    return Err(ServiceError::BadRequest("The private key does not match the certificate".into()));
                }
                Some(format!("{name}.pem"))
            }
            None => match self.find_key(&parsed.public_key).map_err(ServiceError::Internal)? {
                Some(found) => Some(found),
                None if is_authority => None,
                None => return Err(ServiceError::BadRequest("A suitable private key was not found for this certificate".into())),
            },
        };
        if let (Some(key), Some(file)) = (private_key, key_name.as_deref()) {
            write_private_key(&self.keys_dir.join(file), key).map_err(ServiceError::Internal)?;
        }
        let record = CertRecord {
            name: name.to_string(),
            certificate: pem.to_string(),
            private_key_name: key_name,
            is_authority,
            details: parsed.details,
            is_self_signed: None,
            uses: None,
            updated: 0,
        };
        self.store(&record)
    }

    /// Removes a certificate, and its key file unless another certificate uses it.
    pub fn remove(&self, name: &str) -> Result<(), ServiceError> {
        let record = self.get(name)?.ok_or_else(|| ServiceError::BadRequest(format!("{name} not found")))?;
        self.storage.delete(SYSTEM_DATABASE, TABLE, vec![Value::String(name.to_string())])?;
        self.invalidate();
        if let Some(key) = &record.private_key_name {
            let shared = self.list()?.iter().any(|c| c.private_key_name.as_deref() == Some(key.as_str()));
            if !shared && valid_cert_name(key) {
                let _ = std::fs::remove_file(self.keys_dir.join(key));
            }
        }
        Ok(())
    }

    /// First start: a CA and a node certificate named `node_name`, both valid ten years,
    /// unless the store already holds certificates.
    pub fn ensure_defaults(&self, node_name: &str) -> anyhow::Result<()> {
        if !self.list().map_err(ServiceError::into_anyhow)?.is_empty() {
            return Ok(());
        }
        use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType};
        let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let ca_name = format!("opshost-Certificate-Authority-{suffix}");
        let now = ::time::OffsetDateTime::now_utc();
        let dn = |cn: &str| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            dn.push(DnType::OrganizationName, "opshost");
            dn
        };
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn(&ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.not_before = now;
        ca_params.not_after = now + ::time::Duration::days(VALIDITY_DAYS);
        ca_params.serial_number = Some(random_serial());
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_issuer = Issuer::new(ca_params, &ca_key);

        let mut node_params = CertificateParams::default();
        node_params.distinguished_name = dn(node_name);
        node_params.subject_alt_names = vec![
            SanType::IpAddress("127.0.0.1".parse()?),
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress("::1".parse()?),
        ];
        if node_name != "127.0.0.1" && node_name != "localhost" {
            node_params.subject_alt_names.push(match node_name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(node_name.try_into()?),
            });
        }
        node_params.not_before = now;
        node_params.not_after = now + ::time::Duration::days(VALIDITY_DAYS);
        node_params.serial_number = Some(random_serial());
        let node_key = KeyPair::generate()?;
        let node_cert = node_params.signed_by(&node_key, &ca_issuer)?;

        for (name, cert_pem, key, is_authority, uses) in [
            (ca_name.as_str(), ca_cert.pem(), &ca_key, true, Vec::new()),
            (node_name, node_cert.pem(), &node_key, false, vec!["operations_api".to_string()]),
        ] {
            let file = format!("{name}.pem");
            write_private_key(&self.keys_dir.join(&file), &key.serialize_pem())?;
            let parsed = parse_certificate(&cert_pem).map_err(anyhow::Error::msg)?;
            self.store(&CertRecord {
                name: name.to_string(),
                certificate: cert_pem,
                private_key_name: Some(file),
                is_authority,
                details: parsed.details,
                is_self_signed: Some(true),
                uses: Some(uses),
                updated: 0,
            })
            .map_err(ServiceError::into_anyhow)?;
        }
        tracing::info!("created the certificate authority '{ca_name}' and the node certificate '{node_name}'");
        Ok(())
    }

    /// The PEM certificate and private key the node serves TLS with.
    pub fn tls_identity(&self, node_name: &str) -> anyhow::Result<(String, String)> {
        let record = self
            .get(node_name)
            .map_err(ServiceError::into_anyhow)?
            .with_context(|| format!("no certificate named '{node_name}' for TLS"))?;
        let key_file = record.private_key_name.with_context(|| format!("certificate '{node_name}' has no private key"))?;
        let key = std::fs::read_to_string(self.keys_dir.join(key_file))?;
        Ok((record.certificate, key))
    }

    fn store(&self, record: &CertRecord) -> Result<(), ServiceError> {
        let mut value = serde_json::to_value(record).map_err(|e| ServiceError::Internal(e.into()))?;
        if let Value::Object(map) = &mut value {
            map.remove("__updatedtime__");
        }
        self.storage.write(SYSTEM_DATABASE, TABLE, WriteMode::Upsert, vec![value])?;
        self.invalidate();
        Ok(())
    }

    /// The first stored key file (by name) whose public half is `public_key`.
    fn find_key(&self, public_key: &[u8]) -> anyhow::Result<Option<String>> {
        let mut files: Vec<String> = std::fs::read_dir(&self.keys_dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pem") && !n.starts_with('.'))
            .collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(self.keys_dir.join(&file)) else { continue };
            if key_public(&text).is_ok_and(|k| k == public_key) {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7F; // positive
    rcgen::SerialNumber::from_slice(&bytes)
}

/// Written with mode 0600 from the start (never readable by others, even briefly), then
/// renamed into place.
fn write_private_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The public key bytes of a PKCS#8 PEM private key (RSA, ECDSA P-256/P-384, Ed25519).
pub fn key_public(pem: &str) -> Result<Vec<u8>, String> {
    let key = rcgen::KeyPair::from_pem(pem).map_err(|_| {
        "The private key could not be parsed (PEM PKCS#8 'PRIVATE KEY' with RSA, ECDSA P-256/P-384 or Ed25519 is supported)".to_string()
    })?;
    Ok(key.public_key_raw().to_vec())
}

/// Parses a PEM certificate into HarperDB's details and its public key.
pub fn parse_certificate(pem: &str) -> Result<Parsed, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| "The certificate could not be parsed: expected a PEM 'CERTIFICATE'".to_string())?;
    let cert = pem.parse_x509().map_err(|e| format!("The certificate could not be parsed: {e}"))?;
    let san = cert.subject_alternative_name().ok().flatten().map(|ext| {
        ext.value.general_names.iter().map(general_name).collect::<Vec<_>>().join(", ")
    });
    let serial = cert.tbs_certificate.raw_serial();
    let serial = serial.iter().skip_while(|b| **b == 0).map(|b| format!("{b:02X}")).collect::<String>();
    Ok(Parsed {
        details: Details {
            issuer: name_text(cert.issuer()),
            subject: name_text(cert.subject()),
            subject_alt_name: san,
            serial_number: if serial.is_empty() { "00".into() } else { serial },
            valid_from: openssl_time(cert.validity().not_before.to_datetime()),
            valid_to: openssl_time(cert.validity().not_after.to_datetime()),
        },
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// `CN=x O=y`: attributes in certificate order, commas in values escaped (Node's format).
fn name_text(name: &X509Name) -> String {
    let mut parts = Vec::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(attr.attr_type(), x509_parser::objects::oid_registry())
                .map(str::to_string)
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr.as_str().map(str::to_string).unwrap_or_else(|_| hex_of(attr.as_slice()));
            parts.push(format!("{key}={}", value.replace(',', "\\,")));
        }
    }
    parts.join(" ")
}

fn general_name(name: &GeneralName) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => format!("IP Address:{}.{}.{}.{}", bytes[0], bytes[1], bytes[2], bytes[3]),
            16 => {
                // OpenSSL's and Node's form: eight groups, no `::` compression.
                let groups: Vec<String> = bytes.chunks(2).map(|c| format!("{:X}", u16::from_be_bytes([c[0], c[1]]))).collect();
                format!("IP Address:{}", groups.join(":"))
            }
            _ => format!("IP Address:<invalid>"),
        },
        other => format!("{other:?}"),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `Nov  2 23:39:59 2126 GMT`, as `openssl x509 -enddate` and Node print it.
fn openssl_time(t: ::time::OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[t.month() as usize - 1],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::storage::Storage;

    fn service() -> (PathBuf, CertService) {
        let dir = std::env::temp_dir().join(format!("opshost-certs-{}", uuid::Uuid::new_v4().simple()));
        let storage = Arc::new(Storage::open(&dir.join("db"), true).expect("storage"));
        let svc = CertService::open(&dir, storage).expect("certs");
        (dir, svc)
    }

    #[test]
    fn first_start_creates_a_ca_and_a_node_certificate() {
        let (dir, svc) = service();
        svc.ensure_defaults("127.0.0.1").expect("defaults");
        let all = svc.list().expect("list");
        assert_eq!(all.len(), 2);
        let ca = all.iter().find(|c| c.is_authority).expect("ca");
        let node = all.iter().find(|c| c.name == "127.0.0.1").expect("node");
        assert_eq!(node.details.issuer, ca.details.subject);
        assert_eq!(node.details.subject_alt_name.as_deref(), Some("IP Address:127.0.0.1, DNS:localhost, IP Address:0:0:0:0:0:0:0:1"));
        assert!(node.details.valid_to.ends_with(" GMT"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("keys").join("127.0.0.1.pem")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second start keeps them.
        svc.ensure_defaults("127.0.0.1").expect("again");
        assert_eq!(svc.list().expect("list").len(), 2);
        let (cert, key) = svc.tls_identity("127.0.0.1").expect("identity");
        assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn keys_must_match_and_are_found_when_not_given() {
        let (dir, svc) = service();
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()]).expect("params").self_signed(&key).expect("cert");
        let other = rcgen::KeyPair::generate().expect("other");
        let err = svc.add("a", &cert.pem(), false, Some(&other.serialize_pem())).expect_err("mismatch");
        assert!(matches!(err, ServiceError::BadRequest(m) if m == "The private key does not match the certificate"));
        let err = svc.add("a", &cert.pem(), false, None).expect_err("no key");
        assert!(matches!(err, ServiceError::BadRequest(m) if m == "A suitable private key was not found for this certificate"));
        assert!(svc.list().expect("list").is_empty(), "nothing stored after refusals");
        svc.add("a", &cert.pem(), false, Some(&key.serialize_pem())).expect("add");
        svc.add("b", &cert.pem(), false, None).expect("found the stored key");
        assert_eq!(svc.get("b").expect("get").and_then(|c| c.private_key_name), Some("a.pem".to_string()));
        svc.remove("a").expect("remove");
        assert!(dir.join("keys").join("a.pem").exists(), "still used by 'b'");
        svc.remove("b").expect("remove");
        assert!(!dir.join("keys").join("a.pem").exists());
        assert!(matches!(svc.remove("b"), Err(ServiceError::BadRequest(m)) if m == "b not found"));
        assert!(matches!(svc.add("x", "garbage", true, None), Err(ServiceError::BadRequest(_))));
        let _ = std::fs::remove_dir_all(dir);
    }
}
