//! `get_job`: one background job (`export_local`, `export_to_s3`, `delete_records_before`,
//! `restart_service`) by id, as an array of one job object, or `[]` when there is no such job or
//! the caller may not see it (the host shows a non-super_user only their own jobs).
//!
//! Request: `{"operation": "get_job", "id": "4a982782-929a-4507-8794-26dae1132def"}` →
//! `[{"id", "result"?, "status", "message", "end_datetime", "type", "start_datetime",
//! "created_datetime", "user"}]` (in progress: `id, type, start_datetime, created_datetime,
//! status, user, progress`). Capabilities: `jobs`.

use opshost_harper::jobs;
use opshost_guest::prelude::*;

pub struct GetJob;

#[derive(Deserialize)]
pub struct Request {
    id: String,
}

impl Operation for GetJob {
    const NAME: &'static str = "get_job";
    const SUPER_USER_ONLY: bool = false;
    type Request = Request;
    type Response = Vec<Value>;

    fn handle(_ctx: &Context, req: Request) -> Result<Vec<Value>, Error> {
        Ok(jobs::get(&req.id)?.iter().map(jobs::to_json).collect())
    }
}

opshost_guest::export_operation!(GetJob);

#[cfg(test)]
mod tests {
    use opshost_guest::{decode_request, Error};

    #[test]
    fn id_is_required() {
        let e = decode_request::<super::Request>(r#"{"operation":"get_job"}"#).err();
        assert!(matches!(e, Some(Error::BadRequest(m)) if m == "'id' is required"));
    }
}
