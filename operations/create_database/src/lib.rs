//! `create_database` (alias `create_schema`): creates an empty database.
//!
//! Request: `{"operation": "create_database", "database": "dev"}`. Capabilities: `storage`.

use opshost_guest::prelude::*;

pub struct CreateDatabase;

#[derive(Deserialize)]
pub struct Request {
    /// Required (deviations.md: HarperDB silently creates `data`).
    #[serde(alias = "schema")]
    database: String,
}

impl Operation for CreateDatabase {
    const NAME: &'static str = "create_database";
    const ALIASES: &'static [&'static str] = &["create_schema"];
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        data::create_database(&req.database)?;
        Ok(json!({ "message": format!("database '{}' successfully created", req.database) }))
    }
}

opshost_guest::export_operation!(CreateDatabase);
