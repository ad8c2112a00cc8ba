//! The wasm runtime: one wasmtime `Engine` (pooling allocator, epoch interruption), the
//! `Linker` with every capability, the on-disk cache of compiled components, and the call
//! path (fresh `Store` per call from a pre-instantiated component, with memory and CPU limits).

use crate::bindings::{CallContext, OpError, Operation, OperationInfo, OperationPre};
use crate::capabilities::{CallState, Caller, Grants};
use crate::services::catalog::OpStats;
use crate::services::Services;
use anyhow::{anyhow, Context, Result};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder};

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-call limits, read from `operationsApi.limits` (re-read on restart).
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Largest linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// Wall-clock CPU budget of one call; the guest traps when it is spent.
    pub timeout: Duration,
}

/// The engine, linker and compile cache, shared by every loaded operation.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache_dir: PathBuf,
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
    Answered(Result<String, OpError>, CallEffects),
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

/// What a call asked the host to do after it answers.
#[derive(Default, Debug)]
pub struct CallEffects {
    pub restart: bool,
    /// A service the operation asked to restart (`restart_service`).
    pub restart_service: Option<String>,
    /// Table permissions the caller lacked (HarperDB's `unauthorized_access` entries).
    pub denied: Vec<serde_json::Value>,
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
        let mut linker = Linker::new(&engine);
        Operation::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
        // WASI for third-party components built with standard toolchains; reachable only by
        // components granted `wasi`, and then locked down (see `CallState::wasi_ctx`).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        std::fs::create_dir_all(&cache_dir)
            .with_context(|| format!("creating the component cache {}", cache_dir.display()))?;
        let _ticker = EpochTicker::start(engine.clone());
        Ok(Self { engine, linker, cache_dir, engine_hash, pooled, _ticker })
    }

    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// Compiles (or loads from the cache), links and describes one component file.
    /// `grants_for` decides, from the name the component gives itself, what it may import
    /// (or refuses the name).
    /// Compiles a component file into the cache (nothing else: no linking, no describe).
    pub fn precompile(&self, path: &Path) -> Result<()> {
        let (bytes, hash) = read_component(path)?;
        self.compile_cached(&bytes, &hash).map(|_| ())
    }

    /// Loads one component file (the benchmarks' entry point; the registry reads and hashes
    /// files itself to reuse unchanged ones).
    pub fn load(
        &self,
        path: &Path,
        services: &Arc<Services>,
        limits: CallLimits,
        grants_for: impl Fn(&str) -> Result<Grants, String>,
    ) -> Result<LoadedOperation> {
        let (bytes, hash) = read_component(path)?;
        self.load_bytes(path, &bytes, hash, services, limits, false, grants_for)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        hash: String,
        services: &Arc<Services>,
        limits: CallLimits,
        builtin: bool,
        grants_for: impl Fn(&str) -> Result<Grants, String>,
    ) -> Result<LoadedOperation> {
        let component = self.compile_cached(bytes, &hash)?;
        let pre = self.linker.instantiate_pre(&component).map_err(anyhow::Error::from).context("linking")?;
        let pre = OperationPre::new(pre).map_err(anyhow::Error::from).context("checking the exports")?;

        // Describe runs with no grants at all: a component must not act before it is accepted.
        let state = CallState::new(services.clone(), Grants::none(), "describe".into(), String::new(), limits);
        let mut store = self.store(state, limits);
        let info = block_on(async {
            let instance = pre.instantiate_async(&mut store).await.map_err(anyhow::Error::from).context("instantiating")?;
            instance.call_describe(&mut store).await.map_err(anyhow::Error::from).context("calling describe")
        })?;
        if info.name.is_empty() {
            return Err(anyhow!("describe returned an empty operation name"));
        }

        let grants = grants_for(&info.name).map_err(anyhow::Error::msg)?;
        for import in component.component_type().imports(&self.engine).map(|(name, _)| name) {
            if !grants.allows_import(import) {
                return Err(anyhow!(
                    "operation '{}' imports '{import}', which is not granted to it",
                    info.name
                ));
            }
        }
        Ok(LoadedOperation {
            stats: services.catalog.stats(&info.name),
            info,
            source: path.to_path_buf(),
            hash,
            grants,
            loaded_at: std::time::SystemTime::now(),
            builtin,
            pre,
        })
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
            Ok(answer) => CallOutcome::Answered(answer, std::mem::take(&mut store.data_mut().effects)),
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

    /// Compiled artifacts are cached as `<sha256>-<engine hash>.cwasm`; only files this
    /// process wrote are ever deserialized (deserializing untrusted bytes is unsafe).
    fn compile_cached(&self, bytes: &[u8], hash: &str) -> Result<Component> {
        let cached = self.cache_dir.join(format!("{hash}-{}.cwasm", self.engine_hash));
        if cached.exists() {
            // SAFETY: the cache folder holds only artifacts serialized by this engine
            // configuration (the file name carries its compatibility hash), written atomically.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("ignoring unusable cache entry {}: {e:#}", cached.display()),
            }
        }
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(anyhow::Error::from).context("compiling")?;
        tracing::debug!("compiled component {hash} in {:?}", started.elapsed());
        match component.serialize() {
            Ok(artifact) => {
                let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, artifact).and_then(|_| std::fs::rename(&tmp, &cached)).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!("could not write the compile cache entry {}", cached.display());
                }
            }
            Err(e) => tracing::warn!("could not serialize a compiled component: {e:#}"),
        }
        Ok(component)
    }
}

impl CallState {
    pub(crate) fn store_limits(limits: CallLimits) -> wasmtime::StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(8)
            .build()
    }
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
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16)
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
