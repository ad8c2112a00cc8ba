//! The conformance suite every [`StorageBackend`] passes: schema operations, write modes,
//! conflicts, deletes, searches and the replication merges, written against the trait only.
//! `conformance_tests!(make)` expands to one `#[test]` per check for a backend; RocksDB runs it
//! below (`services::storage::conformance::rocks::*`).

use super::query::{Cmp, Cond, Query};
use super::{Cursor, Storage, StorageBackend, WriteMode, WriteOutcome};
use crate::services::ServiceError;
use serde_json::{json, Value};
use std::sync::Arc;

/// A backend under test and whatever must live as long as it (a temporary folder).
pub struct Fixture {
    pub store: Arc<dyn StorageBackend>,
    pub _keep: Box<dyn std::any::Any>,
}

/// Expands to one test per conformance check, each over a fresh backend from `$make`.
macro_rules! conformance_tests {
    ($make:path) => {
        #[test]
        fn schema_operations() {
            $crate::services::storage::conformance::schema_operations(&$make());
        }
        #[test]
        fn write_modes() {
            $crate::services::storage::conformance::write_modes(&$make());
        }
        #[test]
        fn conflicts_and_validation() {
            $crate::services::storage::conformance::conflicts_and_validation(&$make());
        }
        #[test]
        fn deletes() {
            $crate::services::storage::conformance::deletes(&$make());
        }
        #[test]
        fn searches() {
            $crate::services::storage::conformance::searches(&$make());
        }
        #[test]
        fn merge_is_last_writer_wins_in_any_order() {
            $crate::services::storage::conformance::merge_is_last_writer_wins_in_any_order(&$make);
        }
        #[test]
        fn merge_deletes_keep_later_versions() {
            $crate::services::storage::conformance::merge_deletes_keep_later_versions(&$make());
        }
    };
}
pub(crate) use conformance_tests;

/// Removes a test's temporary folder when dropped.
pub struct Temp(pub std::path::PathBuf);
impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A RocksDB store in a fresh temporary folder, and the guard that removes the folder (every
/// storage unit test opens its store here).
pub fn temp_storage() -> (Temp, Storage) {
    let dir = std::env::temp_dir().join(format!("opshost-storage-test-{}", uuid::Uuid::new_v4().simple()));
    let storage = Storage::open(&dir, false).expect("open");
    (Temp(dir), storage)
}

/// [`temp_storage`] with table `p.t` (primary key `id`) made: the write-path unit tests' store.
pub fn temp_table() -> (Temp, Storage) {
    let (temp, storage) = temp_storage();
    storage.create_table("p", "t", "id").expect("table");
    (temp, storage)
}

/// [`temp_storage`] shared, with the guard type-erased (for [`Fixture`]).
pub fn temp_rocks() -> (Arc<Storage>, Box<dyn std::any::Any>) {
    let (temp, storage) = temp_storage();
    (Arc::new(storage), Box::new(temp))
}

/// A RocksDB store in a fresh temporary folder.
pub fn rocks() -> Fixture {
    let (store, keep) = temp_rocks();
    Fixture { store, _keep: keep }
}

mod rocks {
    super::conformance_tests!(super::rocks);
}

fn all(mut cursor: Cursor) -> Vec<Value> {
    cursor.collect_all().expect("cursor")
}

fn ids(cursor: Cursor) -> Vec<Value> {
    all(cursor).into_iter().map(|r| r["id"].clone()).collect()
}

fn leaf(attribute: &str, cmp: Cmp, value: Value) -> Cond {
    Cond::Leaf { attribute: attribute.into(), cmp, value, upper: None }
}

fn dogs(s: &Arc<dyn StorageBackend>) {
    s.create_table("dev", "dog", "id").expect("table");
    let out = s
        .write(
            "dev",
            "dog",
            WriteMode::Insert,
            vec![
                json!({"id": 1, "name": "Penny", "age": 5, "breed": "Beagle"}),
                json!({"id": 2, "name": "Harper", "age": 3, "breed": "Mutt"}),
                json!({"id": 3, "name": "Billy", "age": "3", "breed": "Beagle"}),
                json!({"id": "x", "name": "Kato", "age": 9}),
            ],
        )
        .expect("insert");
    assert_eq!(out.written.len(), 4);
}

pub fn schema_operations(f: &Fixture) {
    let s = &f.store;
    s.create_database("dev").expect("db");
    assert!(matches!(s.create_database("dev"), Err(ServiceError::BadRequest(_))));
    assert!(matches!(s.create_database("bad name!"), Err(ServiceError::BadRequest(_))));
    assert!(matches!(s.create_table("dev", "dog", "bad key"), Err(ServiceError::BadRequest(_))));
    dogs(s);
    assert!(matches!(s.create_table("dev", "dog", "id"), Err(ServiceError::BadRequest(_))));
    // create_table makes a missing database.
    s.create_table("other", "cat", "name").expect("table in a new database");
    assert_eq!(
        s.list_databases(),
        vec![("dev".to_string(), vec!["dog".to_string()]), ("other".to_string(), vec!["cat".to_string()])]
    );
    let info = s.describe_table("dev", "dog").expect("describe");
    assert_eq!((info.primary_key.as_str(), info.record_count), ("id", 4));
    assert_eq!(info.attributes, ["age", "breed", "id", "name"]);
    assert!(info.last_updated.is_some());
    assert!(matches!(s.describe_table("dev", "nosuch"), Err(ServiceError::NotFound(_))));
    s.drop_table("dev", "dog").expect("drop");
    assert!(matches!(s.describe_table("dev", "dog"), Err(ServiceError::NotFound(_))));
    assert!(matches!(s.drop_table("dev", "dog"), Err(ServiceError::NotFound(_))));
    s.drop_database("other").expect("drop db");
    assert!(matches!(s.drop_database("other"), Err(ServiceError::NotFound(_))));
    assert_eq!(s.list_databases(), vec![("dev".to_string(), vec![])]);
    // A dropped table's name can be created again, empty.
    dogs(s);
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 4);
}

