//! One replicated change as it travels on the JetStream stream: what happened, where, on which
//! node, and which nodes it is not meant for (their subscriptions on the origin say `publish:
//! false`). JSON, so a change can be read with the `nats` tool while debugging.

use serde::{Deserialize, Serialize};
use serde_json::Value;


#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The node that made the change (`clustering.nodeName`).
    pub origin: String,
    /// When the origin published it, in milliseconds (for the replication lag).
    pub time: u64,
    /// Nodes this change is not for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(flatten)]
    pub kind: Kind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Kind {
    CreateDatabase { database: String },
    DropDatabase { database: String },
    CreateTable { database: String, table: String, primary_key: String },
    DropTable { database: String, table: String },
    /// Full record versions (with their timestamps), merged last-writer-wins. The primary
    /// key's name lets a node that missed the table's creation create it.
    Put { database: String, table: String, primary_key: String, records: Vec<Value> },
    /// Deletes made at `at`: a version written after it survives.
    Delete { database: String, table: String, ids: Vec<Value>, at: u64 },
    /// A `replicated` deploy: the bytes wait in the stream's object store under their SHA-256
    /// (`hash`); each node checks them as a local deploy would (components.rs). `rollback`:
    /// the origin rolled back to its version of that number; each node rolls back to its kept
    /// version of the same bytes, deploying them only when it keeps none.
    DeployComponent {
        name: String,
        hash: String,
        grants: Option<Vec<String>>,
        signature: Option<String>,
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollback: Option<u64>,
    },
    /// A `replicated` drop.
    DropComponent { name: String, user: String },
    /// Snapshots only (snapshot.rs), never on the stream: every component name the origin keeps
    /// a version of. A node re-seeded from a complete snapshot drops a component it serves as
    /// replicated that is not among them (it was dropped while the node was away).
    ComponentsKept { names: Vec<String> },
    /// The cluster-wide keys of a `set_configuration` (config `CLUSTER_WIDE`), flattened key
    /// and raw JSON value, applied by each node through its own validation in stream order.
    SetConfiguration { changes: Vec<(String, String)>, user: String },
}

impl Kind {
    /// The database and table the change is about (no table for database changes).
    pub fn target(&self) -> (&str, Option<&str>) {
        match self {
            Kind::CreateDatabase { database } | Kind::DropDatabase { database } => (database, None),
            Kind::CreateTable { database, table, .. }
            | Kind::DropTable { database, table }
            | Kind::Put { database, table, .. }
            | Kind::Delete { database, table, .. } => (database, Some(table)),
            // Node-wide like users and roles: never filtered by table subscriptions.
            Kind::DeployComponent { .. } | Kind::DropComponent { .. } | Kind::ComponentsKept { .. } => {
                (crate::services::storage::SYSTEM_DATABASE, Some("hdb_component"))
            }
            Kind::SetConfiguration { .. } => (crate::services::storage::SYSTEM_DATABASE, None),
        }
    }

    /// The subject the change is published on, under the stream's `prefix`: schema changes
    /// on one subject, records per database and table (names are `[A-Za-z0-9_]+`, safe as
    /// subject tokens).
    pub fn subject(&self, prefix: &str) -> String {
        match self {
            Kind::Put { database, table, .. } | Kind::Delete { database, table, .. } => format!("{prefix}.data.{database}.{table}"),
            Kind::DeployComponent { .. } | Kind::DropComponent { .. } | Kind::ComponentsKept { .. } => format!("{prefix}.component"),
            Kind::SetConfiguration { .. } => format!("{prefix}.config"),
            _ => format!("{prefix}.schema"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_round_trip_in_their_json_shape() {
        let c = Change {
            origin: "a".into(),
            time: 5,
            exclude: vec![],
            kind: Kind::Put { database: "dev".into(), table: "dog".into(), primary_key: "id".into(), records: vec![json!({"id": 1})] },
        };
        let text = serde_json::to_value(&c).expect("json");
        assert_eq!(text, json!({"origin": "a", "time": 5, "op": "put", "database": "dev", "table": "dog", "primary_key": "id", "records": [{"id": 1}]}));
        let back: Change = serde_json::from_value(text).expect("parse");
        assert_eq!(back.kind.subject("opshost"), "opshost.data.dev.dog");
        assert_eq!(back.kind.target(), ("dev", Some("dog")));
    }
}
