//! `search_by_hash` (alias `search_by_id`): records by primary key, in request order, missing
//! ids left out. The request shape lives in the SDK (`search::ByHash`), shared with exports.
//!
//! Request: `{"operation": "search_by_hash", "database": "dev", "table": "dog",
//! "hash_values": [1, 2], "get_attributes": ["*"]}` (`ids` also accepted).
//! Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::search::ByHash;
use serde_json::value::RawValue;

pub struct SearchByHash;

impl Operation for SearchByHash {
    const NAME: &'static str = "search_by_hash";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    const ALIASES: &'static [&'static str] = &["search_by_id"];
    type Request = ByHash;
    type Response = Vec<Box<RawValue>>;

    fn handle(_ctx: &Context, req: ByHash) -> Result<Vec<Box<RawValue>>, Error> {
        req.get()
    }
}

opshost_guest::export_operation!(SearchByHash);

#[cfg(test)]
mod tests {
    use opshost_guest::{decode_request, Error};
    use opshost_harper::search::ByHash;

    #[test]
    fn accepts_ids_and_names_mistyped_fields() {
        let r: ByHash = decode_request(r#"{"table":"dog","ids":[1,"a"],"get_attributes":["*"]}"#).expect("valid");
        assert_eq!((r.database.as_str(), r.hash_values.len()), ("data", 2));
        let e = decode_request::<ByHash>(r#"{"table":"dog","hash_values":1,"get_attributes":["*"]}"#).expect_err("mistyped");
        assert!(matches!(e, Error::BadRequest(m) if m == "'hash_values' must be an array"));
    }
}