pub fn write_modes(f: &Fixture) {
    let s = &f.store;
    dogs(s);
    let out = s.write("dev", "dog", WriteMode::Update, vec![json!({"id": 1, "age": 6}), json!({"id": 99, "age": 1})]).expect("update");
    assert_eq!(out, WriteOutcome { written: vec![json!(1)], skipped: vec![json!(99)] });
    // Update merges: untouched attributes stay.
    let got = s.get("dev", "dog", &[json!(1)], &["name".into(), "age".into()]).expect("get");
    assert_eq!(got, vec![json!({"name": "Penny", "age": 6})]);
    let out = s.write("dev", "dog", WriteMode::Upsert, vec![json!({"id": 7, "name": "New"}), json!({"id": 2, "age": 4})]).expect("upsert");
    assert_eq!(out.written, vec![json!(7), json!(2)]);
    assert_eq!(s.get("dev", "dog", &[json!(2)], &["name".into(), "age".into()]).expect("get"), vec![json!({"name": "Harper", "age": 4})]);
    // A record without its key gets a generated one (not on update).
    let out = s.write("dev", "dog", WriteMode::Insert, vec![json!({"name": "Anon"})]).expect("insert");
    assert!(out.written[0].as_str().is_some_and(|k| k.len() == 36));
    assert!(matches!(s.write("dev", "dog", WriteMode::Update, vec![json!({"name": "x"})]), Err(ServiceError::BadRequest(_))));
    // Timestamps are the store's: a client's are ignored, created stays, updated moves on.
    let before = s.get("dev", "dog", &[json!(7)], &["*".into()]).expect("get").remove(0);
    let created = before["__createdtime__"].as_u64().expect("created");
    s.write("dev", "dog", WriteMode::Update, vec![json!({"id": 7, "__createdtime__": 1, "__updatedtime__": 1})]).expect("update");
    let after = s.get("dev", "dog", &[json!(7)], &["*".into()]).expect("get").remove(0);
    assert_eq!(after["__createdtime__"].as_u64(), Some(created));
    assert!(after["__updatedtime__"].as_u64().expect("updated") >= created);
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 6);
    // `versions` is the record as stored: its own attributes only, both timestamps.
    let stored = s.versions("dev", "dog", &[json!(7), json!(404)]).expect("versions");
    assert_eq!(stored, vec![json!({"id": 7, "name": "New", "__createdtime__": created, "__updatedtime__": after["__updatedtime__"]})]);
    // `*` is the key, the two times, then every attribute alphabetically.
    let keys: Vec<String> = after.as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys, ["id", "__createdtime__", "__updatedtime__", "age", "breed", "name"]);
}

