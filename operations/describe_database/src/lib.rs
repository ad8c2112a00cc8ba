//! `describe_database` (alias `describe_schema`): every table of one database, described.
//!
//! Request: `{"operation": "describe_database", "database": "dev"}`. Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::data;
use serde_json::Map;

pub struct DescribeDatabase;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
}

impl Operation for DescribeDatabase {
    const NAME: &'static str = "describe_database";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    const ALIASES: &'static [&'static str] = &["describe_schema"];
    type Request = Request;
    type Response = Map<String, Value>;

    fn handle(_ctx: &Context, req: Request) -> Result<Map<String, Value>, Error> {
        let tables = data::list_databases()?
            .into_iter()
            .find(|(db, _)| *db == req.database)
            .map(|(_, tables)| tables)
            .ok_or_else(|| Error::NotFound(format!("database '{}' does not exist", req.database)))?;
        let mut out = Map::new();
        for table in tables {
            out.insert(table.clone(), data::describe(&req.database, &table)?);
        }
        Ok(out)
    }
}

opshost_guest::export_operation!(DescribeDatabase);
