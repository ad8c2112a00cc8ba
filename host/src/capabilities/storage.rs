//! `storage` capability: databases, tables, records and searches, through the storage
//! service. Converts between WIT records (JSON text values) and the service's types.

use super::{blocking, CallState};
use crate::bindings::opshost::host::storage::{
    Comparator, Condition, Host, HostCursor, Logic, Node, Query, TableInfo, WriteMode, WriteResult, WriteSummary,
};
use crate::bindings::OpError;
use crate::services::storage::query::{Cmp, Cond, Query as ServiceQuery};
use crate::services::storage::{self, audit, Paged as Cursor, StorageBackend, WriteOutcome};
use serde_json::Value;
use std::sync::Arc;
use wasmtime::component::Resource;

/// JSON text from the guest; garbage is the guest's bad request, not a host failure.
fn json(text: &str, what: &str) -> Result<Value, OpError> {
    serde_json::from_str(text).map_err(|_| OpError::BadRequest(format!("{what} is not valid JSON")))
}

fn jsons(texts: &[String], what: &str) -> Result<Vec<Value>, OpError> {
    texts.iter().map(|t| json(t, what)).collect()
}

fn outcome(o: WriteOutcome) -> WriteResult {
    WriteResult {
        written: o.written.iter().map(Value::to_string).collect(),
        skipped: o.skipped.iter().map(Value::to_string).collect(),
    }
}

/// The most records a write may hold to be written on the async worker (when the backend can:
/// `try_write_unsynced`); more, or a larger text, go to the blocking pool.
const INLINE_WRITE_RECORDS: usize = 16;
const INLINE_WRITE_BYTES: usize = 16 << 10;

/// Waits for the WAL sync that covers an unsynced write (`None`: nothing to wait for).
async fn durable(storage: Arc<dyn StorageBackend>, unsynced: Option<u64>) -> Result<(), OpError> {
    match unsynced {
        Some(seq) => storage.local().synced(seq).await.map_err(OpError::from),
        None => Ok(()),
    }
}

/// Whether a write is small enough for the async worker.
fn few_records(records: &Result<Vec<serde_json::Value>, storage::RecordTexts>) -> bool {
    match records {
        Ok(parsed) => parsed.len() <= INLINE_WRITE_RECORDS,
        Err(storage::RecordTexts::Each(texts)) => texts.len() <= INLINE_WRITE_RECORDS && texts.iter().map(String::len).sum::<usize>() <= INLINE_WRITE_BYTES,
        Err(storage::RecordTexts::Array(text)) => text.len() <= INLINE_WRITE_BYTES,
    }
}

/// The most ids a `get` reads on the async worker itself; more go to the blocking pool.
const INLINE_GET_IDS: usize = 16;


