//! `search_by_hash` (alias `search_by_id`): records by primary key, in request order, missing
//! ids left out.
//!
//! Request: `{"operation": "search_by_hash", "database": "dev", "table": "dog",
//! "hash_values": [1, 2], "get_attributes": ["*"]}` (`ids` also accepted).
//! Capabilities: `storage`.

use opshost_guest::prelude::*;
use serde_json::value::RawValue;

pub struct SearchByHash;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
    #[serde(alias = "ids")]
    hash_values: Vec<Value>,
    get_attributes: Vec<String>,
}

impl Operation for SearchByHash {
    const NAME: &'static str = "search_by_hash";
    const ALIASES: &'static [&'static str] = &["search_by_id"];
    type Request = Request;
    type Response = Vec<Box<RawValue>>;

    fn handle(_ctx: &Context, req: Request) -> Result<Vec<Box<RawValue>>, Error> {
        data::get(&req.database, &req.table, &req.hash_values, &req.get_attributes)
    }
}

opshost_guest::export_operation!(SearchByHash);
