//! `drop_database` (alias `drop_schema`): drops a database with all its tables.
//!
//! Request: `{"operation": "drop_database", "database": "dev"}`. Capabilities: `storage`.

use opshost_guest::prelude::*;

pub struct DropDatabase;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema")]
    database: String,
}

impl Operation for DropDatabase {
    const NAME: &'static str = "drop_database";
    const ALIASES: &'static [&'static str] = &["drop_schema"];
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        data::drop_database(&req.database)?;
        Ok(json!({ "message": format!("successfully deleted '{}'", req.database) }))
    }
}

opshost_guest::export_operation!(DropDatabase);