impl Host for CallState {
    async fn create_database(&mut self, database: String) -> Result<(), OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let s = self.services.storage.clone();
        blocking("storage", move || s.create_database(&database)).await
    }

    async fn drop_database(&mut self, database: String) -> Result<(), OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let s = self.services.storage.clone();
        blocking("storage", move || s.drop_database(&database)).await
    }

    async fn create_table(&mut self, database: String, table: String, primary_key: String) -> Result<(), OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let s = self.services.storage.clone();
        blocking("storage", move || s.create_table(&database, &table, &primary_key)).await
    }

    async fn drop_table(&mut self, database: String, table: String) -> Result<(), OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let s = self.services.storage.clone();
        blocking("storage", move || s.drop_table(&database, &table)).await
    }

    fn list_databases(&mut self) -> Result<Vec<(String, Vec<String>)>, OpError> {
        self.check("storage")?;
        let mut all = self.services.storage.list_databases();
        if let Some(p) = &self.caller.permissions {
            // A role sees the tables it has any permission on, and their databases.
            for (db, tables) in &mut all {
                tables.retain(|t| p.table(db, t).is_some_and(|t| t.read || t.insert || t.update || t.delete));
            }
            all.retain(|(db, tables)| !tables.is_empty() || p.structure(db));
        }
        Ok(all)
    }

    fn describe_table(&mut self, database: String, table: String) -> Result<TableInfo, OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let visible = self.caller.permissions.as_ref().map(|p| p.table(&database, &table).cloned());
        if let Some(None) = visible {
            return Err(self.deny(&database, &table, &["read"], Vec::new()));
        }
        let info = self.services.storage.describe_table(&database, &table)?;
        let mut attributes = info.attributes;
        if let Some(Some(t)) = visible.filter(|v| v.as_ref().is_some_and(|t| t.attribute_rules)) {
            // HarperDB shows a role with attribute rules only the attributes it may read.
            attributes.retain(|a| t.attributes.iter().any(|(name, read)| name == a && *read));
        }
        Ok(TableInfo {
            database: info.database,
            table: info.table,
            primary_key: info.primary_key,
            attributes,
            record_count: info.record_count,
            table_size: info.table_size,
            last_updated: info.last_updated,
            audit: info.audit,
            audit_size: info.audit_size,
        })
    }

    async fn write(&mut self, database: String, table: String, mode: WriteMode, records: Vec<String>) -> Result<WriteResult, OpError> {
        self.write_records(database, table, mode, storage::RecordTexts::Each(records)).await.map(outcome)
    }

    async fn write_text(&mut self, database: String, table: String, mode: WriteMode, records: String) -> Result<WriteSummary, OpError> {
        let o = self.write_records(database, table, mode, storage::RecordTexts::Array(records)).await?;
        let text = |keys: &[Value]| serde_json::to_string(keys).map_err(|e| OpError::Internal(format!("encoding keys: {e}")));
        Ok(WriteSummary {
            written: text(&o.written)?,
            written_count: o.written.len() as u32,
            skipped: text(&o.skipped)?,
            skipped_count: o.skipped.len() as u32,
        })
    }

    async fn delete(&mut self, database: String, table: String, ids: Vec<String>) -> Result<WriteResult, OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let ids = jsons(&ids, "an id")?;
        self.permit(&database, &table, &["delete"])?;
        let s = self.services.storage.clone();
        let user = self.caller.username.clone();
        blocking("storage", move || audit::as_user(&user, || s.delete(&database, &table, ids))).await.map(outcome)
    }

    async fn get(&mut self, database: String, table: String, ids: Vec<String>, attributes: Vec<String>) -> Result<Vec<String>, OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let ids = jsons(&ids, "an id")?;
        // Reads are local on every backend (a replicated store reads its own RocksDB).
        let s = self.services.storage.clone().local();
        // Taken before anything is read (the table's attributes included), for the answer cache.
        let version = s.settled_version();
        let attributes = self.readable(&database, &table, attributes, None)?;
        let records = if ids.len() <= INLINE_GET_IDS {
            // A point read of a few keys is a few microseconds: handing it to the blocking
            // pool (a thread wake-up and two context switches) cost more than the read.
            s.get_json(&database, &table, &ids, &attributes).map_err(OpError::from)?
        } else {
            blocking("storage", move || s.get_json(&database, &table, &ids, &attributes)).await?
        };
        if let Some(version) = version {
            self.trace.reads.push(crate::answers::Read::Storage(version));
        }
        Ok(records)
    }

    fn search(&mut self, database: String, table: String, query: Query) -> Result<Resource<Cursor>, OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let mut query = convert_query(query)?;
        let projection = std::mem::take(&mut query.attributes);
        query.attributes = self.readable(&database, &table, projection, Some(&query))?;
        let cursor = self.services.storage.search(&database, &table, query)?;
        self.table.push(Cursor::new(cursor)).map_err(|_| OpError::Internal("too many open cursors".into()))
    }

    async fn read_audit_log(&mut self, database: String, table: String, search_type: String, search_values: Vec<String>) -> Result<String, OpError> {
        self.check("storage")?;
        self.audit_reader()?;
        let search = audit::SearchType::parse(&search_type)?;
        let values = jsons(&search_values, "a search value")?;
        let s = self.services.storage.clone().local();
        blocking("storage", move || s.read_audit_log(&database, &table, search, &values).map(|v| v.to_string())).await
    }

    async fn delete_audit_log_before(&mut self, database: String, table: String, timestamp: f64) -> Result<u64, OpError> {
        self.check("storage")?;
        self.audit_reader()?;
        let s = self.services.storage.clone().local();
        blocking("storage", move || s.delete_audit_before(&database, &table, timestamp)).await
    }
}

