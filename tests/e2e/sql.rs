//! The `sql` operation over HTTP, checked against the same data queried with the NoSQL
//! operations, plus SQL writes and HarperDB's SQL error texts.

use opshost_tests::{ok, Server};
use serde_json::{json, Value};

fn sql(server: &Server, text: &str) -> Value {
    ok(server, json!({"operation": "sql", "sql": text}))
}

fn sorted_ids(v: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = v.as_array().expect("array").iter().filter_map(|r| r["id"].as_i64()).collect();
    ids.sort();
    ids
}

fn setup(server: &Server) {
    ok(server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [
        {"id": 1, "name": "Penny", "age": 5, "breed": "Beagle"},
        {"id": 2, "name": "Harper", "age": 3, "breed": "Mutt"},
        {"id": 3, "name": "Billy", "age": "3", "breed": "Beagle"},
        {"id": 4, "name": "Kato", "age": 9, "breed": "Pug"},
        {"id": 5, "name": "Penelope", "age": 1, "breed": "Poodle"},
        {"id": 6, "name": "Rex", "age": 12},
    ]}));
}

#[test]
fn select_agrees_with_the_nosql_searches() {
    let server = Server::start();
    setup(&server);
    let nosql = |conditions: Value, operator: &str| {
        ok(&server, json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "operator": operator, "get_attributes": ["id"], "conditions": conditions}))
    };
    let cases = [
        ("SELECT id FROM dev.dog WHERE breed = 'Beagle'", nosql(json!([{"attribute": "breed", "comparator": "equals", "value": "Beagle"}]), "and")),
        ("SELECT id FROM dev.dog WHERE age > 4", nosql(json!([{"attribute": "age", "comparator": "greater_than", "value": 4}]), "and")),
        ("SELECT id FROM dev.dog WHERE age = '3'", nosql(json!([{"attribute": "age", "comparator": "equals", "value": "3"}]), "and")),
        ("SELECT id FROM dev.dog WHERE name LIKE 'Pen%'", nosql(json!([{"attribute": "name", "comparator": "starts_with", "value": "Pen"}]), "and")),
        ("SELECT id FROM dev.dog WHERE age BETWEEN 3 AND 9", nosql(json!([{"attribute": "age", "comparator": "between", "value": [3, 9]}]), "and")),
        ("SELECT id FROM `dev`.`dog` WHERE breed = 'Pug' OR age = 1", nosql(json!([{"attribute": "breed", "comparator": "equals", "value": "Pug"}, {"attribute": "age", "comparator": "equals", "value": 1}]), "or")),
    ];
    for (text, expected) in cases {
        assert_eq!(sorted_ids(&sql(&server, text)), sorted_ids(&expected), "{text}");
    }
    assert_eq!(sorted_ids(&sql(&server, "SELECT id FROM dev.dog WHERE breed IS NULL")), vec![6]);
    assert_eq!(sorted_ids(&sql(&server, "SELECT id FROM dev.dog WHERE breed IN ('Pug', 'Mutt') AND NOT age = 9")), vec![2]);
    assert_eq!(sql(&server, "SELECT id, name FROM dev.dog ORDER BY id DESC LIMIT 2 OFFSET 1"), json!([{"id": 5, "name": "Penelope"}, {"id": 4, "name": "Kato"}]));
}

#[test]
fn aggregates_and_group_by() {
    let server = Server::start();
    setup(&server);
    assert_eq!(sql(&server, "SELECT COUNT(*) AS c FROM dev.dog"), json!([{"c": 6}]));
    let groups = sql(&server, "SELECT breed, COUNT(*) AS n FROM dev.dog WHERE breed IS NOT NULL GROUP BY breed ORDER BY breed");
    assert_eq!(groups, json!([{"breed": "Beagle", "n": 2}, {"breed": "Mutt", "n": 1}, {"breed": "Poodle", "n": 1}, {"breed": "Pug", "n": 1}]));
    let stats = sql(&server, "SELECT MIN(age) AS lo, MAX(age) AS hi, SUM(age) AS total FROM dev.dog WHERE age > 0");
    assert_eq!(stats, json!([{"lo": 1, "hi": 12, "total": 30}]));
}

