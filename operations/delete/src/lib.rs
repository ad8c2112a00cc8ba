//! `delete`: deletes records by primary key; ids that do not exist are reported as skipped
//! (deviations.md).
//!
//! Request: `{"operation": "delete", "database": "dev", "table": "dog", "ids": [1, 2]}`
//! (`hash_values` also accepted). Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::data;

pub struct Delete;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
    #[serde(alias = "hash_values")]
    ids: Vec<Value>,
}

impl Operation for Delete {
    const NAME: &'static str = "delete";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let out = data::delete(&req.database, &req.table, &req.ids)?;
        Ok(json!({
            "message": message(out.written.len(), req.ids.len()),
            "deleted_hashes": out.written,
            "skipped_hashes": out.skipped,
        }))
    }
}

opshost_guest::export_operation!(Delete);

/// HarperDB says "record" when exactly one id was asked for.
fn message(deleted: usize, asked: usize) -> String {
    let noun = if asked == 1 { "record" } else { "records" };
    format!("{deleted} of {asked} {noun} successfully deleted")
}

#[cfg(test)]
mod tests {
    #[test]
    fn singular_for_one_id() {
        assert_eq!(super::message(1, 1), "1 of 1 record successfully deleted");
        assert_eq!(super::message(1, 2), "1 of 2 records successfully deleted");
    }
}
