//! The registry: operation name -> loaded component, built from the built-in operations folder
//! and `componentsRoot`, swapped atomically as a whole (calls in flight keep the version they
//! started with).

use crate::capabilities::Grants;
use crate::runtime::{CallLimits, LoadedOperation, Runtime};
use crate::services::Services;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Default)]
pub struct Registry {
    pub operations: HashMap<String, Arc<LoadedOperation>>,
    /// Components that failed to load, with the reason (also logged).
    pub failures: Vec<LoadFailure>,
}

#[derive(Clone, Debug)]
pub struct LoadFailure {
    pub source: PathBuf,
    pub reason: String,
}

/// What each built-in operation may import; everything else gets only `types` and `log`.
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
        _ => Grants::with(&[]),
    }
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedOperation>> {
        self.operations.get(name)
    }

    /// Loads every `.wasm` of `builtin_dir`, then of `components_root`. A component that fails
    /// to compile, link or describe itself is skipped with a log line; the rest serve. A
    /// third-party component may not take a built-in operation's name.
    pub fn load(
        runtime: &Runtime,
        services: &Arc<Services>,
        limits: CallLimits,
        builtin_dir: &Path,
        components_root: &Path,
    ) -> Registry {
        let mut registry = Registry::default();
        let builtins = load_dir(runtime, services, limits, builtin_dir, &|name: &str| Ok(builtin_grants(name)));
        let builtin_names: Vec<String> = builtins
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .flat_map(|op| std::iter::once(op.info.name.clone()).chain(op.info.aliases.iter().cloned()))
            .collect();
        let third_party_grants = |name: &str| {
            if builtin_names.iter().any(|b| b == name) {
                Err(format!("operation '{name}' is a built-in operation and cannot be replaced from componentsRoot"))
            } else {
                Ok(Grants::with(&[]))
            }
        };
        let third_party = load_dir(runtime, services, limits, components_root, &third_party_grants);
        for (is_builtin, results) in [(true, builtins), (false, third_party)] {
            for (path, result) in results {
                match result {
                    Ok(op) => {
                        let names: Vec<String> = std::iter::once(op.info.name.clone()).chain(op.info.aliases.iter().cloned()).collect();
                        if let Some((name, existing)) = names.iter().find_map(|n| registry.operations.get(n).map(|e| (n, e))) {
                            let reason = if is_builtin {
                                format!("operation '{name}' is already served by {}", existing.source.display())
                            } else {
                                format!("operation '{name}' is a built-in operation and cannot be replaced from componentsRoot")
                            };
                            registry.fail(path, reason);
                            continue;
                        }
                        tracing::info!("loaded operation '{}' {} from {}", names.join("' / '"), op.info.version, path.display());
                        let op = Arc::new(op);
                        for name in names {
                            registry.operations.insert(name, op.clone());
                        }
                    }
                    Err(e) => registry.fail(path, format!("{e:#}")),
                }
            }
        }
        registry
    }

    fn fail(&mut self, source: PathBuf, reason: String) {
        tracing::error!("skipping component {}: {reason}", source.display());
        self.failures.push(LoadFailure { source, reason });
    }
}

type LoadResult = (PathBuf, anyhow::Result<LoadedOperation>);

/// Loads a folder's components in parallel (compilation dominates a cold start).
fn load_dir(
    runtime: &Runtime,
    services: &Arc<Services>,
    limits: CallLimits,
    dir: &Path,
    grants: &(dyn Fn(&str) -> Result<Grants, String> + Sync),
) -> Vec<LoadResult> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .collect(),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot read the components folder {}: {e}", dir.display());
            }
            return Vec::new();
        }
    };
    files.sort();
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .into_iter()
            .map(|path| {
                scope.spawn(move || {
                    let result = runtime.load(&path, services, limits, grants);
                    (path, result)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect()
    })
}
