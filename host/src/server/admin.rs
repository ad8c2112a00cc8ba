//! Maintenance outside the serve loop: the first super_user, `opshost precompile`,
//! `opshost user add`, and where the compile caches and built-ins live.

use crate::runtime::Runtime;
use crate::services::config::ConfigService;
use crate::services::storage::Storage;
use crate::services::users::UserService;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use super::Options;

/// On first start (no super_user yet), creates the super_user from the options (HDB_ADMIN_USERNAME /
/// HDB_ADMIN_PASSWORD or flags); with no password given, generates one and prints it once.
pub(super) fn ensure_super_user(users: &UserService, options: &Options) -> Result<()> {
    if users.has_super_user() {
        return Ok(());
    }
    let username = options.admin_username.clone().unwrap_or_else(|| "admin".to_string());
    // The user exists but is no longer an active super_user (or the role lost super_user):
    // repair rather than fail with "already exists".
    if users.repair_super_user(&username, options.admin_password.as_deref()).map_err(|e| e.into_anyhow())? {
        eprintln!(
            "opshost: no active super_user was left; '{username}' is an active super_user again{}",
            if options.admin_password.is_some() { " with the given password" } else { " (password unchanged)" }
        );
        return Ok(());
    }
    let (password, generated) = match &options.admin_password {
        Some(p) => (p.clone(), false),
        None => {
            use rand::Rng;
            let p: String = rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            (p, true)
        }
    };
    users.add_user(&username, &password, "super_user", true).map_err(|e| e.into_anyhow())?;
    if generated {
        println!("opshost: created super_user '{username}' with password '{password}' (shown once; keep it)");
    } else {
        println!("opshost: created super_user '{username}'");
    }
    Ok(())
}

/// `opshost precompile`: fills the compile cache for the given component files and folders,
/// several at a time.
pub fn precompile(root: &std::path::Path, paths: &[PathBuf]) -> Result<usize> {
    // The same engine settings as the server's, or the cache entries would not match its engine.
    let settings = ConfigService::open(root)?.settings()?;
    let runtime = Runtime::new(compile_cache_dir(root), settings.max_concurrent_calls, settings.call_memory)?;
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(crate::registry::wasm_files(path));
        } else {
            files.push(path.clone());
        }
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = files.iter().map(|f| scope.spawn(|| runtime.precompile(f).with_context(|| format!("compiling {}", f.display())))).collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a compile thread panicked"))?)
    })?;
    Ok(files.len())
}

/// `OPSHOST_COMPILE_CACHE` lets several roots share one cache of compiled components (the
/// tests do); entries are keyed by content and engine hash, written atomically.
pub(super) fn compile_cache_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("OPSHOST_COMPILE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("cache").join("components"))
}

/// `opshost user add`: adds a user to the root's store while the server is stopped (the
/// database is locked by a running server). A role that does not exist yet is created with no
/// permissions, to be granted with `alter_role`.
pub fn add_user(root: &std::path::Path, username: &str, password: &str, role: &str) -> Result<()> {
    let config = ConfigService::open(root)?;
    let settings = config.settings()?;
    let storage = Arc::new(Storage::open(&settings.storage_path, settings.write_async)?);
    let users = UserService::open(root, storage)?;
    users.ensure_role(role).map_err(|e| e.into_anyhow())?;
    users.add_user(username, password, role, true).map_err(|e| e.into_anyhow())?;
    Ok(())
}

/// `precompiled/` beside the built-in operations folder: what `cargo xtask build` compiled.
pub fn bundled_cache_dir(builtin_dir: &std::path::Path) -> PathBuf {
    builtin_dir.parent().map(|d| d.join("precompiled")).unwrap_or_else(|| PathBuf::from("precompiled"))
}

pub(super) fn default_builtin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("operations")))
        .unwrap_or_else(|| PathBuf::from("operations"))
}
