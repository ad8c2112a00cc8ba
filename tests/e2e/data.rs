//! The data operations over HTTP (harper-behaviour.md §3, deviations.md): schema operations,
//! writes, the three searches, describe shapes, and durability across a crash.

use opshost_tests::{err, ok, Server, USER};
use serde_json::{json, Value};

/// `dev.dog` with six dogs, including a string "3" beside the number 3 and a missing breed.
fn dogs(server: &Server) {
    ok(server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    let resp = ok(server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [
        {"id": 1, "name": "Penny", "age": 5, "breed": "Beagle"},
        {"id": 2, "name": "Harper", "age": 3, "breed": "Mutt"},
        {"id": 3, "name": "Billy", "age": "3", "breed": "Beagle"},
        {"id": 4, "name": "Kato", "age": 9, "breed": "Pug"},
        {"id": 5, "name": "Penelope", "age": 1, "breed": "Poodle"},
        {"id": 6, "name": "Rex", "age": 12},
    ]}));
    assert_eq!(resp, json!({"message": "inserted 6 of 6 records", "inserted_hashes": [1, 2, 3, 4, 5, 6], "skipped_hashes": []}));
}

fn ids(records: &Value) -> Vec<Value> {
    records.as_array().expect("array").iter().map(|r| r["id"].clone()).collect()
}

#[test]
fn schema_operations_and_their_errors() {
    let server = Server::start();
    assert_eq!(ok(&server, json!({"operation": "create_database", "database": "conf"})), json!({"message": "database 'conf' successfully created"}));
    assert_eq!(err(&server, json!({"operation": "create_schema", "schema": "conf"})), (400, "database 'conf' already exists".into()));
    assert_eq!(err(&server, json!({"operation": "create_database"})), (400, "'database' is required".into()));
    assert_eq!(err(&server, json!({"operation": "create_database", "database": 5})), (400, "'database' must be a string".into()));
    assert_eq!(err(&server, json!({"operation": "create_database", "database": "bad name!"})).0, 400);
    assert_eq!(
        ok(&server, json!({"operation": "create_table", "schema": "conf", "table": "breed", "hash_attribute": "id"})),
        json!({"message": "table 'conf.breed' successfully created."})
    );
    assert_eq!(err(&server, json!({"operation": "create_table", "database": "conf", "table": "breed", "primary_key": "id"})), (400, "Table 'breed' already exists in 'conf'".into()));
    assert_eq!(err(&server, json!({"operation": "create_table", "database": "conf"})), (400, "'table' is required. 'primary_key' is required".into()));
    // A missing database is created on the fly; `data` is the default.
    ok(&server, json!({"operation": "create_table", "table": "t", "primary_key": "id"}));
    let all = ok(&server, json!({"operation": "describe_all"}));
    assert_eq!(all.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["conf".to_string(), "data".to_string()]));
    assert_eq!(err(&server, json!({"operation": "describe_table", "database": "conf", "table": "nosuch"})), (404, "Table 'conf.nosuch' does not exist".into()));
    assert_eq!(err(&server, json!({"operation": "describe_database", "database": "nosuch"})), (404, "database 'nosuch' does not exist".into()));
    assert_eq!(ok(&server, json!({"operation": "drop_table", "database": "conf", "table": "breed"})), json!({"message": "successfully deleted table 'conf.breed'"}));
    assert_eq!(err(&server, json!({"operation": "drop_table", "database": "conf", "table": "breed"})), (404, "Table 'conf.breed' does not exist".into()));
    assert_eq!(ok(&server, json!({"operation": "drop_schema", "schema": "conf"})), json!({"message": "successfully deleted 'conf'"}));
    assert_eq!(err(&server, json!({"operation": "drop_database", "database": "conf"})), (404, "database 'conf' does not exist".into()));
    // The host's own database is out of reach.
    assert_eq!(err(&server, json!({"operation": "create_table", "database": "system", "table": "x", "primary_key": "id"})).0, 403);
    // A role without table permissions sees no databases.
    assert_eq!(server.post_as(USER, json!({"operation": "describe_all"})), (200, json!({})));
}

#[test]
fn describe_table_has_harpers_shape() {
    let server = Server::start();
    dogs(&server);
    let d = ok(&server, json!({"operation": "describe_table", "database": "dev", "table": "dog"}));
    for key in ["schema", "name", "hash_attribute", "audit", "schema_defined", "attributes", "db_size", "sources", "record_count", "table_size", "db_audit_size", "last_updated_record"] {
        assert!(d.get(key).is_some(), "missing {key}: {d}");
    }
    assert_eq!((d["schema"].clone(), d["name"].clone(), d["hash_attribute"].clone(), d["record_count"].clone()), (json!("dev"), json!("dog"), json!("id"), json!(6)));
    let attrs = d["attributes"].as_array().expect("attributes");
    assert!(attrs.contains(&json!({"attribute": "id", "is_primary_key": true})));
    assert!(attrs.contains(&json!({"attribute": "breed", "indexed": true})));
    let db = ok(&server, json!({"operation": "describe_database", "database": "dev"}));
    assert_eq!(db["dog"]["record_count"], 6);
}