impl CallState {
    /// `write` and `write-text`: checks the caller, then parses and writes the records (a few
    /// on this worker, more on a blocking thread) and answers once they are durable: the WAL
    /// sync is shared with the writes around this one (storage/durable.rs).
    async fn write_records(&mut self, database: String, table: String, mode: WriteMode, records: storage::RecordTexts) -> Result<WriteOutcome, OpError> {
        self.check("storage")?;
        reserved(&database)?;
        let needed: &[&str] = match mode {
            WriteMode::Insert => &["insert"],
            WriteMode::Update => &["update"],
            // HarperDB reports upsert's missing permission as "update".
            WriteMode::Upsert => &["update", "insert"],
        };
        // A super user's records are parsed on the blocking thread (a bulk insert's megabyte by
        // two threads, storage::parse_records), not on this async worker; a role's first, for
        // its attribute rules.
        let mut parsed = match self.caller.permissions {
            Some(_) => {
                let records = storage::parse_records(records)?;
                self.permit(&database, &table, needed)?;
                self.writable_attributes(&database, &table, needed, &records)?;
                Ok(records)
            }
            None => Err(records),
        };
        let mode = match mode {
            WriteMode::Insert => storage::WriteMode::Insert,
            WriteMode::Update => storage::WriteMode::Update,
            WriteMode::Upsert => storage::WriteMode::Upsert,
        };
        let s = self.services.storage.clone();
        let user = self.caller.username.clone();
        if few_records(&parsed) {
            // A few records are written on this worker: with the sync left to durable.rs the
            // write does not block (and gives way to the blocking pool when it would), and the
            // pool's hand-off (a thread woken per write, ~30 of them cycling at 16 clients)
            // cost more than the write.
            let records = parsed.or_else(storage::parse_records)?;
            let attempt = if records.len() <= INLINE_WRITE_RECORDS {
                audit::as_user(&user, || s.try_write_unsynced(&database, &table, mode, records.clone()))?
            } else {
                None
            };
            if let Some((outcome, unsynced)) = attempt {
                durable(s, unsynced).await?;
                return Ok(outcome);
            }
            parsed = Ok(records);
        }
        let writer = s.clone();
        let (outcome, unsynced) = blocking("storage", move || {
            let records = parsed.or_else(storage::parse_records)?;
            audit::as_user(&user, || writer.write_unsynced(&database, &table, mode, records))
        })
        .await?;
        durable(s, unsynced).await?;
        Ok(outcome)
    }

    /// The audit log shows every user's changes: super users only, whatever the component.
    fn audit_reader(&self) -> Result<(), OpError> {
        if self.caller.super_user {
            Ok(())
        } else {
            Err(OpError::Forbidden("the audit log is restricted to 'super_user' roles".into()))
        }
    }
}

impl HostCursor for CallState {
    /// The next page's rows (see `next_page`). The guest still sees "empty means the end".
    async fn next_batch(&mut self, cursor: Resource<Cursor>, max: u32) -> Result<Vec<String>, OpError> {
        let page = self.next_page(cursor, max).await?;
        Ok(page.split_terminator('\n').map(str::to_string).collect())
    }

