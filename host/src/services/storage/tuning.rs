//! RocksDB options of the storage service, chosen so that requests never wait on background
//! work (issue 18): a read right after a 100,000-record bulk insert must not stall behind the
//! flush and compaction that insert leaves, and concurrent durable writes share WAL syncs.
//!
//! On a 2-core machine the request threads and RocksDB's background threads compete for the
//! same cores; compactions run at a lower CPU priority, so a compaction takes longer
//! but never delays an answer. Data files are synced in small steps while they are written
//! (`bytes_per_sync`) so no single large fsync at the end of a flush or compaction holds the
//! disk while a durable write waits for its WAL sync.
//!
//! Memory is bounded independently of how much is written (issue 16: a 1,000,000-row load grew
//! the server by 362-419 MB when memtables could hold 512 MB): all column families' memtables
//! share one budget, writers wait at it for a flush, and every table's blocks, index and filter
//! blocks share one block cache. What else RocksDB holds while a load runs was measured with
//! heaptrack on a 1,000,000-row `csv_file_load` (glibc heap peak 90 MB): the filter builder of a
//! compaction's output file (8 bytes per key until the file is finished: 24 MB for 64 MB files
//! of small index entries), the memtables (a 10,000-row write lands whole in one, past the
//! budget), the write batch itself, block cache, and 1 MB of write buffer per file being written.
//! Hence smaller output files, a smaller memtable budget and smaller file write buffers below.

use rocksdb::{BlockBasedOptions, Cache, Env, Options, WriteBufferManager};
use std::sync::Mutex;

/// Background flush and compaction threads (RocksDB's own pools, not the request threads).
const BACKGROUND_JOBS: i32 = 4;
/// Memtables of all column families together. Near it the largest memtable is flushed, so a
/// load of any size holds about this much unwritten data (db_options: a soft cap).
/// 12 MB (16 before): one 10,000-row load batch is about 8 MB of memtable. At 8 MB every such
/// write waited for a flush and a 100,000-row `csv_data_load` took 1.09 s against 1.03 s (5
/// interleaved runs, medians); at 12 MB it took 1.03 s.
const MEMTABLE_BUDGET: usize = 12 << 20;
/// One memtable. Small memtables are also faster to insert into, and flush in a fraction of a
/// second, so a writer waiting at the budget waits briefly.
const MEMTABLE: usize = 3 << 20;
/// Data, index and filter blocks of every table (RocksDB's default is a separate cache per
/// column family, and index and filter blocks outside any cache, growing with the data).
const BLOCK_CACHE: usize = 8 << 20;
/// Largest SST file a compaction writes (RocksDB's default is 64 MB). The compaction holds a
/// filter hash for every key of the file it is writing until the file ends: 24 MB at 64 MB for
/// the index column family's small entries, a quarter of the glibc heap's peak during a load.
const TARGET_FILE: u64 = 8 << 20;
/// Audit entries at least this large are kept in blob files, out of the audit column family's
/// SST files. One write's entry holds every record it wrote (a 10,000-row load batch: ~2 MB in
/// one value), and inside SST files such a value is one data block: each flush and compaction
/// that rewrote it held it whole, and again compressed (6.6 MB of RocksDB's heap at a
/// 1,000,000-row load's peak), and reading it back held the block. A blob is written once, at
/// flush, and compactions move only its reference.
const AUDIT_BLOB_MIN: u64 = 32 << 10;
/// Blob file size: entries past retention are range-deleted, and a blob file is removed once
/// none of its entries is referenced, so smaller files give the space back sooner.
const AUDIT_BLOB_FILE: u64 = 64 << 20;
/// Write buffer of each file RocksDB is writing (WAL, flush and compaction outputs; default
/// 1 MB each, 5-7 MB together during a load).
const FILE_WRITE_BUFFER: u64 = 256 << 10;

/// The process's block cache, created once and shared by every column family (and every store
/// a test process opens).
fn block_cache() -> Cache {
    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    guard.get_or_insert_with(|| Cache::new_lru_cache(BLOCK_CACHE)).clone()
}

/// The memtable budget of the store opened last (a server opens one store), for
/// [`memory_usage`].
static BUDGET: Mutex<Option<WriteBufferManager>> = Mutex::new(None);

/// Bytes in memtables (of the store opened last) and in the shared block cache: the memory
/// sampler's view of RocksDB (`OPSHOST_MEMORY_TRACE`, memtrace.rs).
pub fn memory_usage() -> (usize, usize) {
    let memtables = BUDGET.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, WriteBufferManager::get_usage);
    (memtables, block_cache().get_usage())
}

