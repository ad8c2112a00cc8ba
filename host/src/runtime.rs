//! The wasm runtime: one wasmtime `Engine` (pooling allocator, epoch interruption), the
//! `Linker` with every capability, the on-disk cache of compiled components, and the call
//! path (fresh `Store` per call from a pre-instantiated component, with memory and CPU limits).

use crate::bindings::{CallContext, OpError, OperationInfo, OperationPre};
use crate::capabilities::{CallState, Caller, Grants};
// The call's inputs and effects live with the store data they belong to; re-exported here for
// the layers above.
pub use crate::capabilities::{CallEffects, CallLimits};
use crate::services::catalog::OpStats;
use crate::services::Services;
use anyhow::{anyhow, Context, Result};
use crate::compile_cache::CompileCache;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// `describe` only returns constants: it gets a short deadline of its own, so a component that
/// loops there delays a reload by this much at most (not by `callTimeout`).
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// ...and a small memory cap.
const DESCRIBE_MEMORY: usize = 64 << 20;

/// The engine, the linkers (one per grant set) and the compile cache, shared by every loaded
/// operation.
pub struct Runtime {
    engine: Engine,
    /// A component is linked against a linker holding only the interfaces it was granted, so an
    /// ungranted import cannot even be resolved (the per-function checks are a second line).
    linkers: parking_lot::Mutex<HashMap<Grants, Arc<Linker<CallState>>>>,
    cache: CompileCache,
    /// Read-only: components precompiled into the dist folder by `cargo xtask build`.
    bundled: Option<CompileCache>,
    engine_hash: String,
    pooled: bool,
    _ticker: EpochTicker,
}

/// A component that compiled, linked and described itself, ready to serve calls.
pub struct LoadedOperation {
    pub info: OperationInfo,
    pub source: PathBuf,
    /// SHA-256 of the component file.
    pub hash: String,
    pub grants: Grants,
    /// What the component imports (a built-in is granted exactly this unless configured).
    pub imports: Vec<String>,
    pub loaded_at: std::time::SystemTime,
    /// From the built-in operations folder (else from `componentsRoot`).
    pub builtin: bool,
    /// Call counters, shared with the catalog.
    pub stats: Arc<OpStats>,
    pre: OperationPre<CallState>,
}

impl LoadedOperation {
    /// The name and the aliases.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(self.info.name.clone()).chain(self.info.aliases.iter().cloned()).collect()
    }
}

/// How a call ended.
pub enum CallOutcome {
    /// The operation answered (with its own success or error).
    /// With it, the host functions it entered (for the answer cache).
    Answered(Result<String, OpError>, CallEffects, crate::answers::Trace),
    /// A trap, an exhausted deadline or memory limit: the detail is for the log only.
    Failed(Failure, anyhow::Error),
}

/// Why a call failed, coarse enough to tell the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The epoch deadline passed.
    Timeout,
    /// Memory growth beyond the limit was refused and the guest gave up.
    Memory,
    /// Any other trap (a panic, an out-of-bounds access, ...).
    Trap,
}

impl Runtime {
    /// Builds the engine with a pooling allocator sized for `max_instances` concurrent calls,
    /// falling back to on-demand allocation when the address-space reservation fails.
    pub fn new(cache_dir: PathBuf, max_instances: u32, max_memory: usize) -> Result<Self> {
        let (engine, pooled) = match Engine::new(&engine_config(Some((max_instances, max_memory)))) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand allocation");
                (Engine::new(&engine_config(None))?, false)
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        let cache = CompileCache::open(cache_dir, engine_hash.clone());
        let _ticker = EpochTicker::start(engine.clone());
        Ok(Self { engine, linkers: Default::default(), cache, bundled: None, engine_hash, pooled, _ticker })
    }

    /// Also reads compiled components from `dir` (never writes there), when it is usable.
    pub fn with_bundled_cache(mut self, dir: PathBuf) -> Self {
        self.bundled = CompileCache::open_bundled(dir, self.engine_hash.clone());
        self
    }

    /// The linker for one grant set: only the granted interfaces are in it.
    fn linker_for(&self, grants: Grants) -> Result<Arc<Linker<CallState>>> {
        if let Some(linker) = self.linkers.lock().get(&grants) {
            return Ok(linker.clone());
        }
        let linker = Arc::new(granted_linker(&self.engine, grants)?);
        self.linkers.lock().insert(grants, linker.clone());
        Ok(linker)
    }

    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// Compiles a component file into the cache (nothing else: no linking, no describe).
    pub fn precompile(&self, path: &Path) -> Result<()> {
        let (bytes, hash) = read_component(path)?;
        self.compile_cached(&bytes, &hash).map(|_| ())
    }