    /// Up to `max` records, each followed by a newline, in one string: one copy across the
    /// boundary per page instead of one guest allocation per record. The search steps on a
    /// blocking thread (each step a bounded amount of work, so one that matches little does
    /// not hold an async worker) and the next page is read ahead while the guest works on
    /// this one (storage::Paged); dropping the cursor or the call stops the reading.
    async fn next_page(&mut self, cursor: Resource<Cursor>, max: u32) -> Result<String, OpError> {
        let slot = self.table.get_mut(&cursor).map_err(|_| OpError::BadRequest("unknown cursor".into()))?;
        Ok(slot.next_page(max as usize).await?.0)
    }

    fn drop(&mut self, cursor: Resource<Cursor>) -> wasmtime::Result<()> {
        self.table.delete(cursor)?;
        Ok(())
    }
}

/// Table permissions of non-super_user callers, enforced here so every operation (searches,
/// SQL, exports, third-party ones) is held to the same rules.
impl CallState {
    /// Refuses unless the caller's role has every permission in `needed` on the table.
    fn permit(&mut self, database: &str, table: &str, needed: &[&str]) -> Result<(), OpError> {
        let Some(p) = self.caller.permissions.clone() else { return Ok(()) };
        let t = p.table(database, table);
        let has = |n: &str| {
            t.is_some_and(|t| match n {
                "read" => t.read,
                "insert" => t.insert,
                "update" => t.update,
                "delete" => t.delete,
                _ => false,
            })
        };
        let missing: Vec<&str> = needed.iter().copied().filter(|n| !has(n)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(self.deny(database, table, &missing[..1], Vec::new()))
        }
    }

    /// The projection a read may use: read permission on the table, and with attribute rules
    /// `*` narrows to the readable attributes while naming another one is refused.
    /// Attributes a search's condition or sort names must be readable too: filtering or
    /// ordering by a hidden attribute would reveal its values.
    fn readable(&mut self, database: &str, table: &str, attributes: Vec<String>, search: Option<&ServiceQuery>) -> Result<Vec<String>, OpError> {
        self.permit(database, table, &["read"])?;
        let Some(p) = self.caller.permissions.clone() else { return Ok(attributes) };
        // An empty `attribute_permissions` list means the table permission covers every
        // attribute (HarperDB); only a non-empty list narrows reads.
        let Some(t) = p.table(database, table).filter(|t| t.attribute_rules && !t.attributes.is_empty()) else { return Ok(attributes) };
        let info = self.services.storage.describe_table(database, table)?;
        let may = |a: &str| {
            a == info.primary_key || a == "__createdtime__" || a == "__updatedtime__" || t.attributes.iter().any(|(name, read)| name == a && *read)
        };
        let mut named: Vec<&str> = Vec::new();
        if let Some(q) = search {
            if let Some(c) = &q.cond {
                c.attributes(&mut named);
            }
            named.extend(q.sort.iter().map(|(a, _)| a.as_str()));
        }
        let star = attributes.is_empty() || attributes.iter().any(|a| a == "*");
        if !star {
            named.extend(attributes.iter().map(String::as_str));
        }
        let mut denied: Vec<&str> = named.into_iter().filter(|a| !may(a)).collect();
        denied.dedup();
        if !denied.is_empty() {
            let denied = denied.into_iter().map(|a| (a.to_string(), vec!["read"])).collect();
            return Err(self.deny(database, table, &[], denied));
        }
        if star {
            // `*` narrows to what the role may read.
            return Ok(info.attributes.iter().filter(|a| may(a)).cloned().collect());
        }
        Ok(attributes)
    }

