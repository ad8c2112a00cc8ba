//! The memory sampler (issue 16): with `OPSHOST_MEMORY_TRACE=<file>` the server appends one
//! line every 5 ms — milliseconds since start, the process's RSS, mimalloc's committed count (the
//! Rust heap: it steps up when mimalloc takes fresh memory from the OS; pages it purges stay
//! counted, so it is not resident memory), RocksDB's memtables and block cache — so a load's
//! peak can be split between the allocators. Off (no thread, no cost) when the variable is not
//! set.

use std::io::Write;
use std::time::{Duration, Instant};

/// Starts the sampler when `OPSHOST_MEMORY_TRACE` names a file; a file that cannot be created
/// is reported and the server runs without it.
pub fn start_from_env() {
    let Some(path) = std::env::var_os("OPSHOST_MEMORY_TRACE") else { return };
    let file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("OPSHOST_MEMORY_TRACE: cannot create {}: {e}", std::path::Path::new(&path).display());
            return;
        }
    };
    let spawned = std::thread::Builder::new().name("memtrace".into()).spawn(move || {
        let mut out = std::io::BufWriter::new(file);
        let _ = writeln!(out, "ms rss_kib mimalloc_commit_kib memtables_kib block_cache_kib");
        let start = Instant::now();
        for n in 1u64.. {
            let (memtables, cache) = crate::services::storage::memory_usage();
            let line = writeln!(out, "{} {} {} {} {}", start.elapsed().as_millis(), rss_kib(), mimalloc_commit() >> 10, memtables >> 10, cache >> 10);
            // Flushed every 200 lines (~1 s), so a killed server's file ends at most a second early.
            if line.is_err() || (n % 200 == 0 && out.flush().is_err()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    if let Err(e) = spawned {
        eprintln!("OPSHOST_MEMORY_TRACE: no sampler thread: {e}");
    }
}

/// Resident set size from `/proc/self/statm` (pages).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page / 1024
}

/// Bytes mimalloc holds committed (its own count, kept whatever the stats level).
fn mimalloc_commit() -> usize {
    let mut commit = 0usize;
    let null = std::ptr::null_mut();
    // SAFETY: every out-pointer is either null (not wanted) or a valid usize.
    unsafe { libmimalloc_sys::mi_process_info(null, null, null, null, null, &mut commit, null, null) };
    commit
}