/// Options for the whole database (the options keep their environment alive).
pub(super) fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    match Env::new() {
        Ok(mut env) => {
            // Compactions (low pool) yield the CPU to request threads. Flushes (high pool) do
            // not: a writer at the memtable budget waits for one, and a flush at a lower
            // priority than the waiting writer would wait for every busy request thread.
            env.set_background_threads(BACKGROUND_JOBS - 1);
            env.set_high_priority_background_threads(1);
            env.lower_thread_pool_cpu_priority();
            opts.set_env(&env);
        }
        Err(e) => tracing::warn!("RocksDB environment not tuned: {e}"),
    }
    opts.set_max_background_jobs(BACKGROUND_JOBS);
    opts.set_max_subcompactions(2);
    // Memtables of all tables together: past 7/8 of the budget the largest is flushed. A soft
    // cap, not a stall: with `allow_stall` every writer waited at the budget for a flush that
    // RocksDB does not always schedule (it flushes for the budget only on *mutable* memtable
    // memory, and ours is spread over a few column families of 3 MB memtables), and then no
    // write ever returned: durable inserts into one table beside a bulk insert into another
    // wedged the store in 1 run of 3 (gdb: a writer parked in WriteBufferManagerStallWrites,
    // RocksDB's flush threads idle). HarperDB hit the same and turned the stall off. What still
    // bounds memory is the per-column-family limit (`max_write_buffer_number`), whose write
    // slowdown RocksDB lifts itself as flushes finish.
    let budget = WriteBufferManager::new_write_buffer_manager(MEMTABLE_BUDGET, false);
    opts.set_write_buffer_manager(&budget);
    *BUDGET.lock().unwrap_or_else(|e| e.into_inner()) = Some(budget);
    // Concurrent writers form groups that share one WAL write and one fsync (RocksDB's write
    // thread: the group's leader syncs for all, and each writer returns only once the sync
    // covering its batch is done). Not pipelined: pipelining (the next group writes its WAL
    // while the previous one inserts into memtables) hands each group between two queues, and
    // on 2 cores those extra wake-ups cost more than the overlap gains: durable single inserts
    // at c16 ran 14,183 req/s pipelined against 15,185 without (3 interleaved pairs, fresh
    // roots), bulk insert and delete_records_before unchanged.
    opts.set_enable_pipelined_write(false);
    opts.set_bytes_per_sync(1 << 20);
    opts.set_writable_file_max_buffer_size(FILE_WRITE_BUFFER);
    opts
}

/// Options for a table's column families (records and index).
pub(super) fn table_options() -> Options {
    let mut o = Options::default();
    // Levels 0 and 1 uncompressed: they hold what was just written, which flushes and the first
    // compaction rewrite at once (LZ4 was 5.5% of a bulk insert's CPU) and reads find first.
    // Deeper levels, where the bulk of a large table ends up, stay LZ4. Measured on fresh roots,
    // 3 interleaved pairs: 100k bulk insert 1.02 -> 0.98 s, delete_records_before 0.36 -> 0.34 s.
    {
        use rocksdb::DBCompressionType::{Lz4, None as Plain};
        o.set_compression_per_level(&[Plain, Plain, Lz4, Lz4, Lz4, Lz4, Lz4]);
    }
    o.set_write_buffer_size(MEMTABLE);
    o.set_target_file_size_base(TARGET_FILE);
    // A full memtable is swapped for a fresh one while it flushes, so a burst of writes waits
    // only when flushes fall behind the shared budget (`MEMTABLE_BUDGET`).
    o.set_max_write_buffer_number(4);
    // Leave generous room before RocksDB slows or stops writers for level-0 files that
    // compaction has not caught up with (defaults 20 and 36).
    o.set_level_zero_slowdown_writes_trigger(40);
    o.set_level_zero_stop_writes_trigger(60);
    // A point read (search_by_hash, an insert's existence check) skips the files that cannot
    // hold its key, instead of searching each level-0 file a bulk load left behind.
    let mut table = block_table();
    table.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&table);
    o
}

/// Options for a column family by name: index column families (`i/<database>/<table>`, see
/// `index_cf`) are [`index_options`], the others [`table_options`].
pub(super) fn options_for(cf: &str) -> Options {
    if cf.starts_with("i/") {
        index_options()
    } else {
        table_options()
    }
}

/// Options for a table's index column family: the table's, without a bloom filter. The index
/// is only ever scanned by ranges (`attribute 0 value …`), and a whole-key filter serves point
/// reads alone; yet a filter cost 8 bytes per key in every flush and compaction until its file
/// was done (the index holds ~8 entries per record: 15 MB of RocksDB's 53 MB heap peak in a
/// 1,000,000-row load), filter blocks in the block cache, and the hashing CPU.
pub(super) fn index_options() -> Options {
    let mut o = table_options();
    o.set_block_based_table_factory(&block_table());
    o
}

/// Options for the audit log's column family: the same memory bounds, no filter (it is read
/// by ranges of time, never by point).
pub(super) fn audit_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_write_buffer_size(MEMTABLE);
    o.set_target_file_size_base(TARGET_FILE);
    o.set_max_write_buffer_number(4);
    o.set_block_based_table_factory(&block_table());
    o.set_enable_blob_files(true);
    o.set_min_blob_size(AUDIT_BLOB_MIN);
    o.set_blob_file_size(AUDIT_BLOB_FILE);
    o.set_blob_compression_type(rocksdb::DBCompressionType::Lz4);
    o
}

/// Blocks in the shared cache. Index and filter blocks are charged to it too, so they are
/// bounded with the rest; they are kept at high priority (a bulk scan's data blocks evict
/// them last) and pinned while their file is in level 0, where point reads look first.
fn block_table() -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&block_cache());
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table
}
