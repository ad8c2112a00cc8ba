//! WASI for components built with standard toolchains (`wasm32-wasip2`, or wasip1 plus the
//! adapter), locked down: no preopened folders, no sockets or name lookups, no environment,
//! empty stdin; stdout and stderr are collected and written to the host log after the call.
//! A context is built only when a granted component first touches WASI. The describe sandbox
//! lends these components the clocks, random bytes, and an empty environment, preopens and
//! terminal list only (`define_describe_clocks`).

use super::CallState;
use wasmtime::component::{Component, Linker, Val};
use wasmtime::Engine;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Output a guest may print per call; beyond it writes fail (the guest sees a closed stream).
const OUTPUT_LIMIT: usize = 256 << 10;

pub(crate) struct WasiState {
    ctx: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl WasiState {
    fn new() -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_LIMIT);
        let stderr = MemoryOutputPipe::new(OUTPUT_LIMIT);
        let ctx = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self { ctx, stdout, stderr }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Only components granted `wasi` are linked against a linker that holds these imports
        // (`runtime::granted_linker`; `describe` runs where every import traps), so a context
        // built here always belongs to one. Counted as a host call entered (answers.rs).
        self.trace.entered();
        let state = self.wasi.get_or_insert_with(|| Box::new(WasiState::new()));
        WasiCtxView { ctx: &mut state.ctx, table: &mut self.table }
    }
}

impl CallState {
    /// Writes what the guest printed to the host log, a line at a time.
    pub(crate) fn flush_wasi_output(&mut self) {
        let Some(state) = self.wasi.take() else { return };
        for (stream, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.is_empty()) {
                tracing::info!(target: "opshost::guest", operation = %self.operation, request_id = %self.request_id, "{stream}: {line}");
            }
        }
    }
}

/// In the describe sandbox, where every other import traps: `now` and `resolution` of the WASI
/// wall and monotonic clocks, for the clock interfaces the component imports. Language engines
/// read the clock on entry to every export, `describe` included (componentize-js does, to keep
/// `Date.now()` current), and componentize-py's runtime reads its environment and seeds
/// `random`. The time, random bytes and empty lists tell a component nothing about the host
/// worth hiding, while output, files, sockets and the opshost interfaces stay out of reach until
/// it is accepted.
pub(crate) fn define_describe_clocks(linker: &mut Linker<CallState>, component: &Component, engine: &Engine) -> anyhow::Result<()> {
    let names: Vec<String> = component.component_type().imports(engine).map(|(name, _)| name.to_string()).collect();
    for name in names {
        if name.starts_with("wasi:clocks/monotonic-clock@") {
            let mut clock = linker.instance(&name)?;
            clock.func_wrap("now", |_, (): ()| Ok((monotonic_nanos(),)))?;
            clock.func_wrap("resolution", |_, (): ()| Ok((1u64,)))?;
        } else if name.starts_with("wasi:clocks/wall-clock@") {
            let mut clock = linker.instance(&name)?;
            clock.func_new("now", |_, _, _, results| {
                let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                set_datetime(results, since.as_secs(), since.subsec_nanos())
            })?;
            clock.func_new("resolution", |_, _, _, results| set_datetime(results, 0, 1))?;
        } else if name.starts_with("wasi:cli/environment@") {
            // componentize-py's runtime reads its environment and arguments on the first call
            // into any export. The sandbox answers what a granted call would see: nothing.
            let mut env = linker.instance(&name)?;
            env.func_new("get-environment", |_, _, _, results| set_first(results, Val::List(Vec::new())))?;
            env.func_new("get-arguments", |_, _, _, results| set_first(results, Val::List(Vec::new())))?;
            env.func_new("initial-cwd", |_, _, _, results| set_first(results, Val::Option(None)))?;
        } else if name.starts_with("wasi:random/random@") {
            // CPython seeds its `random` module on the first call. Random bytes tell nothing
            // about the host; the length is bounded so the sandbox's memory stays small.
            let mut random = linker.instance(&name)?;
            random.func_new("get-random-bytes", |_, _, params, results| {
                let len = match params.first() {
                    Some(Val::U64(n)) if *n <= SANDBOX_RANDOM_BYTES => *n as usize,
                    _ => return Err(wasmtime::Error::msg("describe sandbox: too many random bytes asked for")),
                };
                let mut bytes = vec![0u8; len];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
                set_first(results, Val::List(bytes.into_iter().map(Val::U8).collect()))
            })?;
            random.func_new("get-random-u64", |_, _, _, results| set_first(results, Val::U64(rand::random())))?;
        } else if name.starts_with("wasi:filesystem/preopens@") {
            linker.instance(&name)?.func_new("get-directories", |_, _, _, results| set_first(results, Val::List(Vec::new())))?;
        } else if let Some(which) = ["stdin", "stdout", "stderr"].into_iter().find(|w| name.starts_with(&format!("wasi:cli/terminal-{w}@"))) {
            // No terminal: what a granted call sees too.
            linker.instance(&name)?.func_new(&format!("get-terminal-{which}"), |_, _, _, results| set_first(results, Val::Option(None)))?;
        }
    }
    Ok(())
}

/// The most random bytes one sandbox call may ask for.
const SANDBOX_RANDOM_BYTES: u64 = 64 << 10;

/// Writes the single result of a sandbox function.
fn set_first(results: &mut [Val], value: Val) -> wasmtime::Result<()> {
    let slot = results.first_mut().ok_or_else(|| wasmtime::Error::msg("describe sandbox: no result slot"))?;
    *slot = value;
    Ok(())
}

/// Nanoseconds on a monotonic clock (since the first read in this process).
fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(START.get_or_init(std::time::Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Writes a `wasi:clocks/wall-clock.datetime` record as the single result.
fn set_datetime(results: &mut [Val], seconds: u64, nanoseconds: u32) -> wasmtime::Result<()> {
    let slot = results.first_mut().ok_or_else(|| wasmtime::Error::msg("wall-clock: no result slot"))?;
    *slot = Val::Record(vec![("seconds".into(), Val::U64(seconds)), ("nanoseconds".into(), Val::U32(nanoseconds))]);
    Ok(())
}