#[test]
fn sql_writes_return_the_nosql_shapes() {
    let server = Server::start();
    setup(&server);
    assert_eq!(
        sql(&server, "INSERT INTO dev.dog (id, name, age) VALUES (7, 'Zed', 2), (1, 'Dup', 1)"),
        json!({"message": "inserted 1 of 2 records", "inserted_hashes": [7], "skipped_hashes": [1]})
    );
    let updated = sql(&server, "UPDATE dev.dog SET breed = 'Mixed' WHERE age < 3");
    assert_eq!(updated["message"], "updated 2 of 2 records");
    let mixed = ok(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "breed", "value": "Mixed", "get_attributes": ["id"]}));
    assert_eq!(sorted_ids(&mixed), vec![5, 7]);
    assert_eq!(
        sql(&server, "DELETE FROM dev.dog WHERE id = 7"),
        json!({"message": "1 of 1 record successfully deleted", "deleted_hashes": [7], "skipped_hashes": []})
    );
    assert_eq!(sql(&server, "SELECT COUNT(*) AS c FROM dev.dog"), json!([{"c": 6}]));
}

#[test]
fn sql_errors_use_harpers_texts() {
    let server = Server::start();
    setup(&server);
    let bad = "SELEKT * FROM dev.dog";
    assert_eq!(
        server.post(json!({"operation": "sql", "sql": bad})),
        (400, json!({"error": format!("Invalid SQL at: {bad}. Please ensure your SQL is valid. Try adding backticks to reserved words and schema table references.")}))
    );
    assert_eq!(server.post(json!({"operation": "sql"})), (400, json!({"error": "The 'sql' parameter is missing from the request body"})));
    assert_eq!(
        server.post(json!({"operation": "sql", "sql": 5})),
        (400, json!({"error": "We had trouble parsing your request. Please ensure your SQL is valid. Try adding backticks to reserved words and schema table references."}))
    );
    assert_eq!(server.post(json!({"operation": "sql", "sql": "SELECT * FROM dev.nosuch"})), (404, json!({"error": "Table 'dev.nosuch' does not exist"})));
}

/// One meaning for every condition, whichever side evaluates it: the host's search engine
/// (`search_by_conditions`, and SQL planned onto it) and the guest's SQL evaluator (a condition
/// OR-ed with a LIKE that only the guest can evaluate). Both call `opshost-conditions`.
#[test]
fn a_condition_means_the_same_on_the_host_and_in_the_sql_guest() {
    let server = Server::start();
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "c", "primary_key": "id"}));
    ok(&server, json!({"operation": "insert", "database": "dev", "table": "c", "records": [
        {"id": 1, "age": 1, "name": "one"},
        {"id": 2, "age": 1.5, "name": "one and a half"},
        {"id": 3, "age": "1", "name": "text one"},
        {"id": 4, "age": 2, "tags": ["a", "b"], "name": "two"},
        {"id": 5, "age": null, "tags": ["b"], "name": "none"},
        {"id": 6, "name": "abc"},
    ]}));
    // (SQL predicate, the same as a search_by_conditions condition, the ids that match)
    let cases = [
        ("age = 1.0", json!({"attribute": "age", "comparator": "equals", "value": 1.0}), vec![1]),
        ("age = '1'", json!({"attribute": "age", "comparator": "equals", "value": "1"}), vec![3]),
        ("age > 1", json!({"attribute": "age", "comparator": "greater_than", "value": 1}), vec![2, 4]),
        ("age >= 1.0", json!({"attribute": "age", "comparator": "greater_than_equal", "value": 1.0}), vec![1, 2, 4]),
        ("age BETWEEN 1 AND 1.5", json!({"attribute": "age", "comparator": "between", "value": [1, 1.5]}), vec![1, 2]),
        ("tags LIKE '%a%'", json!({"attribute": "tags", "comparator": "contains", "value": "a"}), vec![4]),
        ("name LIKE 'ab%'", json!({"attribute": "name", "comparator": "starts_with", "value": "ab"}), vec![6]),
        ("name LIKE '%one'", json!({"attribute": "name", "comparator": "ends_with", "value": "one"}), vec![1, 3, 5]),
    ];
    for (predicate, condition, expected) in cases {
        let host = ok(&server, json!({"operation": "search_by_conditions", "database": "dev", "table": "c", "get_attributes": ["id"], "conditions": [condition]}));
        assert_eq!(sorted_ids(&host), expected, "search_by_conditions {predicate}");
        let planned = sql(&server, &format!("SELECT id FROM dev.c WHERE {predicate}"));
        assert_eq!(sorted_ids(&planned), expected, "SQL on the host: {predicate}");
        // `'zz%q'` is neither a prefix, suffix nor infix search: only the guest evaluates it, so the
        // whole OR (and the condition in it) is evaluated in the guest.
        let in_guest = sql(&server, &format!("SELECT id FROM dev.c WHERE ({predicate}) OR name LIKE 'zz%q'"));
        assert_eq!(sorted_ids(&in_guest), expected, "SQL in the guest: {predicate}");
    }
}
