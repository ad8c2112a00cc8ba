//! `drop_table`: drops a table and its indexes.
//!
//! Request: `{"operation": "drop_table", "database": "dev", "table": "dog"}`.
//! Capabilities: `storage`.

use opshost_harper::data::TableRequest;
use opshost_guest::prelude::*;
use opshost_harper::data;

pub struct DropTable;

impl Operation for DropTable {
    const NAME: &'static str = "drop_table";
    type Request = TableRequest;
    type Response = Value;

    fn handle(_ctx: &Context, req: TableRequest) -> Result<Value, Error> {
        data::drop_table(&req.database, &req.table)?;
        Ok(json!({ "message": format!("successfully deleted table '{}.{}'", req.database, req.table) }))
    }
}

opshost_guest::export_operation!(DropTable);
