//! Background jobs: records in `system.hdb_job` (surviving restarts), live progress in memory,
//! a bound on concurrently running jobs and on queued ones (globally and per user), ageing out
//! of old records, and interruption of running jobs on restart.

use super::storage::{StorageBackend, WriteMode, SYSTEM_DATABASE};
use super::ServiceError;
use anyhow::Context as _;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

const TABLE: &str = "hdb_job";

/// Jobs accepted but not finished (queued or running), over all users: each keeps its request
/// body in memory, so a queue without a bound is a memory leak anyone with a job grant can grow.
pub const MAX_PENDING: usize = 100;
/// The same, per user: one user cannot take the whole queue.
pub const MAX_PENDING_PER_USER: usize = 20;
/// Finished job records older than this are purged (at start and as jobs are created).
const KEEP_FOR_MS: u64 = 30 * 86_400_000;
/// At most this many finished records are kept, newest first: `search_jobs_by_start_date`
/// and the start-up scan read the whole table.
const KEEP_AT_MOST: usize = 10_000;
/// Every this many created jobs, old records are purged.
const PURGE_EVERY: u64 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Complete,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Complete => "COMPLETE",
            Status::Error => "ERROR",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "COMPLETE" => Status::Complete,
            "IN_PROGRESS" => Status::InProgress,
            _ => Status::Error,
        }
    }
}

/// One job as stored, plus its live progress.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub job_type: String,
    pub status: Status,
    pub message: Option<String>,
    pub result: Option<Value>,
    pub created: u64,
    pub start: u64,
    pub end: Option<u64>,
    pub user: String,
    pub done: u64,
    pub total: u64,
}

impl Job {
    fn to_record(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("type".into(), json!(self.job_type));
        m.insert("status".into(), json!(self.status.as_str()));
        if let Some(message) = &self.message {
            m.insert("message".into(), json!(message));
        }
        if let Some(result) = &self.result {
            m.insert("result".into(), result.clone());
        }
        m.insert("created_datetime".into(), json!(self.created));
        m.insert("start_datetime".into(), json!(self.start));
        if let Some(end) = self.end {
            m.insert("end_datetime".into(), json!(end));
        }
        m.insert("user".into(), json!(self.user));
        Value::Object(m)
    }

    fn from_record(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(Value::as_f64).map(|f| f as u64);
        Some(Job {
            id: s("id")?,
            job_type: s("type").unwrap_or_default(),
            status: Status::parse(&s("status").unwrap_or_default()),
            message: s("message"),
            result: v.get("result").filter(|r| !r.is_null()).cloned(),
            created: n("created_datetime").unwrap_or(0),
            start: n("start_datetime").unwrap_or(0),
            end: n("end_datetime"),
            user: s("user").unwrap_or_default(),
            done: 0,
            total: 0,
        })
    }
}

/// Live state of a running job: progress, and how to stop it.
struct Running {
    user: String,
    done: u64,
    total: u64,
    abort: Option<tokio::task::AbortHandle>,
}

pub struct JobService {
    storage: Arc<dyn StorageBackend>,
    running: Mutex<HashMap<String, Running>>,
    /// Bounds how many jobs run at once (`operationsApi.jobs.maxConcurrent`); the rest wait
    /// IN_PROGRESS for a slot, and requests keep being answered meanwhile.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Jobs created since start, to purge old records every [`PURGE_EVERY`].
    created: std::sync::atomic::AtomicU64,
}

