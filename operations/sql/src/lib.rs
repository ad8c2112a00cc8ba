//! `sql`: HarperDB's SQL operation. SELECT (WHERE, ORDER BY, LIMIT/OFFSET, aliases, COUNT/SUM/
//! AVG/MIN/MAX with GROUP BY, DISTINCT), INSERT ... VALUES, UPDATE ... SET and DELETE on one table.
//! Parsing, planning and execution live in opshost-harper (`opshost_harper::sql`, feature `sql`), which
//! exports share; WHERE becomes a condition tree the host plans onto its indexes.
//!
//! Request: `{"operation": "sql", "sql": "SELECT COUNT(*) AS c FROM dev.dog"}` → `[{"c": 6}]`.
//! Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::sql;
use serde_json::Map;

pub struct Sql;

impl Operation for Sql {
    const NAME: &'static str = "sql";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    // Decoded by hand so the missing / not-a-string texts are HarperDB's own.
    type Request = Map<String, Value>;
    type Response = sql::Response;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<sql::Response, Error> {
        sql::execute(sql::statement(&req)?)
    }
}

opshost_guest::export_operation!(Sql);
