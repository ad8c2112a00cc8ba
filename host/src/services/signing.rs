//! Component signatures: a detached Ed25519 signature over a component's SHA-256 and the grants
//! its publisher allows it, checked against `operationsApi.components.trustedKeys`. The signed
//! message is plain text, so any Ed25519 tool can produce it (`cargo xtask sign`, or
//! `openssl pkeyutl -sign -rawin`):
//!
//! ```text
//! opshost-component-signature-v1
//! <sha256 of the component, lowercase hex>
//! <granted interfaces, sorted, comma-separated>
//! ```

use base64::Engine as _;

/// The first line of every signed message (a version, so the format can change safely).
pub const MAGIC: &str = "opshost-component-signature-v1";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw key follows it.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The text that is signed for a component with this hash and these grants.
pub fn message(hash: &str, grants: &[String]) -> String {
    let mut grants: Vec<&str> = grants.iter().map(String::as_str).filter(|g| *g != "types").collect();
    grants.sort_unstable();
    grants.dedup();
    format!("{MAGIC}\n{}\n{}", hash.to_ascii_lowercase(), grants.join(","))
}

/// A trusted key as configured: a PEM `PUBLIC KEY` (what `openssl pkey -pubout` writes) or the
/// base64 of the raw 32 bytes.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let der = if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|e| format!("not a PEM public key: {e}"))?
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("not base64: {e}"))?
    };
    let raw = match der.len() {
        32 => &der[..],
        44 if der[..12] == SPKI_PREFIX => &der[12..],
        _ => return Err("not an Ed25519 public key (expected 32 raw bytes or an Ed25519 SubjectPublicKeyInfo)".into()),
    };
    raw.try_into().map_err(|_| "not an Ed25519 public key".to_string())
}

/// Whether `signature` (base64) signs this component and grants under one of `keys`.
pub fn verify(keys: &[[u8; 32]], hash: &str, grants: &[String], signature: &str) -> Result<(), String> {
    if keys.is_empty() {
        return Err("no trusted keys are configured (operationsApi.components.trustedKeys)".into());
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|e| format!("'signature' is not base64: {e}"))?;
    let message = message(hash, grants);
    let verified = keys.iter().any(|key| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(message.as_bytes(), &signature)
            .is_ok()
    });
    if verified {
        Ok(())
    } else {
        Err("the signature does not verify against any trusted key for this component and these grants".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    #[test]
    fn a_signature_covers_the_bytes_and_the_grants() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
        let grants = vec!["storage".to_string(), "log".to_string()];
        let sig = base64::engine::general_purpose::STANDARD.encode(pair.sign(message("ab12", &grants).as_bytes()));
        assert!(verify(&[public], "ab12", &grants, &sig).is_ok());
        // Order and duplicates do not matter; other bytes or broader grants do.
        assert!(verify(&[public], "AB12", &["log".into(), "storage".into(), "log".into()], &sig).is_ok());
        assert!(verify(&[public], "ab13", &grants, &sig).is_err());
        assert!(verify(&[public], "ab12", &["storage".into(), "log".into(), "users".into()], &sig).is_err());
        assert!(verify(&[], "ab12", &grants, &sig).is_err());
        let spki = [&SPKI_PREFIX[..], &public[..]].concat();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", base64::engine::general_purpose::STANDARD.encode(spki));
        assert_eq!(parse_public_key(&pem), Ok(public));
        assert!(parse_public_key("bm90IGEga2V5").is_err());
    }
}