/// Why a job could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The queue is full (globally or for this user); the client may retry later.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl JobService {
    /// Opens the job table; a job still IN_PROGRESS was running when the server stopped, and
    /// is marked ERROR so no one waits on it forever.
    pub fn open(storage: Arc<dyn StorageBackend>, max_concurrent: usize) -> anyhow::Result<Arc<Self>> {
        if storage.describe_table(SYSTEM_DATABASE, TABLE).is_err() {
            storage.create_table(SYSTEM_DATABASE, TABLE, "id").map_err(ServiceError::into_anyhow).context("creating system.hdb_job")?;
        }
        let service = Arc::new(Self {
            storage,
            running: Mutex::new(HashMap::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1))),
            created: std::sync::atomic::AtomicU64::new(0),
        });
        let stale: Vec<Job> = service.all().map_err(ServiceError::into_anyhow)?.into_iter().filter(|j| j.status == Status::InProgress).collect();
        for mut job in stale {
            job.status = Status::Error;
            job.message = Some("The server stopped while this job was running; it did not finish".into());
            job.end = Some(now_ms());
            service.store(&job).map_err(ServiceError::into_anyhow)?;
        }
        if let Err(e) = service.purge(now_ms()) {
            tracing::warn!("could not purge old job records: {e}");
        }
        Ok(service)
    }

    /// Removes finished job records older than [`KEEP_FOR_MS`], and the oldest beyond
    /// [`KEEP_AT_MOST`]; returns how many were removed. Unfinished jobs are never removed.
    pub fn purge(&self, now: u64) -> Result<usize, ServiceError> {
        let mut finished: Vec<Job> = self.all()?.into_iter().filter(|j| j.status != Status::InProgress).collect();
        // Newest first; what is past the count or the age goes.
        finished.sort_by(|a, b| b.end.unwrap_or(b.start).cmp(&a.end.unwrap_or(a.start)));
        let cutoff = now.saturating_sub(KEEP_FOR_MS);
        let old: Vec<Value> = finished
            .iter()
            .enumerate()
            .filter(|(i, j)| *i >= KEEP_AT_MOST || j.end.unwrap_or(j.start) < cutoff)
            .map(|(_, j)| Value::String(j.id.clone()))
            .collect();
        let removed = old.len();
        if removed > 0 {
            self.storage.delete(SYSTEM_DATABASE, TABLE, old)?;
        }
        Ok(removed)
    }

    /// Whether enough jobs were created since the last purge that it is time for another
    /// (the caller runs [`JobService::purge`] off the async workers).
    pub fn purge_due(&self) -> bool {
        self.created.load(std::sync::atomic::Ordering::Relaxed) % PURGE_EVERY == 0
    }

    fn store(&self, job: &Job) -> Result<(), ServiceError> {
        self.storage.write(SYSTEM_DATABASE, TABLE, WriteMode::Upsert, vec![job.to_record()]).map(|_| ())
    }

    fn all(&self) -> Result<Vec<Job>, ServiceError> {
        let rows = self.storage.search(SYSTEM_DATABASE, TABLE, Default::default())?.collect_all()?;
        Ok(rows.iter().filter_map(Job::from_record).collect())
    }

    /// Records a new IN_PROGRESS job and returns it, unless the queue is full (checked and
    /// reserved under one lock, before the record is written, so parallel requests cannot
    /// overshoot the bounds). Blocking: it writes (with fsync) to storage.
    pub fn create(&self, job_type: &str, user: &str) -> Result<Job, CreateError> {
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut running = self.running.lock();
            if running.len() >= MAX_PENDING {
                return Err(CreateError::Busy(format!("Too many jobs are queued ({MAX_PENDING}); try again later")));
            }
            if running.values().filter(|r| r.user == user).count() >= MAX_PENDING_PER_USER {
                return Err(CreateError::Busy(format!(
                    "User '{user}' already has {MAX_PENDING_PER_USER} jobs queued or running; try again later"
                )));
            }
            running.insert(id.clone(), Running { user: user.to_string(), done: 0, total: 0, abort: None });
        }
        let now = now_ms();
        let job = Job {
            id,
            job_type: job_type.to_string(),
            status: Status::InProgress,
            message: None,
            result: None,
            created: now,
            start: now,
            end: None,
            user: user.to_string(),
            done: 0,
            total: 0,
        };
        if let Err(e) = self.store(&job) {
            self.running.lock().remove(&job.id);
            return Err(e.into());
        }
        self.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(job)
    }

    /// Remembers how to stop a job's task (see [`JobService::interrupt_all`]).
    pub fn attach(&self, id: &str, abort: tokio::task::AbortHandle) {
        if let Some(r) = self.running.lock().get_mut(id) {
            r.abort = Some(abort);
        }
    }

    /// Whether the job is still to be run (not finished, not interrupted).
    pub fn is_running(&self, id: &str) -> bool {
        self.running.lock().contains_key(id)
    }

    pub fn progress(&self, id: &str, done: u64, total: u64) {
        if let Some(r) = self.running.lock().get_mut(id) {
            r.done = done;
            r.total = total;
        }
    }

    /// Ends a job: `Ok((message, result))` is COMPLETE, `Err(message)` is ERROR. A job that
    /// was already ended (interrupted) stays as it is.
    pub fn finish(&self, id: &str, outcome: Result<(String, Option<Value>), String>) -> Result<(), ServiceError> {
        if self.running.lock().remove(id).is_none() {
            return Ok(());
        }
        let Some(mut job) = self.get(id)? else { return Ok(()) };
        job.end = Some(now_ms());
        match outcome {
            Ok((message, result)) => {
                job.status = Status::Complete;
                job.message = Some(message);
                job.result = result;
            }
            Err(message) => {
                job.status = Status::Error;
                job.message = Some(message);
            }
        }
        self.store(&job)
    }

    /// Stops every running job and marks it ERROR with `reason` (a restart reloads the
    /// operations; a job must not keep running half on the old world).
    pub fn interrupt_all(&self, reason: &str) {
        let running: Vec<(String, Running)> = self.running.lock().drain().collect();
        for (id, r) in running {
            if let Some(abort) = r.abort {
                abort.abort();
            }
            let ended = self.get(&id).and_then(|job| match job {
                Some(mut job) => {
                    job.status = Status::Error;
                    job.message = Some(reason.to_string());
                    job.end = Some(now_ms());
                    self.store(&job)
                }
                None => Ok(()),
            });
            if let Err(e) = ended {
                tracing::error!(job = %id, "could not mark an interrupted job: {e}");
            }
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<Job>, ServiceError> {
        let rows = self.storage.get(SYSTEM_DATABASE, TABLE, &[Value::String(id.to_string())], &["*".to_string()])?;
        Ok(rows.first().and_then(Job::from_record).map(|job| self.with_progress(job)))
    }

    /// Jobs that started within `from..=to`, oldest first.
    pub fn search_by_start(&self, from: u64, to: u64) -> Result<Vec<Job>, ServiceError> {
        let mut jobs: Vec<Job> =
            self.all()?.into_iter().filter(|j| j.start >= from && j.start <= to).map(|j| self.with_progress(j)).collect();
        jobs.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        Ok(jobs)
    }

    fn with_progress(&self, mut job: Job) -> Job {
        if let Some(r) = self.running.lock().get(&job.id) {
            job.done = r.done;
            job.total = r.total;
        }
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::storage::Storage;

    fn storage() -> (Arc<Storage>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("opshost-jobs-{}", uuid::Uuid::new_v4()));
        (Arc::new(Storage::open(&dir, false).expect("open")), dir)
    }

    #[test]
    fn a_job_runs_to_complete_and_an_unfinished_one_is_marked_error_on_reopen() {
        let (storage, dir) = storage();
        let jobs = JobService::open(storage.clone(), 2).expect("open");
        let done = jobs.create("export_local", "admin").expect("create");
        jobs.progress(&done.id, 5, 10);
        assert_eq!(jobs.get(&done.id).expect("get").expect("some").done, 5);
        jobs.finish(&done.id, Ok(("ok".into(), Some(json!({"path": "/x"}))))).expect("finish");
        let stuck = jobs.create("delete_records_before", "admin").expect("create");
        drop(jobs);

        let jobs = JobService::open(storage, 2).expect("reopen");
        let done = jobs.get(&done.id).expect("get").expect("some");
        assert_eq!((done.status, done.result), (Status::Complete, Some(json!({"path": "/x"}))));
        let stuck = jobs.get(&stuck.id).expect("get").expect("some");
        assert_eq!(stuck.status, Status::Error);
        assert!(stuck.message.expect("message").contains("server stopped"));
        assert_eq!(jobs.search_by_start(0, u64::MAX).expect("search").len(), 2);
        assert!(jobs.search_by_start(1, 0).expect("search").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_queue_is_bounded_per_user_and_overall() {
        let (storage, dir) = storage();
        let jobs = JobService::open(storage, 1).expect("open");
        let mine: Vec<Job> = (0..MAX_PENDING_PER_USER).map(|_| jobs.create("export_local", "u0").expect("create")).collect();
        assert!(matches!(jobs.create("export_local", "u0"), Err(CreateError::Busy(m)) if m.contains("u0")));
        // A finished job frees its place.
        jobs.finish(&mine[0].id, Ok(("ok".into(), None))).expect("finish");
        jobs.create("export_local", "u0").expect("a place again");
        for n in 1..MAX_PENDING / MAX_PENDING_PER_USER {
            for _ in 0..MAX_PENDING_PER_USER {
                jobs.create("export_local", &format!("u{n}")).expect("create");
            }
        }
        assert!(matches!(jobs.create("export_local", "someone-else"), Err(CreateError::Busy(m)) if m.contains("Too many jobs")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn old_finished_records_are_purged_and_unfinished_ones_kept() {
        let (storage, dir) = storage();
        let jobs = JobService::open(storage, 1).expect("open");
        let old = jobs.create("export_local", "admin").expect("create");
        jobs.finish(&old.id, Ok(("ok".into(), None))).expect("finish");
        let open = jobs.create("export_local", "admin").expect("create");
        assert_eq!(jobs.purge(now_ms()).expect("purge"), 0, "a fresh record stays");
        assert_eq!(jobs.purge(now_ms() + KEEP_FOR_MS + 1000).expect("purge"), 1);
        assert!(jobs.get(&old.id).expect("get").is_none());
        assert!(jobs.get(&open.id).expect("get").is_some(), "an unfinished job is never purged");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn interrupted_jobs_end_as_error_and_stay_so() {
        let (storage, dir) = storage();
        let jobs = JobService::open(storage, 1).expect("open");
        let job = jobs.create("export_local", "admin").expect("create");
        jobs.interrupt_all("restarted");
        jobs.finish(&job.id, Ok(("late".into(), None))).expect("finish");
        let job = jobs.get(&job.id).expect("get").expect("some");
        assert_eq!((job.status, job.message.as_deref()), (Status::Error, Some("restarted")));
        let _ = std::fs::remove_dir_all(dir);
    }
}
