//! Operation and refresh tokens: RS256 JWTs shaped like HarperDB's, signed with a key made at
//! first start and kept in `<rootPath>/keys/` (0600), so tokens survive restarts. The first
//! start makes that key on a thread of its own: RSA-2048 generation takes 0.1-0.5 s here and the
//! server should listen without waiting for it.

use super::users::User;
use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use parking_lot::Mutex;
use std::path::Path;
use std::sync::OnceLock;
use std::thread::JoinHandle;
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
    /// The signing key once known; an error text if making it failed.
    keys: OnceLock<Result<Keys, String>>,
    /// On a first start, the thread making the key (taken by the first caller that needs it).
    making: Mutex<Option<JoinHandle<anyhow::Result<Keys>>>>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenService {
    /// Loads the signing key, or starts making an RSA-2048 key on first start.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let path = root.join("keys").join(KEY_FILE);
        let (keys, making) = match std::fs::read_to_string(&path) {
            Ok(pem) => (OnceLock::from(Ok(Keys::from_pem(&pem)?)), None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let root = root.to_path_buf();
                let thread = std::thread::Builder::new().name("opshost-jwt-key".into()).spawn(move || make_key(&root, &path))?;
                (OnceLock::new(), Some(thread))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { keys, making: Mutex::new(making) })
    }

    /// The signing key, waiting for it on a first start.
    fn keys(&self) -> anyhow::Result<&Keys> {
        if self.keys.get().is_none() {
            let mut making = self.making.lock();
            if let Some(thread) = making.take() {
                let made = thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the key thread panicked")));
                let _ = self.keys.set(made.map_err(|e| format!("{e:#}")));
            }
        }
        match self.keys.get() {
            Some(Ok(keys)) => Ok(keys),
            Some(Err(e)) => Err(anyhow::anyhow!("no token signing key: {e}")),
            None => Err(anyhow::anyhow!("no token signing key")),
        }
    }

    /// Waits until the signing key exists (on disk too); for tests and callers that must not
    /// race its first write.
    pub fn ready(&self) -> anyhow::Result<()> {
        self.keys().map(drop)
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
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.keys()?.encoding)?)
    }

    /// The claims of a well-signed, unexpired token of `kind`. Whether its user still exists
    /// and is still at the same token generation is the caller's check.
    pub fn verify(&self, token: &str, kind: Kind) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // While a first start's key is still being made no token can be valid: none was signed.
        let Some(Ok(keys)) = self.keys.get() else { return None };
        let claims = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &validation).ok()?.claims;
        (claims.sub == kind.sub()).then_some(claims)
    }
}

impl Keys {
    fn from_pem(pem: &str) -> anyhow::Result<Self> {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).context("parsing the token signing key")?;
        let public = key.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).context("encoding the token public key")?;
        Ok(Self {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the token signing key")?,
            decoding: DecodingKey::from_rsa_pem(public.as_bytes()).context("loading the token public key")?,
        })
    }
}

/// Makes the signing key and stores it at `path` (0600 from its first byte: a key chmod'ed
/// after the rename would be readable in between).
fn make_key(root: &Path, path: &Path) -> anyhow::Result<Keys> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).context("generating the token signing key")?;
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).context("encoding the token signing key")?.to_string();
    std::fs::create_dir_all(root.join("keys"))?;
    super::fsutil::write_atomically_mode(path, pem.as_bytes(), 0o600)?;
    Keys::from_pem(&pem)
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
        TokenService::open(&dir).expect("open").ready().expect("key made");
        let mode = std::fs::metadata(dir.join("keys").join(KEY_FILE)).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp file is left behind, wide or not.
        assert_eq!(std::fs::read_dir(dir.join("keys")).expect("dir").count(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
