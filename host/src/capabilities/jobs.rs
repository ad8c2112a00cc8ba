//! `jobs` capability: progress of the running job, and reading jobs the caller may see
//! (super_user: every job; others: their own).

use super::{blocking, CallState};
use crate::bindings::opshost::host::jobs::{Host, Job, JobStatus};
use crate::bindings::OpError;
use crate::services::jobs::{self, Status};

impl CallState {
    fn visible(&self, job: &jobs::Job) -> bool {
        self.caller.super_user || job.user == self.caller.username
    }
}

fn to_wit(job: jobs::Job) -> Job {
    Job {
        id: job.id,
        job_type: job.job_type,
        status: match job.status {
            Status::InProgress => JobStatus::InProgress,
            Status::Complete => JobStatus::Complete,
            Status::Error => JobStatus::Error,
        },
        message: job.message,
        result: job.result.map(|r| r.to_string()),
        created: job.created,
        start: job.start,
        end: job.end,
        user: job.user,
        done: job.done,
        total: job.total,
    }
}

impl Host for CallState {
    fn progress(&mut self, done: u64, total: u64) {
        if self.grants.has("jobs") {
            if let Some(id) = &self.job_id {
                self.services.jobs.progress(id, done, total);
            }
        }
    }

    fn get(&mut self, id: String) -> Result<Option<Job>, OpError> {
        self.check("jobs")?;
        let job = self.services.jobs.get(&id)?;
        Ok(job.filter(|j| self.visible(j)).map(to_wit))
    }

    async fn search_by_start(&mut self, from: u64, to: u64) -> Result<Vec<Job>, OpError> {
        self.check("jobs")?;
        // It reads the whole job table: on a blocking thread, not on one of the async workers.
        let service = self.services.jobs.clone();
        let jobs = blocking("job search", move || service.search_by_start(from, to)).await?;
        Ok(jobs.into_iter().filter(|j| self.visible(j)).map(to_wit).collect())
    }
}
