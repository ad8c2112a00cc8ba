//! The registry: operation name -> loaded component, built from the built-in operations folder
//! and `componentsRoot`, and published atomically as a whole (calls in flight keep the version
//! they started with). Rebuilt on restart and, by the watcher, whenever a component file
//! changes: unchanged files are reused by hash, and a file that fails to load leaves its
//! previous version serving.

use crate::capabilities::Grants;
use crate::runtime::{CallLimits, LoadedOperation, Runtime};
use crate::services::catalog::FileEntry;
use crate::services::Services;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Default)]
pub struct Registry {
    pub operations: HashMap<String, Arc<LoadedOperation>>,
    /// Components that failed to load, with the reason (also logged and in the catalog).
    pub failures: Vec<LoadFailure>,
    /// Built-ins a third-party component took over.
    pub replaced: Vec<Arc<LoadedOperation>>,
}

#[derive(Clone, Debug)]
pub struct LoadFailure {
    pub source: PathBuf,
    pub reason: String,
}

/// Who may import what: `operationsApi.grants` (operation name -> interfaces) over the
/// built-in defaults; third-party components get `log` only unless granted more, and may
/// replace a built-in operation only when `operationsApi.replaceBuiltins` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub grants: HashMap<String, Vec<String>>,
    pub replace_builtins: Vec<String>,
}

impl Policy {
    /// What a component claiming `names` may import. A third-party component may claim no
    /// built-in name (its main name or any alias) unless `replaceBuiltins` lists that name;
    /// grants follow the main name.
    fn grants_for(&self, names: &[String], builtin: bool, builtin_names: &HashSet<String>) -> Result<Grants, String> {
        let main = names.first().map(String::as_str).unwrap_or_default();
        if !builtin {
            if let Some(taken) = names.iter().find(|n| builtin_names.contains(*n) && !self.replace_builtins.contains(n)) {
                return Err(format!(
                    "operation '{taken}' is a built-in operation and cannot be replaced from componentsRoot (allow it in operationsApi.replaceBuiltins)"
                ));
            }
        }
        Ok(match self.grants.get(main) {
            Some(list) => Grants::with(&list.iter().map(String::as_str).collect::<Vec<_>>()),
            None if builtin => builtin_grants(main),
            None => Grants::with(&[]),
        })
    }

    /// The most a file could be granted under any name: checked against its imports before
    /// anything of it runs. Built-ins ship with the server; a third-party file gets at most what
    /// `operationsApi.grants` gives some name.
    fn most(&self, builtin: bool) -> Grants {
        if builtin {
            return Grants::all();
        }
        self.grants
            .values()
            .map(|list| Grants::with(&list.iter().map(String::as_str).collect::<Vec<_>>()))
            .fold(Grants::with(&[]), Grants::union)
    }
}

/// What each built-in operation may import by default.
fn builtin_grants(name: &str) -> Grants {
    match name {
        "get_configuration" | "set_configuration" => Grants::with(&["config"]),
        "system_information" => Grants::with(&["sysinfo"]),
        "restart" => Grants::with(&["control"]),
        "add_certificate" | "remove_certificate" | "list_certificates" => Grants::with(&["certs"]),
        "create_database" | "drop_database" | "create_table" | "drop_table" | "describe_all"
        | "describe_database" | "describe_table" | "insert" | "update" | "upsert" | "delete"
        | "search_by_hash" | "search_by_value" | "search_by_conditions" | "sql" => Grants::with(&["storage"]),
        "get_job" | "search_jobs_by_start_date" => Grants::with(&["jobs"]),
        "delete_records_before" => Grants::with(&["storage", "jobs"]),
        "export_local" => Grants::with(&["storage", "jobs", "filesystem"]),
        "export_to_s3" => Grants::with(&["storage", "jobs", "objectstore"]),
        "restart_service" => Grants::with(&["control", "jobs"]),
        "add_role" | "alter_role" | "drop_role" | "list_roles" | "add_user" | "alter_user" | "drop_user" | "user_info"
        | "list_users" | "create_authentication_tokens" | "refresh_operation_token" => Grants::with(&["users"]),
        "list_operations" => Grants::with(&["catalog"]),
        "install_node_modules" => Grants::with(&["packages"]),
        _ => Grants::with(&[]),
    }
}

