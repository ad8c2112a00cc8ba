//! `insert`: writes records to a table in one atomic, durable batch (HarperDB's `insert`).
//!
//! Request: `{"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1}]}`.
//! Capabilities: `storage`. The request shape and the answer are shared with the other
//! writes in the SDK (`data::write_records`).

use opshost_harper::data::{RecordsRequest, WriteAnswer, WriteMode};
use opshost_guest::prelude::*;
use opshost_harper::data;

pub struct Insert;

impl Operation for Insert {
    const NAME: &'static str = "insert";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    type Request = RecordsRequest;
    type Response = WriteAnswer;

    fn handle(_ctx: &Context, req: RecordsRequest) -> Result<WriteAnswer, Error> {
        data::write_records(WriteMode::Insert, &req)
    }
}

opshost_guest::export_operation!(Insert);