pub fn conflicts_and_validation(f: &Fixture) {
    let s = &f.store;
    dogs(s);
    let out = s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 1, "name": "dup"}), json!({"id": 8, "name": "Eight"})]).expect("insert");
    assert_eq!(out, WriteOutcome { written: vec![json!(8)], skipped: vec![json!(1)] });
    assert_eq!(s.get("dev", "dog", &[json!(1)], &["name".into()]).expect("get"), vec![json!({"name": "Penny"})]);
    // A key twice in one batch: the second sees the first.
    let out = s.write("dev", "dog", WriteMode::Insert, vec![json!({"id": 9, "a": 1}), json!({"id": 9, "a": 2})]).expect("insert");
    assert_eq!(out, WriteOutcome { written: vec![json!(9)], skipped: vec![json!(9)] });
    let out = s.write("dev", "dog", WriteMode::Upsert, vec![json!({"id": 10, "a": 1}), json!({"id": 10, "b": 2})]).expect("upsert");
    assert_eq!(out.written, vec![json!(10), json!(10)]);
    assert_eq!(s.get("dev", "dog", &[json!(10)], &["a".into(), "b".into()]).expect("get"), vec![json!({"a": 1, "b": 2})]);
    // A bad record anywhere writes nothing.
    let count = s.describe_table("dev", "dog").expect("d").record_count;
    for bad in [json!({"id": {"x": 1}}), json!("not an object"), json!({"id": 51, "bad name": 1}), json!({"id": 9007199254740993u64})] {
        let r = s.write("dev", "dog", WriteMode::Upsert, vec![json!({"id": 50}), bad.clone()]);
        assert!(matches!(r, Err(ServiceError::BadRequest(_))), "{bad} was accepted");
    }
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, count);
    assert!(matches!(s.write("dev", "nosuch", WriteMode::Insert, vec![json!({"id": 1})]), Err(ServiceError::NotFound(_))));
}

pub fn deletes(f: &Fixture) {
    let s = &f.store;
    dogs(s);
    let out = s.delete("dev", "dog", vec![json!(1), json!(1000), json!(1)]).expect("delete");
    assert_eq!(out, WriteOutcome { written: vec![json!(1)], skipped: vec![json!(1000), json!(1)] });
    assert!(s.get("dev", "dog", &[json!(1)], &["*".into()]).expect("get").is_empty());
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 3);
    // The deleted record's index entries went with it.
    let q = Query { cond: Some(leaf("breed", Cmp::Equals, json!("Beagle"))), attributes: vec!["id".into()], ..Default::default() };
    assert_eq!(ids(s.search("dev", "dog", q).expect("search")), vec![json!(3)]);
    assert!(matches!(s.delete("dev", "nosuch", vec![json!(1)]), Err(ServiceError::NotFound(_))));
}

pub fn searches(f: &Fixture) {
    let s = &f.store;
    dogs(s);
    let q = |cond: Cond| Query { cond: Some(cond), attributes: vec!["id".into()], ..Default::default() };
    assert_eq!(ids(s.search("dev", "dog", q(leaf("age", Cmp::Equals, json!(3)))).expect("s")), vec![json!(2)]);
    assert_eq!(ids(s.search("dev", "dog", q(leaf("age", Cmp::Equals, json!("3")))).expect("s")), vec![json!(3)]);
    assert_eq!(ids(s.search("dev", "dog", q(leaf("name", Cmp::StartsWith, json!("P")))).expect("s")), vec![json!(1)]);
    assert_eq!(ids(s.search("dev", "dog", q(leaf("age", Cmp::GreaterThan, json!(4)))).expect("s")), vec![json!(1), json!("x")]);
    let and = Cond::And(vec![leaf("breed", Cmp::Equals, json!("Beagle")), leaf("age", Cmp::LessThan, json!(10))]);
    assert_eq!(ids(s.search("dev", "dog", q(and)).expect("s")), vec![json!(1)]);
    let or = Cond::Or(vec![leaf("name", Cmp::EndsWith, json!("to")), leaf("id", Cmp::Equals, json!(2))]);
    assert_eq!(ids(s.search("dev", "dog", q(or)).expect("s")), vec![json!(2), json!("x")]);
    let everything = Query { attributes: vec!["id".into()], ..Default::default() };
    assert_eq!(ids(s.search("dev", "dog", everything).expect("s")).len(), 4);
    let sorted = Query { attributes: vec!["name".into()], sort: vec![("name".into(), true)], offset: 1, limit: Some(2), ..Default::default() };
    let names: Vec<Value> = all(s.search("dev", "dog", sorted).expect("s")).into_iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, vec![json!("Kato"), json!("Harper")]);
    assert!(matches!(s.search("dev", "dog", q(leaf("nosuch", Cmp::Equals, json!(1)))), Err(ServiceError::BadRequest(_))));
    assert!(matches!(s.search("dev", "nosuch", Query::default()), Err(ServiceError::NotFound(_))));
}

