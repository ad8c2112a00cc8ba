//! `search_by_value`: records whose attribute equals a value (type-sensitive), with HarperDB's
//! `*` wildcards, answered from the attribute's index. The request shape lives in the SDK
//! (`search::ByValue`), shared with exports.
//!
//! Request: `{"operation": "search_by_value", "database": "dev", "table": "dog",
//! "attribute": "name", "value": "Pen*", "get_attributes": ["id", "name"]}`.
//! Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::search::ByValue;
use serde_json::value::RawValue;

pub struct SearchByValue;

impl Operation for SearchByValue {
    const NAME: &'static str = "search_by_value";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    type Request = ByValue;
    type Response = Vec<Box<RawValue>>;

    fn handle(_ctx: &Context, req: ByValue) -> Result<Vec<Box<RawValue>>, Error> {
        req.rows()?.collect_all()
    }
}

opshost_guest::export_operation!(SearchByValue);

#[cfg(test)]
mod tests {
    use opshost_guest::{decode_request, Error};
    use opshost_harper::search::ByValue;

    #[test]
    fn accepts_the_old_field_names_and_names_missing_ones() {
        let r: ByValue = decode_request(r#"{"schema":"dev","table":"dog","search_attribute":"name","search_value":"Pen*","get_attributes":["*"]}"#).expect("valid");
        assert_eq!((r.database.as_str(), r.attribute.as_str()), ("dev", "name"));
        let e = decode_request::<ByValue>(r#"{"table":"dog","value":1,"get_attributes":["*"]}"#).expect_err("missing");
        assert!(matches!(e, Error::BadRequest(m) if m == "'attribute' is required"));
    }
}
