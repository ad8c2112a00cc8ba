//! `search_by_value`: records whose attribute equals a value (type-sensitive), with HarperDB's
//! `*` wildcards, answered from the attribute's index.
//!
//! Request: `{"operation": "search_by_value", "database": "dev", "table": "dog",
//! "attribute": "name", "value": "Pen*", "get_attributes": ["id", "name"]}`.
//! Capabilities: `storage`.

use opshost_guest::data::{wildcard, Search};
use opshost_guest::prelude::*;
use serde_json::value::RawValue;

pub struct SearchByValue;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
    #[serde(alias = "search_attribute")]
    attribute: String,
    #[serde(alias = "search_value")]
    value: Value,
    get_attributes: Vec<String>,
    #[serde(default)]
    offset: u64,
    limit: Option<u64>,
}

impl Operation for SearchByValue {
    const NAME: &'static str = "search_by_value";
    type Request = Request;
    type Response = Vec<Box<RawValue>>;

    fn handle(_ctx: &Context, req: Request) -> Result<Vec<Box<RawValue>>, Error> {
        let search = Search {
            cond: Some(wildcard(&req.attribute, &req.value)),
            attributes: req.get_attributes,
            offset: req.offset,
            limit: req.limit,
            ..Default::default()
        };
        search.run(&req.database, &req.table)?.collect_all()
    }
}

opshost_guest::export_operation!(SearchByValue);
