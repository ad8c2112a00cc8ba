//! export_local's bytes for unusual values and for tables of several pages: the JSON and CSV
//! files hold exactly what the same search answers directly, written the way HarperDB writes
//! it, whichever read path the search takes (a condition on the primary key answered from the
//! record's key, a filter on another attribute, a whole-table scan, SQL).

use super::jobs::{export_dir, export_local, harper_csv, harper_json};
use opshost_tests::{ok, Server};
use serde_json::{json, Value};

/// Records with quotes, commas, newlines, tabs, backslashes, control characters, non-ASCII and
/// emoji; nulls and missing attributes; nested objects and arrays holding the same; numbers
/// such as 1e21, 1.5e-7, -0.0 and 2^53 - 1; a fractional primary key; and 2,600 plain rows
/// so an export spans several pages.
fn odd_table(server: &Server) {
    ok(
        server,
        json!({"operation": "create_database", "database": "odd"}),
    );
    ok(
        server,
        json!({"operation": "create_table", "database": "odd", "table": "v", "primary_key": "id"}),
    );
    let odd = json!([
        {"id": 0, "s": "quote \" comma , newline \n cr \r tab \t backslash \\ end", "u": "café ✓ 😀 \u{1} \u{7f}",
         "n": null, "big": 1e21, "small": 1.5e-7, "negz": -0.0, "int": 9007199254740991u64, "b": false,
         "obj": {"a": {"b": [1, {"c": "x,\"y\"\n}"}]}, "e": {}}, "arr": [null, true, 1e21, "]", [], {"k": "v"}]},
        {"id": 1, "s": "", "only": "x"},
        {"id": 2.5, "s": "\"\"", "u": "\\\"", "obj": {"q": "\"quoted\""}, "arr": ["a\nb", "c,d"]},
        {"id": 3, "s": "=1+2", "u": "日本語テキスト", "big": -1e-300, "int": -42, "b": true, "n": "null"},
    ]);
    ok(
        server,
        json!({"operation": "insert", "database": "odd", "table": "v", "records": odd}),
    );
    let plain: Vec<Value> = (10..2610)
        .map(|i| json!({"id": i, "s": format!("row \"{i}\", ok"), "int": i % 7, "b": i % 2 == 0}))
        .collect();
    ok(
        server,
        json!({"operation": "insert", "database": "odd", "table": "v", "records": plain}),
    );
}

#[test]
fn exports_of_unusual_values_are_the_searchs_rows_in_harpers_formats() {
    let server = Server::start();
    odd_table(&server);
    let dir = export_dir(&server, "odd");
    let conditions = |attrs: Value, conditions: Value| json!({"operation": "search_by_conditions", "database": "odd", "table": "v", "get_attributes": attrs, "conditions": conditions});
    let searches = [
        // The bench's export: a primary-key range, every attribute.
        (
            "pk_range",
            conditions(
                json!(["*"]),
                json!([{"search_attribute": "id", "search_type": "greater_than_equal", "search_value": 0}]),
            ),
        ),
        (
            "pk_between",
            conditions(
                json!(["id", "s", "obj"]),
                json!([{"search_attribute": "id", "search_type": "between", "search_value": [1, 2000]}]),
            ),
        ),
        (
            "filter",
            conditions(
                json!(["*"]),
                json!([{"search_attribute": "int", "search_type": "less_than", "search_value": 3}]),
            ),
        ),
        (
            "scan",
            json!({"operation": "search_by_value", "database": "odd", "table": "v", "attribute": "id", "value": "*", "get_attributes": ["*"]}),
        ),
        (
            "sql",
            json!({"operation": "sql", "sql": "SELECT * FROM odd.v WHERE id < 100 ORDER BY id"}),
        ),
    ];
    for (name, search) in searches {
        let rows = ok(&server, search.clone());
        let rows = rows
            .as_array()
            .unwrap_or_else(|| panic!("{name}: rows"))
            .clone();
        assert!(rows.len() >= 4, "{name}: {} rows", rows.len());
        if name != "pk_between" && name != "filter" {
            assert!(
                rows.iter().any(|r| r["id"] == json!(2.5)),
                "{name}: the fractional key is exported"
            );
        }
        assert_eq!(
            export_local(&server, &dir, "json", name, &search),
            harper_json(&rows),
            "{name} json"
        );
        assert_eq!(
            export_local(&server, &dir, "csv", name, &search),
            harper_csv(&rows),
            "{name} csv"
        );
    }
    // The whole table: the four odd rows and 2,600 plain ones, several pages.
    let all = export_local(&server, &dir, "json", "all", &searches_all());
    let parsed: Vec<Value> = serde_json::from_str(&all).expect("the JSON export parses");
    assert_eq!(parsed.len(), 2604);
    assert_eq!(
        parsed[0]["s"],
        json!("quote \" comma , newline \n cr \r tab \t backslash \\ end")
    );
    assert_eq!(parsed[0]["big"].as_f64(), Some(1e21));
    let csv = export_local(&server, &dir, "csv", "all", &searches_all());
    // A header, then one line per row plus the embedded newlines of the odd rows' strings.
    assert!(
        csv.starts_with("\"id\",\"__createdtime__\",\"__updatedtime__\","),
        "{}",
        &csv[..80]
    );
    assert!(csv.lines().count() > 2604, "{} lines", csv.lines().count());
}

fn searches_all() -> Value {
    json!({"operation": "search_by_conditions", "database": "odd", "table": "v", "get_attributes": ["*"],
           "conditions": [{"search_attribute": "id", "search_type": "greater_than_equal", "search_value": -1}]})
}
