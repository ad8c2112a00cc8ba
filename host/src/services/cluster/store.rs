//! The replicated store: a [`StorageBackend`] wrapping the local RocksDB store. A write or
//! schema change is committed locally first, then published to JetStream, and the call
//! returns only once JetStream acknowledged it (stored on a quorum of its servers), so an
//! acknowledged write survives the loss of a NATS server. Reads are local.

use super::change::Kind;
use super::Cluster;
use crate::services::storage::query::Query;
use crate::services::storage::{Cursor, Storage, StorageBackend, TableInfo, WriteMode, WriteOutcome, SYSTEM_DATABASE};
use crate::services::ServiceError;
use serde_json::Value;
use std::sync::Arc;

/// System tables that replicate (users, roles, certificates); the others (jobs, node
/// registrations, ...) belong to their node.
pub const REPLICATED_SYSTEM_TABLES: &[&str] = &["hdb_user", "hdb_role", CERTIFICATES];
/// Certificates travel without `private_key_name` (a key file on the node that has it; keys
/// themselves are never in records), so other nodes hold the public part only.
pub const CERTIFICATES: &str = "hdb_certificate";

pub struct ReplicatedStore {
    inner: Arc<Storage>,
    cluster: Arc<Cluster>,
}

impl ReplicatedStore {
    pub fn new(inner: Arc<Storage>, cluster: Arc<Cluster>) -> Self {
        Self { inner, cluster }
    }
}

/// Whether changes to this database (and table) travel to the other nodes.
pub fn replicated(db: &str, table: Option<&str>) -> bool {
    db != SYSTEM_DATABASE || table.is_some_and(|t| REPLICATED_SYSTEM_TABLES.contains(&t))
}

impl ReplicatedStore {
    /// Whether this change is published (clustering on, a replicated table).
    fn replicates(&self, db: &str, table: Option<&str>) -> bool {
        self.cluster.enabled() && replicated(db, table)
    }

    fn publish(&self, kind: Kind) -> Result<(), ServiceError> {
        let (db, table) = kind.target();
        if !self.replicates(db, table) {
            return Ok(());
        }
        self.cluster.publish(kind)
    }
}

impl StorageBackend for ReplicatedStore {
    fn create_database(&self, db: &str) -> Result<(), ServiceError> {
        self.inner.create_database(db)?;
        self.publish(Kind::CreateDatabase { database: db.into() })
    }
    fn drop_database(&self, db: &str) -> Result<(), ServiceError> {
        self.inner.drop_database(db)?;
        self.inner.forget_marks(db, None)?;
        self.publish(Kind::DropDatabase { database: db.into() })
    }
    fn create_table(&self, db: &str, table: &str, primary_key: &str) -> Result<(), ServiceError> {
        self.inner.create_table(db, table, primary_key)?;
        self.publish(Kind::CreateTable { database: db.into(), table: table.into(), primary_key: primary_key.into() })
    }
    fn drop_table(&self, db: &str, table: &str) -> Result<(), ServiceError> {
        self.inner.drop_table(db, table)?;
        self.inner.forget_marks(db, Some(table))?;
        self.publish(Kind::DropTable { database: db.into(), table: table.into() })
    }
    fn list_databases(&self) -> Vec<(String, Vec<String>)> {
        StorageBackend::list_databases(&*self.inner)
    }
    fn describe_table(&self, db: &str, table: &str) -> Result<TableInfo, ServiceError> {
        StorageBackend::describe_table(&*self.inner, db, table)
    }
    fn write(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        let outcome = self.inner.write(db, table, mode, records)?;
        if !outcome.written.is_empty() && self.replicates(db, Some(table)) {
            // The versions as stored (a concurrent local write may already have replaced
            // one: then the newer version is published twice, which merging makes harmless).
            let mut records = self.inner.versions(db, table, &outcome.written)?;
            if db == SYSTEM_DATABASE && table == CERTIFICATES {
                for record in &mut records {
                    record["private_key_name"] = Value::Null;
                }
            }
            let primary_key = self.inner.primary_key(db, table)?;
            self.publish(Kind::Put { database: db.into(), table: table.into(), primary_key, records })?;
        }
        Ok(outcome)
    }
    // A table that does not replicate leaves its sync to the caller like a plain store; one
    // that does writes durably, then publishes (on a blocking thread), as `write` does.
    fn write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<(WriteOutcome, Option<u64>), ServiceError> {
        if self.replicates(db, Some(table)) {
            return self.write(db, table, mode, records).map(|outcome| (outcome, None));
        }
        self.inner.write_unsynced(db, table, mode, records)
    }
    fn try_write_unsynced(&self, db: &str, table: &str, mode: WriteMode, records: Vec<Value>) -> Result<Option<(WriteOutcome, Option<u64>)>, ServiceError> {
        if self.replicates(db, Some(table)) {
            return Ok(None);
        }
        self.inner.try_write_unsynced(db, table, mode, records)
    }
    fn delete(&self, db: &str, table: &str, ids: Vec<Value>) -> Result<WriteOutcome, ServiceError> {
        if !self.replicates(db, Some(table)) {
            return self.inner.delete(db, table, ids);
        }
        // The delete's time is at least that of every version it removes, so it removes them
        // on every node too (a local update stamps at most a millisecond ahead of the clock).
        let before = self.inner.versions(db, table, &ids)?;
        let at = before.iter().filter_map(|r| r.get("__updatedtime__").and_then(Value::as_u64)).fold(super::now_ms(), u64::max);
        // Its tombstones are written in the same batch as the delete.
        let outcome = self.inner.delete_marked(db, table, ids, &self.cluster.node_name(), at)?;
        if !outcome.written.is_empty() {
            self.publish(Kind::Delete { database: db.into(), table: table.into(), ids: outcome.written.clone(), at })?;
        }
        Ok(outcome)
    }
    fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError> {
        StorageBackend::get(&*self.inner, db, table, ids, attributes)
    }
    fn start_search(self: Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError> {
        self.inner.clone().start_search(db, table, query)
    }
    fn merge_from(&self, db: &str, table: &str, local: &str, versions: Vec<(String, Value)>) -> Result<WriteOutcome, ServiceError> {
        self.inner.merge_from(db, table, local, versions)
    }
    fn merge_deletes_from(&self, db: &str, table: &str, local: &str, origin: &str, ids: Vec<Value>, time: u64) -> Result<WriteOutcome, ServiceError> {
        self.inner.merge_deletes_from(db, table, local, origin, ids, time)
    }
    fn versions(&self, db: &str, table: &str, ids: &[Value]) -> Result<Vec<Value>, ServiceError> {
        self.inner.versions(db, table, ids)
    }
    fn local(self: Arc<Self>) -> Arc<Storage> {
        self.inner.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::cluster::ClusterSettings;
    use crate::services::storage::conformance::{conformance_tests, temp_rocks, Fixture};

    /// The replicated store with clustering off: every call reaches RocksDB unchanged.
    fn replicated_off() -> Fixture {
        let (rocks, keep) = temp_rocks();
        let cluster = Cluster::open(rocks.clone(), ClusterSettings::default()).expect("cluster");
        Fixture { store: Arc::new(ReplicatedStore::new(rocks, cluster)), _keep: keep }
    }

    conformance_tests!(replicated_off);
}