/// Where to load from and with which rules.
pub struct Sources<'a> {
    pub builtin_dir: &'a Path,
    pub components_root: &'a Path,
    pub policy: &'a Policy,
    pub limits: CallLimits,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedOperation>> {
        self.operations.get(name)
    }

    /// Loads every `.wasm` of the built-in folder, then of `componentsRoot`. With `previous`,
    /// a file whose content and grants are unchanged keeps its loaded version, and a file that
    /// now fails keeps serving the version it had.
    pub fn load(runtime: &Runtime, services: &Arc<Services>, sources: &Sources, previous: Option<&Registry>) -> Registry {
        let mut registry = Registry::default();
        let mut builtin_names = HashSet::new();
        let mut seen = HashSet::new();
        for builtin in [true, false] {
            let dir = if builtin { sources.builtin_dir } else { sources.components_root };
            let files = wasm_files(dir);
            seen.extend(files.iter().cloned());
            if builtin {
                // A built-in file is named after its operation: its name stays protected even
                // when the file fails to load and has no previous version to keep.
                builtin_names.extend(files.iter().filter_map(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()));
            }
            let results = std::thread::scope(|scope| {
                let handles: Vec<_> = files
                    .into_iter()
                    .map(|path| {
                        let names = &builtin_names;
                        scope.spawn(move || {
                            let result = load_file(runtime, services, sources, previous, &path, builtin, names);
                            (path, result)
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect::<Vec<_>>()
            });
            for (path, result) in results {
                // Third-party components may displace built-ins (the policy already refused the
                // ones it does not allow); built-ins never displace each other.
                let outcome = result.and_then(|op| registry.publish(op, !builtin, sources.policy));
                match outcome {
                    Ok(op) => {
                        if builtin {
                            builtin_names.extend(op.names());
                        }
                        services.catalog.loaded(entry(&op, builtin));
                    }
                    Err(reason) => {
                        tracing::error!("component {} not loaded: {reason}", path.display());
                        // The version this file had keeps serving, if its names are still free
                        // and the configuration still grants it what it was loaded with (a
                        // revoked grant must not survive through the fallback).
                        let still_granted = |prev: &LoadedOperation| {
                            sources.policy.grants_for(&prev.names(), builtin, &builtin_names).is_ok_and(|g| g == prev.grants)
                        };
                        let mut kept = false;
                        if let Some(prev) = previous.and_then(|p| p.operations.values().find(|op| op.source == path)) {
                            if still_granted(prev) && prev.names().iter().all(|n| !registry.operations.contains_key(n)) {
                                for n in prev.names() {
                                    if builtin {
                                        // A kept built-in's names stay protected like a loaded one's.
                                        builtin_names.insert(n.clone());
                                    }
                                    registry.operations.insert(n, prev.clone());
                                }
                                kept = true;
                            }
                        }
                        services.catalog.failed(&path, builtin, reason.clone(), kept);
                        registry.failures.push(LoadFailure { source: path, reason });
                    }
                }
            }
        }
        services.catalog.sweep(&seen);
        for op in &registry.replaced {
            services.catalog.replaced(&op.source);
        }
        registry
    }

    /// Adds a loaded operation under its name and aliases, unless another file serves one of
    /// them. A third-party file may take over a built-in's name only when `replaceBuiltins`
    /// lists that very name (checked again here, whatever the loader decided).
    fn publish(&mut self, op: Arc<LoadedOperation>, third_party: bool, policy: &Policy) -> Result<Arc<LoadedOperation>, String> {
        let names = op.names();
        for name in &names {
            if let Some(existing) = self.operations.get(name) {
                let allowed = third_party && existing.builtin && policy.replace_builtins.contains(name);
                if !allowed {
                    return Err(format!("operation '{name}' is already served by {}", existing.source.display()));
                }
            }
        }
        for name in &names {
            if let Some(old) = self.operations.get(name).cloned() {
                // A replaced built-in goes away under all its names.
                self.operations.retain(|_, o| !Arc::ptr_eq(o, &old));
                self.replaced.push(old);
            }
        }
        tracing::info!("serving operation '{}' {} from {}", names.join("' / '"), op.info.version, op.source.display());
        for name in names {
            self.operations.insert(name, op.clone());
        }
        Ok(op)
    }
}

fn load_file(
    runtime: &Runtime,
    services: &Arc<Services>,
    sources: &Sources,
    previous: Option<&Registry>,
    path: &Path,
    builtin: bool,
    builtin_names: &HashSet<String>,
) -> Result<Arc<LoadedOperation>, String> {
    let (bytes, hash) = crate::runtime::read_component(path).map_err(|e| format!("{e:#}"))?;
    if let Some(prev) = previous.and_then(|p| p.operations.values().find(|op| op.source == path && op.hash == hash)) {
        let grants = sources.policy.grants_for(&prev.names(), builtin, builtin_names)?;
        if grants == prev.grants {
            return Ok(prev.clone());
        }
    }
    let policy = sources.policy;
    let op = runtime
        .load_bytes(path, &bytes, hash, services, sources.limits, builtin, policy.most(builtin), |names| {
            policy.grants_for(names, builtin, builtin_names)
        })
        .map_err(|e| format!("{e:#}"))?;
    Ok(Arc::new(op))
}

fn entry(op: &LoadedOperation, builtin: bool) -> FileEntry {
    FileEntry {
        source: op.source.clone(),
        name: Some(op.info.name.clone()),
        aliases: op.info.aliases.clone(),
        version: Some(op.info.version.clone()),
        hash: Some(op.hash.clone()),
        grants: op.grants.names().map(str::to_string).collect(),
        loaded_at: Some(op.loaded_at),
        status: "serving",
        last_error: None,
        builtin,
    }
}

/// The folder's `.wasm` files, sorted (hidden and partial files left out).
pub fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_component_file(p) && p.is_file())
            .collect(),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot read the components folder {}: {e}", dir.display());
            }
            return Vec::new();
        }
    };
    files.sort();
    files
}