#[test]
fn writes_answer_with_harpers_shapes() {
    let server = Server::start();
    dogs(&server);
    let t = |op: &str, records: Value| json!({"operation": op, "database": "dev", "table": "dog", "records": records});
    assert_eq!(ok(&server, t("insert", json!([{"id": 1, "name": "dup"}]))), json!({"message": "inserted 0 of 1 records", "inserted_hashes": [], "skipped_hashes": [1]}));
    assert_eq!(ok(&server, t("insert", json!([]))), json!({"message": "inserted 0 of 0 records", "inserted_hashes": [], "skipped_hashes": []}));
    let generated = ok(&server, t("insert", json!([{"name": "NoKey"}])));
    let key = generated["inserted_hashes"][0].as_str().expect("generated key").to_string();
    assert_eq!(key.len(), 36, "a UUID");
    assert_eq!(ok(&server, t("update", json!([{"id": 1, "age": 6}, {"id": 99, "age": 1}]))), json!({"message": "updated 1 of 2 records", "update_hashes": [1], "skipped_hashes": [99]}));
    assert_eq!(ok(&server, t("upsert", json!([{"id": 2, "age": 4}, {"id": 7, "name": "Zed"}]))), json!({"message": "upserted 2 of 2 records", "upserted_hashes": [2, 7]}));
    let got = ok(&server, json!({"operation": "search_by_id", "database": "dev", "table": "dog", "ids": [1, 2, 7], "get_attributes": ["id", "name", "age"]}));
    assert_eq!(got, json!([{"id": 1, "name": "Penny", "age": 6}, {"id": 2, "name": "Harper", "age": 4}, {"id": 7, "name": "Zed", "age": null}]));
    assert_eq!(
        ok(&server, json!({"operation": "delete", "database": "dev", "table": "dog", "hash_values": [7]})),
        json!({"message": "1 of 1 record successfully deleted", "deleted_hashes": [7], "skipped_hashes": []})
    );
    assert_eq!(
        ok(&server, json!({"operation": "delete", "database": "dev", "table": "dog", "ids": [key, 404]})),
        json!({"message": "1 of 2 records successfully deleted", "deleted_hashes": [key], "skipped_hashes": [404]})
    );
    // Bad input: nothing written.
    assert_eq!(err(&server, json!({"operation": "insert", "database": "dev", "table": "dog"})), (400, "'records' is required".into()));
    assert_eq!(err(&server, t("insert", json!("x"))), (400, "'records' must be an array".into()));
    assert_eq!(err(&server, json!({"operation": "insert", "database": "dev", "table": "nosuch", "records": []})), (400, "Table 'dev.nosuch' does not exist".into()));
    let (status, _) = err(&server, t("insert", json!([{"id": 100, "name": "fine"}, {"id": {"bad": 1}}])));
    assert_eq!(status, 400);
    assert_eq!(ok(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [100], "get_attributes": ["id"]})), json!([]));
    assert_eq!(err(&server, t("insert", json!([{"id": 101, "bad key!": 1}]))).0, 400);
}

#[test]
fn search_by_hash_keeps_request_order_and_star_gives_every_attribute() {
    let server = Server::start();
    dogs(&server);
    let r = ok(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [3, 99, 1], "get_attributes": ["*"]}));
    assert_eq!(ids(&r), vec![json!(3), json!(1)]);
    let keys: Vec<&str> = r[0].as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "__createdtime__", "__updatedtime__", "age", "breed", "name"]);
    assert!(r[0]["__createdtime__"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
    assert_eq!(err(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "get_attributes": ["id"]})), (400, "'hash_values' is required".into()));
    assert_eq!(err(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": 1, "get_attributes": ["id"]})), (400, "'hash_values' must be an array".into()));
    assert_eq!(err(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1]})), (400, "'get_attributes' is required".into()));
    assert_eq!(err(&server, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["nosuchattr"]})), (400, "unknown attribute 'nosuchattr'".into()));
}

