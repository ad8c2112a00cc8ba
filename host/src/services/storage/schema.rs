//! Storage schema: databases and tables made, dropped, listed and described (catalog kept in the `meta` column family).

use super::*;

impl Storage {
    pub fn create_database(&self, db: &str) -> Result<(), ServiceError> {
        check_name("database", db)?;
        let _guard = self.schema_lock.lock();
        // A schema change holds RocksDB's column-family map for its MANIFEST write and sync, and
        // every write looks its column families up there: writes on async workers keep clear.
        let _slow = self.slow_write(true);
        let _changing = self.changing();
        if self.catalog.read().contains_key(db) {
            return Err(ServiceError::BadRequest(format!("database '{db}' already exists")));
        }
        let meta = self.meta().map_err(internal)?;
        self.db.put_cf_opt(&meta, format!("db/{db}"), b"{}", &self.write_options()).map_err(internal)?;
        self.catalog.write().insert(db.to_string(), BTreeMap::new());
        Ok(())
    }

    pub fn drop_database(&self, db: &str) -> Result<(), ServiceError> {
        let _guard = self.schema_lock.lock();
        // A schema change holds RocksDB's column-family map for its MANIFEST write and sync, and
        // every write looks its column families up there: writes on async workers keep clear.
        let _slow = self.slow_write(true);
        let _changing = self.changing();
        let tables: Vec<String> = {
            let catalog = self.catalog.read();
            let tables = catalog.get(db).ok_or_else(|| ServiceError::NotFound(format!("database '{db}' does not exist")))?;
            tables.keys().cloned().collect()
        };
        for table in &tables {
            self.drop_table_locked(db, table)?;
        }
        let meta = self.meta().map_err(internal)?;
        self.db.delete_cf_opt(&meta, format!("db/{db}"), &self.write_options()).map_err(internal)?;
        self.catalog.write().remove(db);
        Ok(())
    }

    /// Creates a table, and its database when missing (as HarperDB does).
    pub fn create_table(&self, db: &str, table: &str, primary_key: &str) -> Result<(), ServiceError> {
        check_name("database", db)?;
        check_name("table", table)?;
        check_name("primary_key", primary_key)?;
        let _guard = self.schema_lock.lock();
        // A schema change holds RocksDB's column-family map for its MANIFEST write and sync, and
        // every write looks its column families up there: writes on async workers keep clear.
        let _slow = self.slow_write(true);
        let _changing = self.changing();
        let locks = self.locks(db, table);
        let _table = locks.schema.write();
        if self.catalog.read().get(db).is_some_and(|t| t.contains_key(table)) {
            return Err(ServiceError::BadRequest(format!("Table '{table}' already exists in '{db}'")));
        }
        // Leftovers of an interrupted drop (only possible if a drop failed mid-way since open).
        for cf in [records_cf(db, table), index_cf(db, table)] {
            if self.db.cf_handle(&cf).is_some() {
                self.db.drop_cf(&cf).map_err(internal)?;
            }
            self.db.create_cf(&cf, &tuning::options_for(&cf)).map_err(internal)?;
        }
        let meta = self.meta().map_err(internal)?;
        let mut batch = WriteBatch::default();
        self.delete_table_meta(&mut batch, db, table)?;
        batch.put_cf(&meta, format!("db/{db}"), b"{}");
        batch.put_cf(&meta, format!("table/{db}/{table}"), serde_json::json!({ "primary_key": primary_key }).to_string());
        batch.put_cf(&meta, format!("attr/{db}/{table}/{primary_key}"), b"");
        self.commit(batch).map_err(internal)?;
        let mut attributes = BTreeSet::new();
        attributes.insert(primary_key.to_string());
        self.catalog
            .write()
            .entry(db.to_string())
            .or_default()
            .insert(table.to_string(), TableMeta { primary_key: primary_key.to_string(), attributes });
        Ok(())
    }

    pub fn drop_table(&self, db: &str, table: &str) -> Result<(), ServiceError> {
        let _guard = self.schema_lock.lock();
        // A schema change holds RocksDB's column-family map for its MANIFEST write and sync, and
        // every write looks its column families up there: writes on async workers keep clear.
        let _slow = self.slow_write(true);
        let _changing = self.changing();
        self.drop_table_locked(db, table)
    }

    /// Deletes (into `batch`) a table's catalog entry, attribute entries and counters.
    fn delete_table_meta(&self, batch: &mut WriteBatch, db: &str, table: &str) -> Result<(), ServiceError> {
        let meta = self.meta().map_err(internal)?;
        let prefix = format!("attr/{db}/{table}/");
        for item in self.db.prefix_iterator_cf(&meta, prefix.as_bytes()) {
            let (key, _) = item.map_err(internal)?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            batch.delete_cf(&meta, key);
        }
        for key in [format!("table/{db}/{table}"), format!("count/{db}/{table}"), format!("last/{db}/{table}")] {
            batch.delete_cf(&meta, key);
        }
        self.audit_forget(batch, db, table)
    }

    fn drop_table_locked(&self, db: &str, table: &str) -> Result<(), ServiceError> {
        let locks = self.locks(db, table);
        // Waits for writes in flight; later ones find the table gone.
        let _table = locks.schema.write();
        self.table_meta(db, table)?;
        let mut batch = WriteBatch::default();
        self.delete_table_meta(&mut batch, db, table)?;
        self.commit(batch).map_err(internal)?;
        if let Some(tables) = self.catalog.write().get_mut(db) {
            tables.remove(table);
        }
        self.db.drop_cf(&records_cf(db, table)).map_err(internal)?;
        self.db.drop_cf(&index_cf(db, table)).map_err(internal)?;
        Ok(())
    }

    /// Every user database with its tables (the `system` database is the host's own).
    pub fn list_databases(&self) -> Vec<(String, Vec<String>)> {
        self.catalog
            .read()
            .iter()
            .filter(|(db, _)| db.as_str() != SYSTEM_DATABASE)
            .map(|(db, tables)| (db.clone(), tables.keys().cloned().collect()))
            .collect()
    }

    pub fn describe_table(&self, db: &str, table: &str) -> Result<TableInfo, ServiceError> {
        let meta_info = self.table_meta(db, table)?;
        let meta = self.meta().map_err(internal)?;
        let counter = |key: String| -> Result<Option<u64>, ServiceError> {
            Ok(self
                .db
                .get_cf(&meta, key)
                .map_err(internal)?
                .and_then(|b| b.as_slice().try_into().ok().map(i64::from_le_bytes))
                .map(|n| n.max(0) as u64))
        };
        let (r, i) = self.cfs(db, table)?;
        let audit_info = self.audit_info(db, table)?;
        let size = |cf: &Arc<BoundColumnFamily<'_>>| {
            ["rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables"]
                .iter()
                .map(|p| self.db.property_int_value_cf(cf, *p).ok().flatten().unwrap_or(0))
                .sum::<u64>()
        };
        Ok(TableInfo {
            database: db.to_string(),
            table: table.to_string(),
            primary_key: meta_info.primary_key,
            attributes: meta_info.attributes.into_iter().collect(),
            record_count: counter(format!("count/{db}/{table}"))?.unwrap_or(0),
            table_size: size(&r) + size(&i),
            last_updated: counter(format!("last/{db}/{table}"))?.filter(|n| *n > 0),
            audit: audit_info.0,
            audit_size: audit_info.1,
        })
    }
}
