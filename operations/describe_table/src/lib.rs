//! `describe_table`: one table's description (HarperDB's shape).
//!
//! Request: `{"operation": "describe_table", "database": "dev", "table": "dog"}`.
//! Capabilities: `storage`.

use opshost_harper::data::TableRequest;
use opshost_guest::prelude::*;
use opshost_harper::data;

pub struct DescribeTable;

impl Operation for DescribeTable {
    const NAME: &'static str = "describe_table";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    type Request = TableRequest;
    type Response = Value;

    fn handle(_ctx: &Context, req: TableRequest) -> Result<Value, Error> {
        data::describe(&req.database, &req.table)
    }
}

opshost_guest::export_operation!(DescribeTable);
