//! `system_information`: facts about the machine and this server, in HarperDB's shapes,
//! optionally filtered by `attributes`.
//!
//! Request: `{"operation": "system_information", "attributes": ["cpu", "memory"]}`.
//! Capabilities: `sysinfo`.

use opshost_guest::prelude::*;
use opshost_guest::sysinfo::Section;
use serde_json::Map;

pub struct SystemInformation;

#[derive(Deserialize)]
pub struct Request {
    /// HarperDB treats a missing, empty or non-array value as "everything".
    #[serde(default)]
    attributes: Value,
}

impl Operation for SystemInformation {
    const NAME: &'static str = "system_information";
    type Request = Request;
    type Response = Map<String, Value>;

    fn handle(_ctx: &Context, request: Request) -> Result<Map<String, Value>, Error> {
        let mut out = Map::new();
        for (key, section) in wanted(&request.attributes) {
            out.insert(key.to_string(), sysinfo::get(section)?);
        }
        Ok(out)
    }
}

opshost_guest::export_operation!(SystemInformation);

/// Every section, under HarperDB's key names, in HarperDB's order.
const SECTIONS: [(&str, Section); 10] = [
    ("system", Section::System),
    ("time", Section::Time),
    ("cpu", Section::Cpu),
    ("memory", Section::Memory),
    ("disk", Section::Disk),
    ("network", Section::Network),
    ("harperdb_processes", Section::Processes),
    ("table_size", Section::TableSize),
    ("metrics", Section::Metrics),
    ("threads", Section::Threads),
];

/// The sections asked for. Names are case-sensitive, unknown ones are ignored, and
/// `database_metrics` is an alias of `metrics`, as in HarperDB.
fn wanted(attributes: &Value) -> Vec<(&'static str, Section)> {
    let names = match attributes.as_array() {
        Some(list) if !list.is_empty() => list,
        _ => return SECTIONS.to_vec(),
    };
    let mut out = Vec::new();
    for name in names.iter().filter_map(Value::as_str) {
        let name = if name == "database_metrics" { "metrics" } else { name };
        if let Some(&(key, section)) = SECTIONS.iter().find(|(k, _)| *k == name) {
            if !out.iter().any(|(k, _)| *k == key) {
                out.push((key, section));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: Value) -> Vec<&'static str> {
        wanted(&v).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn everything_when_missing_empty_or_not_an_array() {
        assert_eq!(keys(Value::Null).len(), 10);
        assert_eq!(keys(json!([])).len(), 10);
        assert_eq!(keys(json!("cpu")).len(), 10);
    }

    #[test]
    fn filters_case_sensitively_with_alias() {
        assert_eq!(keys(json!(["cpu", "CPU", "bogus", "database_metrics"])), vec!["cpu", "metrics"]);
        assert!(keys(json!(["bogus"])).is_empty());
    }
}