    /// With attribute rules on the table, every attribute a write sets (other than the
    /// primary key and the timestamps, which the host keeps) must carry the write's
    /// permissions (`insert`, `update`, or both for upsert); unlisted attributes carry none.
    fn writable_attributes(&mut self, database: &str, table: &str, needed: &[&str], records: &[Value]) -> Result<(), OpError> {
        let Some(p) = self.caller.permissions.clone() else { return Ok(()) };
        let Some(t) = p.table(database, table).filter(|t| t.attribute_rules && !t.attribute_writes.is_empty()) else { return Ok(()) };
        let primary_key = self.services.storage.describe_table(database, table)?.primary_key;
        let mut denied: Vec<(String, Vec<&str>)> = Vec::new();
        for record in records {
            let Some(fields) = record.as_object() else { continue };
            for name in fields.keys() {
                if *name == primary_key || name == "__createdtime__" || name == "__updatedtime__" || denied.iter().any(|(d, _)| d == name) {
                    continue;
                }
                let rule = t.attribute_writes.iter().find(|(a, _, _)| a == name);
                let missing: Vec<&str> = needed
                    .iter()
                    .copied()
                    .filter(|n| !rule.is_some_and(|(_, insert, update)| if *n == "insert" { *insert } else { *update }))
                    .collect();
                if !missing.is_empty() {
                    denied.push((name.clone(), missing));
                }
            }
        }
        if denied.is_empty() {
            Ok(())
        } else {
            Err(self.deny(database, table, &[], denied))
        }
    }

    /// Records a denial in HarperDB's shape for the 403 body and returns the guest's error.
    fn deny(&mut self, database: &str, table: &str, permissions: &[&str], attributes: Vec<(String, Vec<&str>)>) -> OpError {
        let attributes: Vec<Value> = attributes
            .into_iter()
            .map(|(a, needed)| serde_json::json!({"attribute_name": a, "required_permissions": needed}))
            .collect();
        self.effects.denied.push(serde_json::json!({
            "schema": database,
            "table": table,
            "required_table_permissions": permissions,
            "required_attribute_permissions": attributes,
        }));
        OpError::Forbidden(format!("not authorized to access table '{database}.{table}'"))
    }
}

/// The `system` database holds the host's own tables; operations do not reach it.
fn reserved(database: &str) -> Result<(), OpError> {
    if database == storage::SYSTEM_DATABASE {
        Err(OpError::Forbidden("the 'system' database is reserved".into()))
    } else {
        Ok(())
    }
}

/// Conditions one search may have (nodes of its tree).
const MAX_CONDITION_NODES: usize = 10_000;
/// How deeply groups may nest.
const MAX_CONDITION_DEPTH: usize = 64;

/// Rebuilds the condition tree from WIT's flat node list (children by index), refusing
/// out-of-range indexes, cycles and shared children: every node is used at most once, so the
/// tree is never larger than the list, whose size is capped too.
fn convert_query(q: Query) -> Result<ServiceQuery, OpError> {
    if q.nodes.len() > MAX_CONDITION_NODES {
        return Err(OpError::BadRequest(format!("too many conditions (at most {MAX_CONDITION_NODES})")));
    }
    let mut used = vec![false; q.nodes.len()];
    let cond = if q.nodes.is_empty() { None } else { Some(build(&q.nodes, 0, 0, &mut used)?) };
    Ok(ServiceQuery {
        cond,
        attributes: q.attributes,
        sort: q.sort.into_iter().map(|k| (k.attribute, k.descending)).collect(),
        offset: q.offset,
        limit: q.limit,
    })
}

fn build(nodes: &[Node], index: u32, depth: usize, used: &mut [bool]) -> Result<Cond, OpError> {
    if depth > MAX_CONDITION_DEPTH {
        return Err(OpError::BadRequest("conditions are nested too deeply".into()));
    }
    let node = nodes
        .get(index as usize)
        .ok_or_else(|| OpError::BadRequest(format!("condition node {index} does not exist")))?;
    if std::mem::replace(&mut used[index as usize], true) {
        return Err(OpError::BadRequest(format!("condition node {index} is used twice (conditions must form a tree)")));
    }
    match node {
        Node::Leaf(c) => leaf(c),
        Node::Group(g) => {
            let children = g.children.iter().map(|i| build(nodes, *i, depth + 1, used)).collect::<Result<Vec<_>, _>>()?;
            match g.logic {
                Logic::And => Ok(Cond::And(children)),
                Logic::Or => Ok(Cond::Or(children)),
                Logic::Not => match <[Cond; 1]>::try_from(children) {
                    Ok([child]) => Ok(Cond::Not(Box::new(child))),
                    Err(_) => Err(OpError::BadRequest("'not' takes exactly one condition".into())),
                },
            }
        }
    }
}

