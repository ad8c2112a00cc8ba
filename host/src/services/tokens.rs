//! Operation and refresh tokens: RS256 JWTs shaped like HarperDB's, signed with a key made at
//! first start and kept in `<rootPath>/keys/` (0600), so tokens survive restarts.

use super::users::User;
use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

const KEY_FILE: &str = ".jwtPrivate.pem";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Operation,
    Refresh,
}

impl Kind {
    fn sub(self) -> &'static str {
        match self {
            Kind::Operation => "operation",
            Kind::Refresh => "refresh",
        }
    }
}

/// HarperDB's payload, plus `gen`: the user's token generation when issued.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub username: String,
    pub super_user: bool,
    pub cluster_user: bool,
    pub iat: u64,
    pub exp: u64,
    pub sub: String,
    #[serde(default)]
    pub gen: u64,
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenService {
    /// Loads the signing key, generating an RSA-2048 key on first start.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let path = root.join("keys").join(KEY_FILE);
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).context("generating the token signing key")?;
                let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).context("encoding the token signing key")?.to_string();
                std::fs::create_dir_all(root.join("keys"))?;
                // 0600 from its first byte: a key chmod'ed after the rename is readable in between.
                super::fsutil::write_atomically_mode(&path, pem.as_bytes(), 0o600)?;
                pem
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let public = {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).context("parsing the token signing key")?;
            key.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).context("encoding the token public key")?
        };
        Ok(Self {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the token signing key")?,
            decoding: DecodingKey::from_rsa_pem(public.as_bytes()).context("loading the token public key")?,
        })
    }

    pub fn issue(&self, user: &User, kind: Kind, lifetime: Duration) -> anyhow::Result<String> {
        let iat = super::jobs::now_ms() / 1000;
        let claims = Claims {
            username: user.username.clone(),
            super_user: user.super_user,
            cluster_user: user.cluster_user,
            iat,
            // Lifetimes are bounded by configuration; saturating keeps a bad value from wrapping.
            exp: iat.saturating_add(lifetime.as_secs().max(1)),
            sub: kind.sub().to_string(),
            gen: user.token_generation,
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.encoding)?)
    }

    /// The claims of a well-signed, unexpired token of `kind`. Whether its user still exists
    /// and is still at the same token generation is the caller's check.
    pub fn verify(&self, token: &str, kind: Kind) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?.claims;
        (claims.sub == kind.sub()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::users::Permissions;
    use std::sync::Arc;

    #[test]
    fn tokens_verify_by_kind_survive_reopen_and_expire() {
        let dir = std::env::temp_dir().join(format!("opshost-tokens-{}", uuid::Uuid::new_v4().simple()));
        let tokens = TokenService::open(&dir).expect("open");
        let user = User { username: "ann".into(), role: "r".into(), super_user: false, cluster_user: false, permissions: Arc::new(Permissions::default()), token_generation: 3 };
        let op = tokens.issue(&user, Kind::Operation, Duration::from_secs(60)).expect("issue");
        let refresh = tokens.issue(&user, Kind::Refresh, Duration::from_secs(60)).expect("issue");
        let reopened = TokenService::open(&dir).expect("reopen");
        assert_eq!(reopened.verify(&op, Kind::Operation).expect("valid").gen, 3);
        assert!(reopened.verify(&refresh, Kind::Operation).is_none(), "a refresh token is not an operation token");
        assert!(reopened.verify(&refresh, Kind::Refresh).is_some());
        assert!(reopened.verify("garbage", Kind::Operation).is_none());
        let short = tokens.issue(&user, Kind::Operation, Duration::from_secs(1)).expect("issue");
        std::thread::sleep(Duration::from_millis(2100));
        assert!(tokens.verify(&short, Kind::Operation).is_none(), "expired");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn signing_key_is_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("opshost-tokens-{}", uuid::Uuid::new_v4().simple()));
        TokenService::open(&dir).expect("open");
        let mode = std::fs::metadata(dir.join("keys").join(KEY_FILE)).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp file is left behind, wide or not.
        assert_eq!(std::fs::read_dir(dir.join("keys")).expect("dir").count(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
