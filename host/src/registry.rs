//! The registry: operation name -> loaded component, built from the built-in operations folder
//! and `componentsRoot`, and published atomically as a whole (calls in flight keep the version
//! they started with). Rebuilt on restart and, by the watcher, whenever a component file
//! changes: unchanged files are reused by hash, and a file that fails to load leaves its
//! previous version serving.

use crate::runtime::{CallLimits, LoadedOperation, Runtime};
use crate::services::grants::Grants;
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

pub use crate::services::grants::Policy;

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
                        services.catalog.loaded(entry(&op, builtin, sources.policy));
                    }
                    Err(reason) => {
                        tracing::error!("component {} not loaded: {reason}", path.display());
                        // The version this file had keeps serving, if its names are still free
                        // and the configuration still grants it what it was loaded with (a
                        // revoked grant must not survive through the fallback).
                        let still_granted = |prev: &LoadedOperation| {
                            sources.policy.grants_for(&prev.names(), &prev.imports, &prev.hash, builtin, &builtin_names).is_ok_and(|g| g == prev.grants)
                                && (builtin || signed_grants(sources.policy, &path, &prev.hash).is_ok())
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
        let signed = if builtin { None } else { signed_grants(sources.policy, path, &hash)? };
        let grants = sources.policy.grants_for(&prev.names(), &prev.imports, &hash, builtin, builtin_names)?;
        if within_signed(&prev.info.name, grants, signed)? == prev.grants {
            return Ok(prev.clone());
        }
    }
    let candidate = Candidate { path, bytes: &bytes, hash: &hash, builtin };
    load_candidate(runtime, services, sources.policy, sources.limits, &candidate, builtin_names).map(Arc::new)
}

/// A component's bytes as if read from `path`.
pub struct Candidate<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub hash: &'a str,
    pub builtin: bool,
}

/// The one way a component is loaded, from a folder or from `deploy_component`: under
/// requireSigned a third-party file must be signed for exactly these bytes before anything of
/// it runs, then the runtime checks imports, describes it in its sandbox, and the policy decides
/// its grants (which must stay within what its publisher signed).
pub fn load_candidate(
    runtime: &Runtime,
    services: &Arc<Services>,
    policy: &Policy,
    limits: CallLimits,
    candidate: &Candidate,
    builtin_names: &HashSet<String>,
) -> Result<LoadedOperation, String> {
    let Candidate { path, bytes, hash, builtin } = *candidate;
    let signed = if builtin { None } else { signed_grants(policy, path, hash)? };
    runtime
        .load_bytes(path, bytes, hash.to_string(), services, limits, builtin, policy.most(builtin), |names, imports| {
            let grants = policy.grants_for(names, imports, hash, builtin, builtin_names)?;
            within_signed(names.first().map(String::as_str).unwrap_or_default(), grants, signed)
        })
        .map_err(|e| format!("{e:#}"))
}

/// `grants`, unless they go beyond what the component's publisher signed.
fn within_signed(name: &str, grants: Grants, signed: Option<Grants>) -> Result<Grants, String> {
    match signed {
        Some(signed) if !grants.within(signed) => Err(format!(
            "operation '{name}' would be granted more than its publisher signed ({} > {})",
            grants.names().collect::<Vec<_>>().join(", "),
            signed.names().collect::<Vec<_>>().join(", ")
        )),
        _ => Ok(grants),
    }
}

/// The names built-ins hold: every built-in file's name (even one that failed to load) and the
/// names and aliases of the built-ins that serve.
pub fn builtin_names(registry: &Registry, builtin_dir: &Path) -> HashSet<String> {
    let stems = wasm_files(builtin_dir).into_iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    let serving = registry.operations.values().filter(|op| op.builtin).flat_map(|op| op.names());
    stems.chain(serving).collect()
}

fn entry(op: &LoadedOperation, builtin: bool, policy: &Policy) -> FileEntry {
    FileEntry {
        deployed_version: if builtin { None } else { policy.deployed_as(&op.info.name, &op.hash).map(|d| d.version) },
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

/// A dropped-in component's detached signature: `<file>.wasm.sig`, JSON
/// `{"grants": [...], "signature": "<base64 Ed25519>"}` (see services::signing).
#[derive(serde::Deserialize)]
struct Sidecar {
    #[serde(default)]
    grants: Vec<String>,
    signature: String,
}

/// Under `requireSigned`, the grants a third-party file's publisher signed for exactly these
/// bytes (from its deployment, or the `.sig` file beside it); `None` when signatures are not
/// required.
pub(crate) fn signed_grants(policy: &Policy, path: &Path, hash: &str) -> Result<Option<Grants>, String> {
    if !policy.require_signed {
        return Ok(None);
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let deployed = policy.deployed.values().find(|d| d.hash == hash && d.signature.is_some());
    let (grants, signature) = match deployed {
        Some(d) => (d.grants.clone().unwrap_or_default(), d.signature.clone().unwrap_or_default()),
        None => {
            let mut sidecar = path.as_os_str().to_owned();
            sidecar.push(".sig");
            let text = std::fs::read_to_string(&sidecar).map_err(|_| {
                format!("component '{stem}' is not signed (operationsApi.components.requireSigned is on and there is no {})", Path::new(&sidecar).display())
            })?;
            let parsed: Sidecar = serde_json::from_str(&text).map_err(|e| format!("component '{stem}': unreadable signature file: {e}"))?;
            (parsed.grants, parsed.signature)
        }
    };
    crate::services::signing::verify(&policy.trusted_keys, hash, &grants, &signature).map_err(|e| format!("component '{stem}': {e}"))?;
    Ok(Some(Grants::with(&grants.iter().map(String::as_str).collect::<Vec<_>>())))
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