/// Replication's merge: the newer `__updatedtime__` wins, a tie goes to the greater bytes, and
/// two stores fed the same versions in opposite orders end with the same records.
pub fn merge_is_last_writer_wins_in_any_order(make: &dyn Fn() -> Fixture) {
    let v = |name: &str, t: u64| json!({"id": 1, "name": name, "__createdtime__": 100, "__updatedtime__": t});
    let versions = vec![v("old", 200), v("new", 300), v("tie_a", 400), v("tie_b", 400), v("older", 150)];
    let (a, b) = (make(), make());
    for f in [&a, &b] {
        f.store.create_table("dev", "dog", "id").expect("table");
    }
    for version in &versions {
        a.store.merge("dev", "dog", vec![version.clone()]).expect("merge");
    }
    for version in versions.iter().rev() {
        b.store.merge("dev", "dog", vec![version.clone()]).expect("merge");
    }
    for f in [&a, &b] {
        let got = f.store.get("dev", "dog", &[json!(1)], &["*".into()]).expect("get");
        assert_eq!(got, vec![json!({"id": 1, "__createdtime__": 100, "__updatedtime__": 400, "name": "tie_b"})]);
        assert_eq!(f.store.describe_table("dev", "dog").expect("d").record_count, 1);
        // The index follows the kept version only.
        let q = Query { cond: Some(leaf("name", Cmp::Equals, json!("new"))), attributes: vec!["id".into()], ..Default::default() };
        assert!(ids(f.store.search("dev", "dog", q).expect("s")).is_empty());
    }
    // Older and identical versions are reported skipped; a merge needs the timestamps.
    let out = a.store.merge("dev", "dog", vec![v("tie_b", 400), v("late", 399)]).expect("merge");
    assert_eq!(out, WriteOutcome { written: vec![], skipped: vec![json!(1), json!(1)] });
    assert!(matches!(a.store.merge("dev", "dog", vec![json!({"id": 2})]), Err(ServiceError::BadRequest(_))));
    // A local write after a merge stamps a newer time, so it replaces the merged version.
    a.store.write("dev", "dog", WriteMode::Update, vec![json!({"id": 1, "name": "local"})]).expect("update");
    assert_eq!(a.store.get("dev", "dog", &[json!(1)], &["name".into()]).expect("get"), vec![json!({"name": "local"})]);
}

pub fn merge_deletes_keep_later_versions(f: &Fixture) {
    let s = &f.store;
    s.create_table("dev", "dog", "id").expect("table");
    let v = |id: u64, t: u64| json!({"id": id, "__createdtime__": t, "__updatedtime__": t});
    s.merge("dev", "dog", vec![v(1, 100), v(2, 300)]).expect("merge");
    let out = s.merge_deletes("dev", "dog", vec![json!(1), json!(2), json!(3)], 200).expect("delete");
    assert_eq!(out, WriteOutcome { written: vec![json!(1)], skipped: vec![json!(2), json!(3)] });
    assert_eq!(ids(s.search("dev", "dog", Query { attributes: vec!["id".into()], ..Default::default() }).expect("s")), vec![json!(2)]);
    assert_eq!(s.describe_table("dev", "dog").expect("d").record_count, 1);
}
