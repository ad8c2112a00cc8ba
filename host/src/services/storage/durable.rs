//! Group commit for durable writes: a write lands in the WAL and memtables unsynced, and its
//! caller awaits one WAL fsync that covers it and every write that finished before that sync.
//! Also the count of slow writes in flight, which writes on an async worker keep clear of.
//!
//! Why not RocksDB's own grouping (`sync: true`): it is a group too, but every writer waits in
//! it on a thread, so a durable insert cost a hand-off to a blocking thread, a follower's sleep
//! and wake inside RocksDB and a wake back: 4-5 context switches per insert at 16 clients, half
//! the server's CPU in the kernel (issue 18). Here the waiting is async: a waiter is a task on
//! the runtime, and only one thread per group (the sync's) sleeps.
//!
//! What an answer promises is unchanged: a write is acknowledged only once an fsync covering it
//! has returned. What changes is visibility: another request may read a record between its
//! write and that sync, as HarperDB's own overlapping sync (LMDB) allows. A request whose
//! answer depends on what it read (an insert skipped because the key exists) waits for the same
//! sync, so no answer rests on a write that a crash could still undo.

use super::{internal, ServiceError, Storage};
use parking_lot::Mutex;
use rocksdb::WriteBatch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// A batch this large holds RocksDB's write queue for milliseconds (its WAL write and memtable
/// inserts; a bulk insert's 10,000 records are ~5 MB).
pub(super) const LARGE_BATCH: usize = 256 << 10;

/// The sync in progress and what the last one covered.
pub(super) struct GroupSync {
    state: Mutex<SyncState>,
    /// Bumped after every sync, successful or not, so waiters look again.
    done: watch::Sender<u64>,
    /// Writes in flight that can hold RocksDB's write queue for long: a synced one (its fsync,
    /// now and then tens of milliseconds) or a large batch. Every write queued behind one waits
    /// as long, so a write on an async worker (write.rs, `Commit::NoWait`) moves to the blocking
    /// pool while any is in flight rather than block the worker. Best effort: a slow write that
    /// starts in the microseconds between that check and the write can still queue it.
    slow: AtomicUsize,
}

#[derive(Default)]
struct SyncState {
    /// Every write with a sequence number up to this is in a synced WAL.
    synced: u64,
    /// A sync is running; writes that finish meanwhile wait for the next one.
    running: bool,
}

impl Default for GroupSync {
    fn default() -> Self {
        Self { state: Mutex::new(SyncState::default()), done: watch::Sender::new(0), slow: AtomicUsize::new(0) }
    }
}

impl Storage {
    /// Commits a batch, synced unless `storage.writeAsync`: the host's own writes and the ones
    /// that are not the guests' record writes.
    pub(super) fn commit(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        let _slow = self.slow_write(self.sync || batch.size_in_bytes() >= LARGE_BATCH);
        let _changing = self.changing();
        self.db.write_opt(batch, &self.write_options())
    }

    /// Counts a write as slow (see `GroupSync::slow`) until the guard drops.
    pub(super) fn slow_write(&self, slow: bool) -> Option<SlowWrite<'_>> {
        slow.then(|| {
            self.group.slow.fetch_add(1, Ordering::AcqRel);
            SlowWrite(&self.group.slow)
        })
    }

    /// Whether a slow write is in flight: a write on an async worker would queue behind it.
    pub(super) fn slow_writes_in_flight(&self) -> bool {
        self.group.slow.load(Ordering::Acquire) > 0
    }

    /// What the last sync covered (tests).
    #[cfg(test)]
    pub(super) fn group_synced(&self) -> u64 {
        self.group.state.lock().synced
    }

    /// Returns once every write up to sequence number `seq` is durable. The first waiter that
    /// finds no sync running runs one (on a blocking thread) for everyone waiting; the others
    /// wait for it and look again.
    pub async fn synced(self: Arc<Self>, seq: u64) -> Result<(), ServiceError> {
        let mut done = self.group.done.subscribe();
        loop {
            let lead = {
                let mut state = self.group.state.lock();
                if state.synced >= seq {
                    return Ok(());
                }
                !std::mem::replace(&mut state.running, true)
            };
            if !lead {
                // A sync is running; it may not cover `seq` (a write that finished after it
                // started), so look again when it ends.
                done.changed().await.map_err(internal)?;
                continue;
            }
            let leading = Leading(&self.group);
            // Everything finished before this point is in the WAL file this sync covers.
            let target = self.db.latest_sequence_number();
            let storage = self.clone();
            let result = tokio::task::spawn_blocking(move || storage.db.flush_wal(true)).await;
            if matches!(result, Ok(Ok(()))) {
                let mut state = self.group.state.lock();
                state.synced = state.synced.max(target);
            }
            drop(leading);
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(internal(e)),
                Err(e) => Err(ServiceError::Internal(anyhow::anyhow!("the WAL sync task failed: {e}"))),
            };
        }
    }
}

/// Held by the waiter running a sync. Dropped when the sync ends, or with the waiter's future
/// (its request cancelled or out of time): either way the next waiter can lead.
struct Leading<'a>(&'a GroupSync);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.state.lock().running = false;
        self.0.done.send_modify(|n| *n += 1);
    }
}

/// A slow write in flight; dropped when its commit returns.
pub(super) struct SlowWrite<'a>(&'a AtomicUsize);

impl Drop for SlowWrite<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
