//! Filtered reads that parse only what the filter looks at: a record's top-level fields are
//! borrowed from its stored bytes and only the attributes the condition names become values,
//! so a search over a large table (an export with a condition) does not build a whole
//! `serde_json::Value` (map, keys, every string) for each record it examines.

use super::query::Cond;
use super::{internal, Projection, RawFields, ServiceError};
use serde_json::{Map, Value};

/// The projected text of the stored record `bytes` when it satisfies `cond`; `names` are the
/// attributes `cond` reads ([`Cond::attributes`]). A record whose fields cannot be borrowed
/// (not an object, escaped keys) takes the general path: parsed whole, matched, projected.
pub(super) fn filtered_json(projection: &Projection, cond: &Cond, names: &[&str], bytes: &[u8]) -> Result<Option<String>, ServiceError> {
    let Ok(RawFields(fields)) = serde_json::from_slice::<RawFields>(bytes) else {
        let record = serde_json::from_slice::<Value>(bytes).map_err(internal)?;
        return Ok(cond.matches(&record).then(|| projection.json_from_value(&record)));
    };
    // `matches` reads top-level attributes only (a missing one is null), so the record made
    // of the named attributes answers exactly as the whole record would.
    let mut named = Map::new();
    for (key, value) in &fields {
        if names.contains(key) {
            named.insert((*key).to_string(), serde_json::from_str(value.get()).map_err(internal)?);
        }
    }
    if !cond.matches(&Value::Object(named)) {
        return Ok(None);
    }
    projection.json_from_raw(bytes).map(Some)
}