fn leaf(c: &Condition) -> Result<Cond, OpError> {
    let cmp = match c.comparator {
        Comparator::Equals => Cmp::Equals,
        Comparator::NotEqual => Cmp::NotEqual,
        Comparator::Contains => Cmp::Contains,
        Comparator::StartsWith => Cmp::StartsWith,
        Comparator::EndsWith => Cmp::EndsWith,
        Comparator::GreaterThan => Cmp::GreaterThan,
        Comparator::GreaterThanEqual => Cmp::GreaterThanEqual,
        Comparator::LessThan => Cmp::LessThan,
        Comparator::LessThanEqual => Cmp::LessThanEqual,
        Comparator::Between => Cmp::Between,
        Comparator::Exists => Cmp::Exists,
        Comparator::IsNull => Cmp::IsNull,
    };
    let upper = c.upper.as_deref().map(|u| json(u, "a condition value")).transpose()?;
    if cmp == Cmp::Between && upper.is_none() {
        return Err(OpError::BadRequest("'between' needs two values".into()));
    }
    Ok(Cond::Leaf { attribute: c.attribute.clone(), cmp, value: json(&c.value, "a condition value")?, upper })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::opshost::host::storage::Group;

    fn query(nodes: Vec<Node>) -> Query {
        Query { nodes, attributes: vec!["*".into()], sort: Vec::new(), offset: 0, limit: None }
    }

    fn leaf_node() -> Node {
        Node::Leaf(Condition { attribute: "a".into(), comparator: Comparator::Equals, value: "1".into(), upper: None })
    }

    fn bad(q: Query) -> String {
        match convert_query(q) {
            Err(OpError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    /// 64 groups each naming the next node twice would expand to 2^63 leaves: refused at once.
    #[test]
    fn a_condition_dag_is_refused_before_it_expands() {
        let mut nodes: Vec<Node> = (1..64u32).map(|i| Node::Group(Group { logic: Logic::And, children: vec![i, i] })).collect();
        nodes.push(leaf_node());
        let started = std::time::Instant::now();
        assert!(bad(query(nodes)).ends_with("is used twice (conditions must form a tree)"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // A cycle is a node used twice too.
        assert!(bad(query(vec![Node::Group(Group { logic: Logic::Not, children: vec![0] })])).contains("used twice"));
    }

    #[test]
    fn condition_trees_are_bounded_in_size_and_depth() {
        let wide: Vec<Node> = std::iter::once(Node::Group(Group { logic: Logic::Or, children: (1..=MAX_CONDITION_NODES as u32).collect() }))
            .chain((0..MAX_CONDITION_NODES).map(|_| leaf_node()))
            .collect();
        assert_eq!(bad(query(wide)), format!("too many conditions (at most {MAX_CONDITION_NODES})"));
        let mut deep: Vec<Node> = (1..=70u32).map(|i| Node::Group(Group { logic: Logic::Not, children: vec![i] })).collect();
        deep.push(leaf_node());
        assert_eq!(bad(query(deep)), "conditions are nested too deeply");
        // A plain tree still converts.
        let tree = vec![Node::Group(Group { logic: Logic::And, children: vec![1, 2] }), leaf_node(), leaf_node()];
        assert!(matches!(convert_query(query(tree)).expect("tree").cond, Some(Cond::And(c)) if c.len() == 2));
    }
}
