//! `drop_table`: drops a table and its indexes.
//!
//! Request: `{"operation": "drop_table", "database": "dev", "table": "dog"}`.
//! Capabilities: `storage`.

use opshost_guest::prelude::*;

pub struct DropTable;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
}

impl Operation for DropTable {
    const NAME: &'static str = "drop_table";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        data::drop_table(&req.database, &req.table)?;
        Ok(json!({ "message": format!("successfully deleted table '{}.{}'", req.database, req.table) }))
    }
}

opshost_guest::export_operation!(DropTable);
