//! Background jobs: typed wrappers over the `jobs` interface (progress of the running job,
//! reading jobs). HarperDB's job JSON shapes live in `opshost-harper`.

use crate::bindings::opshost::host::jobs as wit;
use crate::Error;

pub use wit::{Job, JobStatus};

/// Reports the running job's progress: `done` units out of `total` (0 when unknown). Ignored
/// outside a job.
pub fn progress(done: u64, total: u64) {
    wit::progress(done, total);
}

/// The job with this id, if it exists and the caller may see it.
pub fn get(id: &str) -> Result<Option<Job>, Error> {
    wit::get(id)
}

/// Jobs that started within `from..=to` (epoch ms) and the caller may see, oldest first.
pub fn search_by_start(from: u64, to: u64) -> Result<Vec<Job>, Error> {
    wit::search_by_start(from, to)
}

/// The job this call runs as (`ctx.job_id`); `internal` outside a job.
pub fn current(ctx: &crate::Context) -> Result<Job, Error> {
    let id = ctx.job_id.as_deref().ok_or_else(|| Error::Internal("not running as a job".into()))?;
    get(id)?.ok_or_else(|| Error::Internal(format!("job {id} not found")))
}

/// HarperDB's job message on success: `Successfully completed job: <id>`.
pub fn completed_message(ctx: &crate::Context) -> String {
    format!("Successfully completed job: {}", ctx.job_id.as_deref().unwrap_or_default())
}