    /// Loads one component file as a third-party one (the benchmarks' entry point; the registry
    /// reads and hashes files itself to reuse unchanged ones).
    pub fn load(
        &self,
        path: &Path,
        services: &Arc<Services>,
        limits: CallLimits,
        grants_for: impl Fn(&[String], &[String]) -> Result<Grants, String>,
    ) -> Result<LoadedOperation> {
        let (bytes, hash) = read_component(path)?;
        self.load_bytes(path, &bytes, hash, services, limits, false, Grants::all(), grants_for)
    }

    /// Compiles (or loads from the cache), checks and describes one component, in this order,
    /// so that nothing of a component runs before it is known to be acceptable:
    /// 1. its imports must fit `most`, the most this file could be granted under any name;
    /// 2. `describe` runs in a sandbox where every import traps, under a short deadline;
    /// 3. `grants_for` decides, from every name the component claims (and, for a built-in, what
    ///    it imports), what it may import (or
    ///    refuses a name), and the imports are checked against exactly that;
    /// 4. it is linked against a linker holding only those interfaces.
    #[allow(clippy::too_many_arguments)]
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        hash: String,
        services: &Arc<Services>,
        limits: CallLimits,
        builtin: bool,
        most: Grants,
        grants_for: impl Fn(&[String], &[String]) -> Result<Grants, String>,
    ) -> Result<LoadedOperation> {
        let component = self.compile_cached(bytes, &hash)?;
        let imports: Vec<String> = component.component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(import) = imports.iter().find(|i| !most.allows_import(i)) {
            return Err(anyhow!(
                "component '{stem}' imports '{import}', which is not granted to it (grant it in operationsApi.grants)"
            ));
        }

        let info = self.describe(&component, services, limits)?;
        let names = info_names(&info);
        for name in &names {
            check_operation_name(name)?;
        }
        let grants = grants_for(&names, &imports).map_err(anyhow::Error::msg)?;
        if let Some(import) = imports.iter().find(|i| !grants.allows_import(i)) {
            return Err(anyhow!("operation '{}' imports '{import}', which is not granted to it", info.name));
        }
        let linker = self.linker_for(grants)?;
        let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).context("linking")?;
        let pre = OperationPre::new(pre).map_err(anyhow::Error::from).context("checking the exports")?;
        Ok(LoadedOperation {
            stats: services.catalog.stats(&info.name),
            info,
            source: path.to_path_buf(),
            hash,
            grants,
            imports,
            loaded_at: std::time::SystemTime::now(),
            builtin,
            pre,
        })
    }

    /// Asks a component who it is, in a sandbox: every import it has is defined to trap (but
    /// reading the WASI clocks), so it cannot reach the host, WASI or anything else before it is
    /// accepted.
    fn describe(&self, component: &Component, services: &Arc<Services>, limits: CallLimits) -> Result<OperationInfo> {
        let mut sandbox = Linker::<CallState>::new(&self.engine);
        crate::capabilities::wasi::define_describe_clocks(&mut sandbox, component, &self.engine).context("linking the describe sandbox")?;
        sandbox.define_unknown_imports_as_traps(component).map_err(anyhow::Error::from).context("linking the describe sandbox")?;
        let pre = sandbox.instantiate_pre(component).map_err(anyhow::Error::from).context("linking")?;
        let pre = OperationPre::new(pre).map_err(anyhow::Error::from).context("checking the exports")?;
        let limits = CallLimits { memory_bytes: limits.memory_bytes.min(DESCRIBE_MEMORY), timeout: DESCRIBE_TIMEOUT };
        let state = CallState::new(services.clone(), Grants::none(), "describe".into(), String::new(), limits);
        let mut store = self.store(state, limits);
        let info = block_on(async {
            let instance = pre.instantiate_async(&mut store).await.map_err(anyhow::Error::from).context("instantiating")?;
            instance.call_describe(&mut store).await.map_err(anyhow::Error::from)
        })
        .map_err(|e| {
            if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                anyhow!("describe ran past its time limit ({DESCRIBE_TIMEOUT:?})")
            } else {
                e.context("calling describe")
            }
        })?;
        if info.name.is_empty() {
            return Err(anyhow!("describe returned an empty operation name"));
        }
        Ok(info)
    }

    /// Runs `handle` of a loaded operation in a fresh store. The guest yields to the executor
    /// at every epoch tick. Traps never escape: they come back as `CallOutcome::Failed`.
    pub async fn call(
        &self,
        op: &LoadedOperation,
        services: &Arc<Services>,
        context: &CallContext,
        caller: Caller,
        request: &str,
        limits: CallLimits,
    ) -> CallOutcome {
        let state = CallState::new(
            services.clone(),
            op.grants,
            op.info.name.clone(),
            context.request_id.clone(),
            limits,
        )
        .with_caller(caller, context.job_id.clone());
        let started = Instant::now();
        let mut store = self.store(state, limits);
        let result = match op.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance.call_handle(&mut store, context, request).await,
            Err(e) => Err(e),
        };
        op.stats.record(started.elapsed(), !matches!(result, Ok(Ok(_))));
        store.data_mut().flush_wasi_output();
        match result {
            Ok(answer) => {
                let state = store.data_mut();
                CallOutcome::Answered(answer, std::mem::take(&mut state.effects), std::mem::take(&mut state.trace))
            }
            Err(error) => {
                let failure = if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                    Failure::Timeout
                } else if store.data().limits.memory_denied {
                    Failure::Memory
                } else {
                    Failure::Trap
                };
                CallOutcome::Failed(failure, anyhow::Error::from(error))
            }
        }
        // The store (and a trapped instance with it) is dropped here, never reused.
    }

    fn store(&self, state: CallState, limits: CallLimits) -> Store<CallState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Yield at every tick so other requests on this thread run; trap once the call's
        // time is spent (counted from the store's creation, instantiation included).
        let deadline = Instant::now() + limits.timeout;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        store
    }

    /// Compiled artifacts are cached by the component's hash and the engine's configuration;
    /// only entries this server wrote (MAC-checked by the cache) are ever deserialized.
    fn compile_cached(&self, bytes: &[u8], hash: &str) -> Result<Component> {
        let cached = self.cache.get(hash).or_else(|| self.bundled.as_ref().and_then(|b| b.get(hash)));
        if let Some(artifact) = cached {
            // SAFETY: the artifact was serialized by an engine with this configuration (its hash
            // is in the entry's name and MAC) and written by this server (the MAC verifies under
            // a key only this user can read), so it is the output of `Component::serialize`.
            match unsafe { Component::deserialize(&self.engine, &artifact) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("ignoring an unusable compile cache entry for {hash}: {e:#}"),
            }
        }
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(anyhow::Error::from).context("compiling")?;
        tracing::debug!("compiled component {hash} in {:?}", started.elapsed());
        match component.serialize() {
            Ok(artifact) => self.cache.put(hash, &artifact),
            Err(e) => tracing::warn!("could not serialize a compiled component: {e:#}"),
        }
        Ok(component)
    }
}

