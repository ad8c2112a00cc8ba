//! Storage reads: point reads by primary key, and the bounded scan steps a search cursor drives.

use super::*;

impl Storage {
    /// Records by primary key in the order asked, missing ones left out, projected.
    pub fn get(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Value>, ServiceError> {
        self.get_each(db, table, ids, attributes, |projection, bytes| {
            let record: Value = serde_json::from_slice(bytes).map_err(internal)?;
            Ok(projection.apply(&record))
        })
    }

    /// [`Storage::get`] answering JSON text: each record is projected from its stored bytes
    /// without building a `Value` (the storage capability hands guests text anyway).
    pub fn get_json(&self, db: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<String>, ServiceError> {
        self.get_each(db, table, ids, attributes, |projection, bytes| projection.json_from_raw(bytes))
    }

    /// The one point-read path of `get` and `get_json`: `each` turns a found record's stored
    /// bytes into the answer.
    fn get_each<T>(
        &self,
        db: &str,
        table: &str,
        ids: &[Value],
        attributes: &[String],
        mut each: impl FnMut(&Projection, &[u8]) -> Result<T, ServiceError>,
    ) -> Result<Vec<T>, ServiceError> {
        let meta_info = self.table_meta(db, table)?;
        let projection = Projection::new(&meta_info, attributes)?;
        let (rcf, _) = self.cfs(db, table)?;
        // An inexact number (beyond 2^53) can never have been stored: its key is a neighbour's.
        let keys: Vec<Vec<u8>> = ids.iter().filter(|id| keys::exact_value(id)).map(keys::encoded).collect();
        let mut out = Vec::with_capacity(ids.len());
        for found in self.get_many(&rcf, &keys) {
            if let Some(bytes) = found.map_err(internal)? {
                out.push(each(&projection, &bytes)?);
            }
        }
        Ok(out)
    }

    /// One step of an index scan that needs no record: the condition is one leaf on the
    /// indexed attribute (checked against the value in the index key) and only the primary
    /// key is asked for, so each match is `{"<pk>": <key>}` without reading the record.
    /// Stops after `max` matches or `budget` examined keys.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn covered_step(
        &self,
        db: &str,
        table: &str,
        driver: &Driver,
        cond: &Cond,
        pk_name: &str,
        resume: Option<&[u8]>,
        max: usize,
        budget: usize,
    ) -> Result<(Vec<String>, Option<Vec<u8>>), ServiceError> {
        let Driver::Index { attribute, start, end } = driver else { return Ok((Vec::new(), None)) };
        let (rcf, icf) = self.cfs(db, table)?;
        let mut prefix = attribute.as_bytes().to_vec();
        prefix.push(0);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound([prefix.as_slice(), end].concat());
        let from = resume.map(|r| r.to_vec()).unwrap_or_else(|| [prefix.as_slice(), start].concat());
        let mut out = Vec::new();
        let mut examined = 0;
        let mut probe = Map::with_capacity(1);
        // Index keys hold numbers as f64: a number beyond 2^53 (or with a fraction) may not
        // come back as written, so such a key or value is read from its record instead.
        let lossy = |v: &Value| !keys::decoded_as_written(v);
        for item in self.db.iterator_cf_opt(&icf, opts, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
            let (key, _) = item.map_err(internal)?;
            if resume.is_some_and(|r| r == &key[..]) {
                continue;
            }
            examined += 1;
            let Some((value, pk_bytes)) = keys::decode(&key[prefix.len()..]) else { continue };
            let pk = keys::decode(pk_bytes).map(|(pk, _)| pk);
            if lossy(&value) || pk.as_ref().is_some_and(lossy) {
                if let Some(bytes) = self.db.get_cf(&rcf, pk_bytes).map_err(internal)? {
                    let record: Value = serde_json::from_slice(&bytes).map_err(internal)?;
                    if cond.matches(&record) {
                        if let Some(v) = record.get(pk_name) {
                            out.push(format!("{{\"{pk_name}\":{v}}}"));
                        }
                    }
                }
            } else {
                probe.insert(attribute.clone(), value);
                let record = Value::Object(std::mem::take(&mut probe));
                if cond.matches(&record) {
                    if let Some(pk) = pk {
                        out.push(format!("{{\"{pk_name}\":{pk}}}"));
                    }
                }
                if let Value::Object(m) = record {
                    probe = m;
                }
            }
            if out.len() >= max || examined >= budget {
                return Ok((out, Some(key.to_vec())));
            }
        }
        Ok((out, None))
    }

    /// One step of a scan; `accept` turns a stored record (its key and bytes) into a result,
    /// or None when the record does not match. Stops after `max` results or `budget` examined
    /// records or keys, whichever comes first, and says where to resume (None at the end).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn scan_step_with<T>(
        &self,
        db: &str,
        table: &str,
        driver: &Driver,
        resume: Option<&[u8]>,
        max: usize,
        budget: usize,
        mut accept: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, ServiceError>,
    ) -> Result<(Vec<T>, Option<Vec<u8>>), ServiceError> {
        let (rcf, icf) = self.cfs(db, table)?;
        let mut out = Vec::new();
        match driver {
            Driver::Keys(ids) => {
                // Small by construction: one step returns them all.
                if resume.is_none() {
                    let keys: Vec<Vec<u8>> = ids.iter().filter(|id| keys::exact_value(id)).map(keys::encoded).collect();
                    for (key, found) in keys.iter().zip(self.get_many(&rcf, &keys)) {
                        if let Some(bytes) = found.map_err(internal)? {
                            out.extend(accept(key, &bytes)?);
                        }
                    }
                }
                Ok((out, None))
            }
            Driver::FullScan | Driver::PrimaryRange { .. } => {
                let (start, end) = match driver {
                    Driver::PrimaryRange { start, end } => (start.clone(), Some(end.clone())),
                    _ => (Vec::new(), None),
                };
                let mut opts = ReadOptions::default();
                if let Some(end) = end {
                    opts.set_iterate_upper_bound(end);
                }
                let from = resume.map(|r| r.to_vec()).unwrap_or(start);
                let mut examined = 0;
                for item in self.db.iterator_cf_opt(&rcf, opts, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
                    let (key, value) = item.map_err(internal)?;
                    if resume.is_some_and(|r| r == &key[..]) {
                        continue;
                    }
                    examined += 1;
                    out.extend(accept(&key, &value)?);
                    // Stop at a full batch, or after a bounded amount of work so a selective
                    // filter cannot hold the thread for the whole table.
                    if out.len() >= max || examined >= budget {
                        return Ok((out, Some(key.to_vec())));
                    }
                }
                Ok((out, None))
            }
            Driver::Index { attribute, start, end } => {
                let mut prefix = attribute.as_bytes().to_vec();
                prefix.push(0);
                let lower = [prefix.as_slice(), start].concat();
                let upper = [prefix.as_slice(), end].concat();
                let mut opts = ReadOptions::default();
                opts.set_iterate_upper_bound(upper);
                let from = resume.map(|r| r.to_vec()).unwrap_or(lower);
                let mut pks: Vec<Vec<u8>> = Vec::new();
                let mut last = None;
                let mut exhausted = true;
                for item in self.db.iterator_cf_opt(&icf, opts, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
                    let (key, _) = item.map_err(internal)?;
                    if resume.is_some_and(|r| r == &key[..]) {
                        continue;
                    }
                    let rest = &key[prefix.len()..];
                    let Some((_, pk)) = keys::decode(rest) else { continue };
                    pks.push(pk.to_vec());
                    last = Some(key.to_vec());
                    if pks.len() >= max.min(budget) {
                        exhausted = false;
                        break;
                    }
                }
                for (key, found) in pks.iter().zip(self.get_many(&rcf, &pks)) {
                    if let Some(bytes) = found.map_err(internal)? {
                        out.extend(accept(key, &bytes)?);
                    }
                }
                Ok((out, if exhausted { None } else { last }))
            }
        }
    }

    /// Records by encoded primary key, in the order given, missing ones left out.
    pub(super) fn fetch(&self, db: &str, table: &str, keys: &[Vec<u8>]) -> Result<Vec<rocksdb::DBPinnableSlice<'_>>, ServiceError> {
        let (rcf, _) = self.cfs(db, table)?;
        let mut out = Vec::with_capacity(keys.len());
        for found in self.get_many(&rcf, keys) {
            if let Some(bytes) = found.map_err(internal)? {
                out.push(bytes);
            }
        }
        Ok(out)
    }
}