#[test]
fn search_by_value_is_type_sensitive_with_wildcards() {
    let server = Server::start();
    dogs(&server);
    let sv = |attribute: &str, value: Value| {
        ids(&ok(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": attribute, "value": value, "get_attributes": ["id"]})))
    };
    assert_eq!(sv("age", json!(3)), vec![json!(2)]);
    assert_eq!(sv("age", json!("3")), vec![json!(3)]);
    assert_eq!(sv("name", json!("Pen*")), vec![json!(5), json!(1)]);
    assert_eq!(sv("name", json!("*y")), vec![json!(3), json!(1)]);
    // An infix search reads the records (it also finds array items, which the attribute index
    // does not hold), so its answer is in primary-key order, not the index's value order.
    assert_eq!(sv("name", json!("*en*")), vec![json!(1), json!(5)]);
    assert_eq!(sv("breed", json!("*")).len(), 5);
    assert_eq!(sv("id", json!(4)), vec![json!(4)]);
    assert_eq!(err(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "value": 1, "get_attributes": ["id"]})), (400, "'attribute' is required".into()));
    assert_eq!(err(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "age", "get_attributes": ["id"]})), (400, "'value' is required".into()));
    assert_eq!(err(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "nosuchattr", "value": 1, "get_attributes": ["id"]})), (400, "unknown attribute 'nosuchattr'".into()));
}

#[test]
fn search_by_conditions_operators_nesting_sort_and_paging() {
    let server = Server::start();
    dogs(&server);
    let sc = |extra: Value| {
        let mut body = json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let mut got = ids(&ok(&server, body));
        if extra.get("sort").is_none() {
            got.sort_by_key(|v| v.to_string());
        }
        got
    };
    let one = |attribute: &str, comparator: &str, value: Value| sc(json!({"conditions": [{"attribute": attribute, "comparator": comparator, "value": value}]}));
    let v = |xs: &[i64]| xs.iter().map(|x| json!(x)).collect::<Vec<_>>();
    assert_eq!(one("breed", "equals", json!("Beagle")), v(&[1, 3]));
    assert_eq!(one("name", "contains", json!("en")), v(&[1, 5]));
    assert_eq!(one("name", "starts_with", json!("Pe")), v(&[1, 5]));
    assert_eq!(one("name", "ends_with", json!("x")), v(&[6]));
    assert_eq!(one("age", "greater_than", json!(5)), v(&[4, 6]));
    assert_eq!(one("age", "greater_than_equal", json!(5)), v(&[1, 4, 6]));
    assert_eq!(one("age", "less_than", json!(3)), v(&[5]));
    assert_eq!(one("age", "less_than_equal", json!(3)), v(&[2, 5]));
    assert_eq!(one("age", "between", json!([3, 9])), v(&[1, 2, 4]));
    assert_eq!(one("breed", "not_equal", json!("Beagle")), v(&[2, 4, 5, 6]));
    let nested = sc(json!({"operator": "and", "conditions": [
        {"search_attribute": "age", "search_type": "less_than", "search_value": 10},
        {"operator": "or", "conditions": [
            {"attribute": "breed", "comparator": "equals", "value": "Beagle"},
            {"attribute": "name", "comparator": "starts_with", "value": "H"}]}]}));
    assert_eq!(nested, v(&[1, 2]));
    let or = sc(json!({"operator": "or", "conditions": [
        {"attribute": "breed", "comparator": "equals", "value": "Pug"},
        {"attribute": "age", "comparator": "equals", "value": "3"}]}));
    assert_eq!(or, v(&[3, 4]));
    let sorted = sc(json!({"conditions": [{"attribute": "age", "comparator": "greater_than", "value": 0}],
                          "sort": {"attribute": "age", "descending": true}, "offset": 1, "limit": 3}));
    assert_eq!(sorted, v(&[4, 1, 2]));
    assert_eq!(
        err(&server, json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"], "conditions": [{"attribute": "age", "comparator": "bogus", "value": 1}]})),
        (400, "Unknown query comparator \"bogus\"".into())
    );
    assert_eq!(
        err(&server, json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"], "operator": "or", "conditions": [{"attribute": "age", "comparator": "equals", "value": 1}]})),
        (400, "An \"or\" operator requires at least two conditions".into())
    );
    assert_eq!(err(&server, json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"]})), (400, "'conditions' is required".into()));
}

#[test]
fn acknowledged_writes_survive_a_crash() {
    let server = Server::start();
    dogs(&server);
    ok(&server, json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 1, "age": 7}]}));
    ok(&server, json!({"operation": "delete", "database": "dev", "table": "dog", "ids": [6]}));
    let root = server.crash();
    let server = Server::builder().root(root).start();
    let got = ok(&server, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "age", "value": 7, "get_attributes": ["id", "name"]}));
    assert_eq!(got, json!([{"id": 1, "name": "Penny"}]));
    let d = ok(&server, json!({"operation": "describe_table", "database": "dev", "table": "dog"}));
    assert_eq!(d["record_count"], 5);
}
