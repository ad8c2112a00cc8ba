//! The user store: users with argon2-hashed passwords and a role, persisted atomically in
//! `<rootPath>/users.json`. (It moves into the `system.hdb_user` table with the data layer;
//! callers only see this API.)

use super::config::write_atomically;
use anyhow::{bail, Context, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A user as the host sees it after authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub role: String,
    pub super_user: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredUser {
    username: String,
    /// PHC string (argon2id); the password itself is never stored.
    password_hash: String,
    role: String,
    super_user: bool,
    active: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    users: Vec<StoredUser>,
}

pub struct UserStore {
    path: PathBuf,
    users: RwLock<Vec<StoredUser>>,
}

/// Why a login failed; the HTTP layer turns both into HarperDB's `Login failed`.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    UnknownUser,
    WrongPassword,
    Inactive,
}

impl UserStore {
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("users.json");
        let users = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<File>(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?
                .users,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { path, users: RwLock::new(users) })
    }

    /// Whether any active super_user exists (first start creates one when none does).
    pub fn has_super_user(&self) -> bool {
        self.users.read().iter().any(|u| u.super_user && u.active)
    }

    /// Adds a user; refuses a duplicate name or a blank name or password.
    pub fn add(&self, username: &str, password: &str, role: &str, super_user: bool) -> Result<()> {
        if username.trim().is_empty() {
            bail!("Username can't be blank");
        }
        if password.is_empty() {
            bail!("Password can't be blank");
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
            .to_string();
        let mut users = self.users.write();
        if users.iter().any(|u| u.username == username) {
            bail!("User {username} already exists");
        }
        let mut next = users.clone();
        next.push(StoredUser {
            username: username.to_string(),
            password_hash: hash,
            role: role.to_string(),
            super_user,
            active: true,
        });
        self.persist(&next)?;
        *users = next;
        Ok(())
    }

    /// Checks a password. Slow on purpose (argon2): callers cache successful logins.
    pub fn verify(&self, username: &str, password: &str) -> Result<User, LoginError> {
        let stored = {
            let users = self.users.read();
            users.iter().find(|u| u.username == username).cloned()
        };
        let Some(stored) = stored else {
            // Spend the same time as a real check so user names cannot be probed by timing.
            let _ = Argon2::default().hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng));
            return Err(LoginError::UnknownUser);
        };
        let parsed = PasswordHash::new(&stored.password_hash).map_err(|_| LoginError::WrongPassword)?;
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| LoginError::WrongPassword)?;
        if !stored.active {
            return Err(LoginError::Inactive);
        }
        Ok(User { username: stored.username, role: stored.role, super_user: stored.super_user })
    }

    fn persist(&self, users: &[StoredUser]) -> Result<()> {
        let file = File { users: users.to_vec() };
        write_atomically(&self.path, &serde_json::to_vec_pretty(&file)?)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_hashes_and_verifies() {
        let dir = std::env::temp_dir().join(format!("opshost-users-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = UserStore::open(&dir).expect("open");
        store.add("admin", "s3cret", "super_user", true).expect("add");
        assert!(store.add("admin", "x", "super_user", true).is_err(), "duplicate refused");
        let text = std::fs::read_to_string(dir.join("users.json")).expect("file");
        assert!(!text.contains("s3cret"), "password must not be stored");
        let reopened = UserStore::open(&dir).expect("reopen");
        assert_eq!(reopened.verify("admin", "s3cret").expect("ok").super_user, true);
        assert_eq!(reopened.verify("admin", "wrong"), Err(LoginError::WrongPassword));
        assert_eq!(reopened.verify("nobody", "x"), Err(LoginError::UnknownUser));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
