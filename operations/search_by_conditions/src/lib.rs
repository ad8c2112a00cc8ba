//! `search_by_conditions`: records matching a tree of conditions (`and`/`or`, nested groups),
//! with sort, offset and limit; the host plans the tree onto the indexes. The request shape and
//! the tree parsing live in the SDK (`search::ByConditions`), shared with exports.
//!
//! Request: `{"operation": "search_by_conditions", "database": "dev", "table": "dog",
//! "operator": "and", "get_attributes": ["*"], "sort": {"attribute": "age", "descending": true},
//! "conditions": [{"attribute": "age", "comparator": "between", "value": [3, 8]},
//! {"operator": "or", "conditions": [...]}]}`. Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::search::ByConditions;
use serde_json::value::RawValue;

pub struct SearchByConditions;

impl Operation for SearchByConditions {
    const NAME: &'static str = "search_by_conditions";
    // Open to every role; the host enforces the role's table permissions in storage.
    const SUPER_USER_ONLY: bool = false;
    type Request = ByConditions;
    type Response = Vec<Box<RawValue>>;

    fn handle(_ctx: &Context, req: ByConditions) -> Result<Vec<Box<RawValue>>, Error> {
        req.rows()?.collect_all()
    }
}

opshost_guest::export_operation!(SearchByConditions);

#[cfg(test)]
mod tests {
    use opshost_guest::data::Cond;
    use opshost_guest::{decode_request, Error};
    use opshost_harper::search::ByConditions;

    fn req(body: &str) -> ByConditions {
        decode_request(body).expect("valid")
    }

    #[test]
    fn parses_nested_groups_and_old_field_names() {
        let r = req(r#"{"table":"dog","get_attributes":["*"],"sort":{"attribute":"a","next":{"attribute":"b","descending":true}},
            "conditions":[{"search_attribute":"a","search_type":"equals","search_value":1},
                          {"operator":"or","conditions":[{"attribute":"b","comparator":"between","value":[1,2]},{"attribute":"c","comparator":"starts_with","value":"x"}]}]}"#);
        let s = r.search().expect("ok");
        assert!(matches!(s.cond, Some(Cond::And(ref v)) if v.len() == 2 && matches!(v[1], Cond::Or(_))));
        assert_eq!(s.sort, vec![("a".to_string(), false), ("b".to_string(), true)]);
    }

    #[test]
    fn harper_error_texts() {
        let e = req(r#"{"table":"t","get_attributes":["*"],"conditions":[{"attribute":"a","comparator":"bogus","value":1}]}"#).search().expect_err("bogus");
        assert!(matches!(e, Error::BadRequest(m) if m == "Unknown query comparator \"bogus\""));
        let e = req(r#"{"table":"t","get_attributes":["*"],"operator":"or","conditions":[{"attribute":"a","comparator":"equals","value":1}]}"#).search().expect_err("or");
        assert!(matches!(e, Error::BadRequest(m) if m == "An \"or\" operator requires at least two conditions"));
    }
}