/// `name.wasm`, not a hidden or temporary file.
pub fn is_component_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "wasm")
        && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn policy_defaults_overrides_and_builtin_protection() {
        let builtins: HashSet<String> = ["sql".to_string(), "create_authentication_tokens".to_string()].into();
        let mut policy = Policy::default();
        assert!(policy.grants_for(&names(&["sql"]), true, &builtins).expect("builtin").has("storage"));
        assert!(policy.grants_for(&names(&["sql"]), false, &builtins).is_err(), "third-party cannot take a built-in name");
        let alias = policy.grants_for(&names(&["innocent", "create_authentication_tokens"]), false, &builtins);
        assert!(alias.is_err_and(|e| e.contains("'create_authentication_tokens' is a built-in")), "nor through an alias");
        let third = policy.grants_for(&names(&["mine"]), false, &builtins).expect("third-party");
        assert!(third.has("log") && !third.has("storage"));
        assert_eq!(policy.most(false), Grants::with(&[]), "nothing granted: a third-party file may import only the log");
        policy.grants.insert("mine".into(), vec!["storage".into(), "wasi".into()]);
        policy.replace_builtins.push("sql".into());
        let granted = policy.grants_for(&names(&["mine"]), false, &builtins).expect("granted");
        assert!(granted.has("storage") && granted.has("wasi"));
        assert!(policy.most(false).has("wasi") && !policy.most(false).has("users"));
        assert!(policy.grants_for(&names(&["sql"]), false, &builtins).is_ok(), "allowed by replaceBuiltins");
        assert!(policy.grants_for(&names(&["mine", "create_authentication_tokens"]), false, &builtins).is_err(), "only the listed name");
    }
}
