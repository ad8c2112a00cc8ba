//! The on-disk cache of compiled components. Deserializing a compiled artifact runs its native
//! code, so an entry is used only when this server wrote it: the folder must be ours and not
//! writable by others, and every entry carries an HMAC-SHA256 (over the component's hash, the
//! engine's configuration hash and the artifact) under a key that only this user can read.
//! Anything else is ignored and recompiled.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Length of the MAC stored after each artifact.
const MAC_LEN: usize = 32;
/// The key file inside the cache folder (0600, made once).
const KEY_FILE: &str = ".cache-key";

pub struct CompileCache {
    /// `None` when the folder is unusable (not ours, writable by others): compile every time.
    dir: Option<PathBuf>,
    key: [u8; 32],
    engine_hash: String,
}

impl CompileCache {
    /// Opens (creating it 0700) the cache folder for an engine whose configuration hashes to
    /// `engine_hash`. A folder that fails the ownership checks disables the cache, with a warning.
    pub fn open(dir: PathBuf, engine_hash: String) -> Self {
        match Self::prepare(&dir) {
            Ok(key) => Self { dir: Some(dir), key, engine_hash },
            Err(e) => {
                tracing::warn!("not using the compile cache {}: {e:#}; components are compiled at every load", dir.display());
                Self { dir: None, key: [0; 32], engine_hash }
            }
        }
    }

    /// A cache that already exists and is only read: the components `cargo xtask build`
    /// compiled into the dist folder, so a first start on a new root does not compile them.
    /// `None` when it is missing or fails the same checks as a writable cache.
    pub fn open_bundled(dir: PathBuf, engine_hash: String) -> Option<Self> {
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        let checked = check_private(&meta, true).and_then(|_| read_key(&dir.join(KEY_FILE)));
        match checked {
            Ok(key) => Some(Self { dir: Some(dir), key, engine_hash }),
            Err(e) => {
                tracing::info!("not using the precompiled components in {}: {e:#}", dir.display());
                None
            }
        }
    }

    fn prepare(dir: &Path) -> Result<[u8; 32]> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        check_private(&std::fs::symlink_metadata(dir)?, true).with_context(|| format!("checking {}", dir.display()))?;
        load_or_create_key(&dir.join(KEY_FILE))
    }

    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    fn entry(&self, component_hash: &str) -> Option<PathBuf> {
        // The component hash is hex from our own SHA-256; refuse anything else in a file name.
        if component_hash.is_empty() || !component_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.dir.as_ref().map(|d| d.join(format!("{component_hash}-{}.cwasm", self.engine_hash)))
    }

    /// The artifact cached for a component, when it is there, ours, and its MAC verifies.
    pub fn get(&self, component_hash: &str) -> Option<Vec<u8>> {
        let path = self.entry(component_hash)?;
        match self.read_verified(&path, component_hash) {
            Ok(artifact) => artifact,
            Err(e) => {
                tracing::warn!("ignoring compile cache entry {}: {e:#}", path.display());
                None
            }
        }
    }

    fn read_verified(&self, path: &Path, component_hash: &str) -> Result<Option<Vec<u8>>> {
        let mut file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        anyhow::ensure!(meta.is_file(), "not a regular file");
        check_private(&meta, false)?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes)?;
        anyhow::ensure!(bytes.len() > MAC_LEN, "too short to be an entry");
        let (artifact, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        let expected = self.mac(component_hash, artifact);
        anyhow::ensure!(constant_time_eq(mac, &expected), "its MAC does not verify (not written by this server)");
        bytes.truncate(bytes.len() - MAC_LEN);
        Ok(Some(bytes))
    }

    /// Stores an artifact (atomically: a private temporary file, then a rename).
    pub fn put(&self, component_hash: &str, artifact: &[u8]) {
        let Some(path) = self.entry(component_hash) else { return };
        let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), rand::random::<u32>()));
        let written = (|| -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(artifact)?;
            file.write_all(&self.mac(component_hash, artifact))?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("could not write the compile cache entry {}: {e}", path.display());
        }
    }

    fn mac(&self, component_hash: &str, artifact: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, &[component_hash.as_bytes(), b"\0", self.engine_hash.as_bytes(), b"\0", artifact])
    }
}

/// Owned by this user and not writable by group or others (for the folder: also not a symlink).
fn check_private(meta: &std::fs::Metadata, dir: bool) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(meta.uid() == me, "owned by uid {}, not by this server's uid {me}", meta.uid());
    anyhow::ensure!(meta.permissions().mode() & 0o022 == 0, "writable by group or others (mode {:o})", meta.permissions().mode() & 0o777);
    if dir {
        anyhow::ensure!(meta.is_dir(), "not a folder");
    }
    Ok(())
}

/// An existing key file, when it is ours and private.
fn read_key(path: &Path) -> Result<[u8; 32]> {
    let mut file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
    let meta = file.metadata()?;
    check_private(&meta, false)?;
    anyhow::ensure!(meta.permissions().mode() & 0o077 == 0, "the cache key {} is readable by others", path.display());
    let mut key = [0u8; 32];
    file.read_exact(&mut key).context("reading the cache key")?;
    Ok(key)
}

/// The cache's MAC key: read when it exists (and is private), else made from the OS's
/// randomness and published with a hard link, so concurrent first starts agree on one key.
fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    for _ in 0..3 {
        match read_key(path) {
            Ok(key) => return Ok(key),
            Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {
                let key: [u8; 32] = rand::random();
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
                file.write_all(&key)?;
                file.sync_all()?;
                drop(file);
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => return Ok(key),
                    // Another process published its key first: use that one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    anyhow::bail!("could not read or create the cache key {}", path.display())
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opshost-cc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn hmac_matches_rfc4231_shape() {
        // RFC 4231 test case 2 uses a short key; ours are always 32 bytes, so check determinism
        // and sensitivity instead.
        let k = [7u8; 32];
        assert_eq!(hmac_sha256(&k, &[b"a", b"b"]), hmac_sha256(&k, &[b"ab"]));
        assert_ne!(hmac_sha256(&k, &[b"ab"]), hmac_sha256(&[8u8; 32], &[b"ab"]));
    }

    #[test]
    fn entries_round_trip_and_foreign_files_are_refused() {
        let dir = scratch("roundtrip");
        let cache = CompileCache::open(dir.clone(), "e1".into());
        assert!(cache.enabled());
        assert_eq!(std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700);
        cache.put("abcd", b"artifact bytes");
        assert_eq!(cache.get("abcd").as_deref(), Some(&b"artifact bytes"[..]));
        // A file planted under another component's name (or without our MAC) is not used.
        std::fs::copy(dir.join("abcd-e1.cwasm"), dir.join("beef-e1.cwasm")).expect("copy");
        assert_eq!(cache.get("beef"), None);
        std::fs::write(dir.join("cafe-e1.cwasm"), b"native code from someone else, 32+ bytes long....").expect("plant");
        assert_eq!(cache.get("cafe"), None);
        // Another engine configuration does not see the entry.
        let other = CompileCache::open(dir.clone(), "e2".into());
        assert_eq!(other.get("abcd"), None);
        // A folder writable by others disables the cache.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(!CompileCache::open(dir.clone(), "e1".into()).enabled());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
