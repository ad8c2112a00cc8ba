//! RocksDB options of the storage service, chosen so that requests never wait on background
//! work (issue 18): a read right after a 100,000-record bulk insert must not stall behind the
//! flush and compaction that insert leaves, and concurrent durable writes share WAL syncs.
//!
//! On a 2-core machine the request threads and RocksDB's background threads compete for the
//! same cores; the background pools run at a lower CPU priority, so a compaction takes longer
//! but never delays an answer. Data files are synced in small steps while they are written
//! (`bytes_per_sync`) so no single large fsync at the end of a flush or compaction holds the
//! disk while a durable write waits for its WAL sync.

use rocksdb::{BlockBasedOptions, Env, Options};

/// Background flush and compaction threads (RocksDB's own pools, not the request threads).
const BACKGROUND_JOBS: i32 = 4;

/// Options for the whole database (the options keep their environment alive).
pub(super) fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    match Env::new() {
        Ok(mut env) => {
            // Compactions (low pool) and flushes (high pool) yield the CPU to request threads.
            env.set_background_threads(BACKGROUND_JOBS - 1);
            env.set_high_priority_background_threads(1);
            env.lower_thread_pool_cpu_priority();
            env.lower_high_priority_thread_pool_cpu_priority();
            opts.set_env(&env);
        }
        Err(e) => tracing::warn!("RocksDB environment not tuned: {e}"),
    }
    opts.set_max_background_jobs(BACKGROUND_JOBS);
    opts.set_max_subcompactions(2);
    // Memtables of all tables together stay under this; the fullest is flushed first.
    opts.set_db_write_buffer_size(512 << 20);
    // Concurrent writers form groups that share one WAL write and one fsync (RocksDB's write
    // thread: the group's leader syncs for all, and each writer returns only once the sync
    // covering its batch is done); pipelining lets the next group write its WAL while the
    // previous one is still inserting into memtables.
    opts.set_enable_pipelined_write(true);
    opts.set_bytes_per_sync(1 << 20);
    opts
}

/// Options for a table's column families (records and index).
pub(super) fn table_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // A bulk write or delete of 100,000 records fits one memtable, so it is flushed (and
    // compacted) once, in the background, instead of several times while the burst runs.
    // `db_write_buffer_size` caps the total across tables.
    o.set_write_buffer_size(128 << 20);
    // A full memtable is swapped for a fresh one while it flushes; with four, a burst of
    // writes never waits for a flush to finish (RocksDB stalls writers at the limit).
    o.set_max_write_buffer_number(4);
    // Leave generous room before RocksDB slows or stops writers for level-0 files that
    // compaction has not caught up with (defaults 20 and 36).
    o.set_level_zero_slowdown_writes_trigger(40);
    o.set_level_zero_stop_writes_trigger(60);
    // A point read (search_by_hash, an insert's existence check) skips the files that cannot
    // hold its key, instead of searching each level-0 file a bulk load left behind.
    // Index and filter blocks stay in the table readers' own memory (not the block cache,
    // where a bulk scan or delete would evict them).
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&table);
    o
}
