//! WASI for components built with standard toolchains (`wasm32-wasip2`, or wasip1 plus the
//! adapter), locked down: no preopened folders, no sockets or name lookups, no environment,
//! empty stdin; stdout and stderr are collected and written to the host log after the call.
//! A context is built only when a granted component first touches WASI.

use super::CallState;
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
        // built here always belongs to one.
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