/// The name and aliases an `OperationInfo` claims.
fn info_names(info: &OperationInfo) -> Vec<String> {
    std::iter::once(info.name.clone()).chain(info.aliases.iter().cloned()).collect()
}

/// Operation names are what HarperDB's are: a letter, then letters, digits and `_`.
fn check_operation_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(anyhow!("'{}' is not a valid operation name (a letter, then letters, digits or '_', at most 64)", name.escape_debug()))
    }
}

/// A linker with exactly the granted interfaces.
fn granted_linker(engine: &Engine, grants: Grants) -> Result<Linker<CallState>> {
    use crate::bindings::opshost::host as h;
    type D = HasSelf<CallState>;
    let mut linker = Linker::new(engine);
    let l = &mut linker;
    let steps: [(&str, &dyn Fn(&mut Linker<CallState>) -> wasmtime::Result<()>); 17] = [
        ("types", &|l| h::types::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("log", &|l| h::log::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("config", &|l| h::config::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("sysinfo", &|l| h::sysinfo::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("control", &|l| h::control::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("storage", &|l| h::storage::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("certs", &|l| h::certs::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("jobs", &|l| h::jobs::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("filesystem", &|l| h::filesystem::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("objectstore", &|l| h::objectstore::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("sources", &|l| h::sources::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("users", &|l| h::users::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("catalog", &|l| h::catalog::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("packages", &|l| h::packages::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("components", &|l| h::components::add_to_linker::<CallState, D>(l, CallState::entered)),
        ("cluster", &|l| h::cluster::add_to_linker::<CallState, D>(l, CallState::entered)),
        // Locked down: see `CallState::ctx` in capabilities/wasi.rs.
        ("wasi", &|l| wasmtime_wasi::p2::add_to_linker_async(l)),
    ];
    for (interface, add) in steps {
        if grants.has(interface) {
            add(l).map_err(anyhow::Error::from).with_context(|| format!("linking '{interface}'"))?;
        }
    }
    Ok(linker)
}

fn engine_config(pool: Option<(u32, usize)>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    // Explicit bounds checks instead of guard regions: with guard pages, every call whose guest
    // grows memory (Rust's allocator always does) pays an mprotect to grow and another to shrink
    // on reuse, each a cross-core TLB flush. Without them a reused slot stays accessible.
    config.memory_guard_size(0);
    config.signals_based_traps(false);
    if let Some((instances, max_memory)) = pool {
        // A pooled slot must reserve the largest memory a guest may grow to.
        config.memory_reservation(max_memory as u64);
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(instances)
            // A counter, not a pool of slots (instance metadata is allocated per instance):
            // a Python component (componentize-py) instantiates 38 core modules.
            .total_core_instances(instances * 64)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_core_instances_per_component(64)
            .max_memory_size(max_memory)
            // Reset the pages a call touched in place instead of unmapping them: PAGEMAP_SCAN
            // (Linux >= 6.7) finds them, so the next call takes no page faults and no TLB
            // shootdown. A Rust guest's stack, data and first heap pages fit in 2 MiB.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(if pagemap_scan_likely() { 2 << 20 } else { 64 << 10 })
            .table_keep_resident(64 << 10)
            // What still has to be unmapped is unmapped in batches (one TLB flush per batch).
            .decommit_batch_size(16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    config
}

/// A component file's bytes and their SHA-256 (hex): the compile cache's key.
pub fn read_component(path: &Path) -> Result<(Vec<u8>, String)> {
    use sha2::Digest;
    let bytes = std::fs::read(path).context("reading the file")?;
    let hash = hex::encode(sha2::Sha256::digest(&bytes));
    Ok((bytes, hash))
}

/// Whether the kernel has PAGEMAP_SCAN (Linux 6.7+). Without it wasmtime would memset the
/// whole keep-resident region on every call, so a large region only pays off with it.
fn pagemap_scan_likely() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(major), Some(minor)) if (major, minor) >= (6, 7))
}

/// Drives a future to completion on this thread without an async runtime. Used only to ask a
/// component to describe itself while loading; the guest yields at epoch ticks, so polling
/// again after a short pause is all it needs.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Advances the engine's epoch every `EPOCH_TICK` so deadlines fire; stops on drop.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A built test guest (`cargo xtask test` builds them and sets `OPSHOST_TEST_GUESTS`).
    fn test_guest(name: &str) -> Option<Vec<u8>> {
        let dir = std::env::var_os("OPSHOST_TEST_GUESTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/opshost-test-guests"));
        let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).ok();
        if bytes.is_none() {
            eprintln!("skipped: test guest {name} is not built (run through `cargo xtask test`)");
        }
        bytes
    }

    #[test]
    fn a_component_links_only_against_the_interfaces_it_was_granted() {
        let Some(bytes) = test_guest("test_ungranted") else { return };
        let cache = std::env::temp_dir().join(format!("opshost-link-test-{}", std::process::id()));
        let runtime = Runtime::new(cache.clone(), 4, 64 << 20).expect("runtime");
        let component = Component::new(&runtime.engine, &bytes).expect("compiles");
        // test_ungranted imports storage: a linker without it cannot resolve the import.
        let without = runtime.linker_for(Grants::with(&["config"])).expect("linker");
        let err = without.instantiate_pre(&component).err().expect("storage is not in this linker");
        assert!(format!("{err:#}").contains("storage"), "{err:#}");
        let with = runtime.linker_for(Grants::with(&["storage"])).expect("linker");
        assert!(with.instantiate_pre(&component).is_ok());
        // One linker per grant set, reused.
        assert!(Arc::ptr_eq(&with, &runtime.linker_for(Grants::with(&["storage"])).expect("linker")));
        let _ = std::fs::remove_dir_all(cache);
    }
}
