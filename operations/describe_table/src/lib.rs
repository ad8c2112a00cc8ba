//! `describe_table`: one table's description (HarperDB's shape).
//!
//! Request: `{"operation": "describe_table", "database": "dev", "table": "dog"}`.
//! Capabilities: `storage`.

use opshost_guest::prelude::*;

pub struct DescribeTable;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
}

impl Operation for DescribeTable {
    const NAME: &'static str = "describe_table";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        data::describe(&req.database, &req.table)
    }
}

opshost_guest::export_operation!(DescribeTable);
