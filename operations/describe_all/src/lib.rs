//! `describe_all`: every user database with every table's description (`system` excluded).
//!
//! Request: `{"operation": "describe_all"}`. Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::data;
use serde_json::Map;

pub struct DescribeAll;

impl Operation for DescribeAll {
    const NAME: &'static str = "describe_all";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    type Request = Empty;
    type Response = Map<String, Value>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Map<String, Value>, Error> {
        let mut out = Map::new();
        for (database, tables) in data::list_databases()? {
            let mut described = Map::new();
            for table in tables {
                described.insert(table.clone(), data::describe(&database, &table)?);
            }
            out.insert(database, Value::Object(described));
        }
        Ok(out)
    }
}

opshost_guest::export_operation!(DescribeAll);
