//! Searches: starting one, and the cursor that streams it in bounded steps (offset, limit, bounded top-k sort).

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

impl Storage {
    /// Starts a search; the cursor streams matches in batches.
    pub fn search(self: &Arc<Self>, db: &str, table: &str, query: Query) -> Result<Cursor, ServiceError> {
        let meta_info = self.table_meta(db, table)?;
        let projection = Projection::new(&meta_info, &query.attributes)?;
        let mut named = Vec::new();
        if let Some(c) = &query.cond {
            c.attributes(&mut named);
        }
        for (attr, _) in &query.sort {
            named.push(attr);
        }
        for attr in named {
            if !meta_info.attributes.contains(attr) && attr != CREATED && attr != UPDATED {
                return Err(ServiceError::BadRequest(format!("unknown attribute '{attr}'")));
            }
        }
        self.cfs(db, table)?;
        // Every stored record has its primary key: `exists` on it (HarperDB's `*`) filters nothing.
        let cond = query.cond.filter(|c| {
            !matches!(c, Cond::Leaf { attribute, cmp: query::Cmp::Exists, .. } if *attribute == meta_info.primary_key)
        });
        let query = Query { cond, ..query };
        let driver = query::plan(query.cond.as_ref(), &meta_info.primary_key);
        let budget = (STEP_WORK / query.cond.as_ref().map_or(1, Cond::size)).clamp(16, MAX_BATCH);
        Ok(Cursor {
            storage: self.clone(),
            db: db.to_string(),
            table: table.to_string(),
            driver,
            cond: query.cond,
            projection,
            sort: query.sort,
            to_skip: query.offset,
            left: query.limit,
            resume: None,
            done: false,
            sorted: None,
            primary_key: meta_info.primary_key.clone(),
            budget,
        })
    }
}

/// Applies a search's offset (`to_skip`) and limit (`left`) to the next matches, mapping the
/// ones kept into `out` (mapping only what is kept: skipped records are never projected).
fn window<T, U>(to_skip: &mut u64, left: &mut Option<u64>, batch: Vec<T>, out: &mut Vec<U>, map: impl Fn(T) -> U) {
    for r in batch {
        if *to_skip > 0 {
            *to_skip -= 1;
            continue;
        }
        match left {
            Some(0) => break,
            Some(l) => *l -= 1,
            None => {}
        }
        out.push(map(r));
    }
}

/// A running search. Without a sort it streams (memory stays flat whatever the table size);
/// with one it keeps the best offset + limit matches (their sort keys and primary keys only)
/// while it scans, then fetches those records in order. Every step does a bounded amount of
/// work ([`Cursor::step_json`]), so the caller decides how long to keep going.
pub struct Cursor {
    storage: Arc<Storage>,
    db: String,
    table: String,
    driver: Driver,
    cond: Option<Cond>,
    projection: Projection,
    sort: Vec<(String, bool)>,
    to_skip: u64,
    left: Option<u64>,
    resume: Option<Vec<u8>>,
    done: bool,
    /// For a sorted search: the matches kept so far, then the sorted keys to hand out.
    sorted: Option<Sorted>,
    primary_key: String,
    /// Records or keys one step may examine.
    budget: usize,
}

enum Sorted {
    Collecting(TopK),
    Ready(VecDeque<Vec<u8>>),
}

/// The best `keep` matches seen so far (all of them without a limit), bounded in rows and
/// bytes: the buffer is sorted and cut back to `keep` whenever it doubles.
struct TopK {
    keep: Option<usize>,
    rows: Vec<SortRow>,
    seq: u64,
    bytes: usize,
}

struct SortRow {
    keys: Vec<Value>,
    /// Scan order, so equal keys keep it (a stable sort).
    seq: u64,
    pk: Vec<u8>,
}

fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => 32 + s.len(),
        Value::Array(_) | Value::Object(_) => 32 + v.to_string().len(),
        _ => 32,
    }
}

impl TopK {
    fn push(&mut self, row: SortRow, order: &dyn Fn(&SortRow, &SortRow) -> std::cmp::Ordering) -> Result<(), ServiceError> {
        self.bytes += row.pk.len() + 48 + row.keys.iter().map(approx_size).sum::<usize>();
        self.rows.push(row);
        match self.keep {
            Some(k) if self.rows.len() >= 2 * k.max(512) => self.prune(order),
            _ => {}
        }
        if self.rows.len() > MAX_SORT_ROWS || self.bytes > MAX_SORT_BYTES {
            return Err(ServiceError::BadRequest(format!(
                "a sorted search may hold at most {MAX_SORT_ROWS} rows ({} MB of sort keys): add a limit (offset + limit at most {MAX_SORT_ROWS}) or a narrower condition",
                MAX_SORT_BYTES >> 20
            )));
        }
        Ok(())
    }

    fn prune(&mut self, order: &dyn Fn(&SortRow, &SortRow) -> std::cmp::Ordering) {
        self.rows.sort_by(order);
        if let Some(k) = self.keep {
            self.rows.truncate(k);
        }
        self.bytes = self.rows.iter().map(|r| r.pk.len() + 48 + r.keys.iter().map(approx_size).sum::<usize>()).sum();
    }
}

impl Cursor {
    /// Up to `max` projected records; empty at the end.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Value>, ServiceError> {
        self.next_batch_json(max)?.iter().map(|t| serde_json::from_str(t).map_err(internal)).collect()
    }

    /// Every remaining record (for the host's own small tables).
    pub fn collect_all(&mut self) -> Result<Vec<Value>, ServiceError> {
        let mut all = Vec::new();
        loop {
            let batch = self.next_batch(1000)?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// Up to `max` records as JSON text (the form the guests receive); empty at the end.
    /// Steps until the batch is full, so this is for callers without a time limit to honour;
    /// the `storage` capability calls [`Cursor::step_json`] and checks its deadline between.
    pub fn next_batch_json(&mut self, max: usize) -> Result<Vec<String>, ServiceError> {
        let max = max.clamp(1, MAX_BATCH);
        let mut out = Vec::new();
        while out.len() < max && !self.finished() {
            out.extend(self.step_json(max - out.len())?);
        }
        Ok(out)
    }

    /// Whether the search has nothing more to hand out.
    pub fn finished(&self) -> bool {
        self.left == Some(0) || (self.done && !matches!(&self.sorted, Some(Sorted::Ready(q)) if !q.is_empty()))
    }

    /// A cursor with nothing left, to stand in for this one while a step runs elsewhere.
    pub fn take(&mut self) -> Cursor {
        let placeholder = Cursor {
            storage: self.storage.clone(),
            db: String::new(),
            table: String::new(),
            driver: Driver::FullScan,
            cond: None,
            projection: Projection { names: Vec::new(), star: false },
            sort: Vec::new(),
            to_skip: 0,
            left: Some(0),
            resume: None,
            done: true,
            sorted: None,
            primary_key: String::new(),
            budget: 1,
        };
        std::mem::replace(self, placeholder)
    }

    /// One bounded step: at most `max` records after examining at most a fixed number of
    /// records or keys. The batch may be short or empty while the search is not finished
    /// (see [`Cursor::finished`]). Without a sort or a filter (a whole-table export) records
    /// go from their stored bytes to the projected text without being parsed into values.
    pub fn step_json(&mut self, max: usize) -> Result<Vec<String>, ServiceError> {
        let max = max.clamp(1, MAX_BATCH);
        if self.finished() {
            return Ok(Vec::new());
        }
        if !self.sort.is_empty() {
            return self.sorted_step(max);
        }
        let mut out = Vec::new();
        let (projection, cond) = (&self.projection, self.cond.as_ref());
        let mut named = Vec::new();
        if let Some(c) = cond {
            c.attributes(&mut named);
        }
        let (batch, resume) = if let Some((cond, pk)) = self.covered() {
            self.storage.covered_step(&self.db, &self.table, &self.driver, cond, pk, self.resume.as_deref(), max, self.budget)?
        } else {
            let pk = self.primary_key.as_str();
            self.storage.scan_step_with(&self.db, &self.table, &self.driver, self.resume.as_deref(), max, self.budget, |key, bytes| match cond {
                None => projection.json_from_raw(bytes).map(Some),
                Some(c) => raw_read::filtered_json(projection, c, &named, pk, key, bytes),
            })?
        };
        self.done = resume.is_none();
        self.resume = resume;
        window(&mut self.to_skip, &mut self.left, batch, &mut out, |r| r);
        Ok(out)
    }

    /// Steps until `max` rows are appended to `page` (each followed by `\n`), the search is
    /// finished, or `stop` is set (the cursor was dropped while this page was read ahead);
    /// returns the rows appended. Each step is bounded as [`Cursor::step_json`]'s is.
    pub fn fill_page(&mut self, max: usize, page: &mut String, stop: &AtomicBool) -> Result<usize, ServiceError> {
        let max = max.clamp(1, MAX_BATCH);
        let mut rows = 0;
        while rows < max && !self.finished() && !stop.load(Ordering::Relaxed) {
            rows += self.step_page(max - rows, page)?;
        }
        Ok(rows)
    }

    /// One step of [`Cursor::fill_page`]. A plain scan (no sort, offset or limit, not answered
    /// by the index alone: a whole-table export) writes each row straight into the page
    /// instead of a string of its own.
    fn step_page(&mut self, max: usize, page: &mut String) -> Result<usize, ServiceError> {
        if !self.sort.is_empty() || self.to_skip > 0 || self.left.is_some() || self.covered().is_some() {
            let rows = self.step_json(max)?;
            for row in &rows {
                page.push_str(row);
                page.push('\n');
            }
            return Ok(rows.len());
        }
        let (projection, cond) = (&self.projection, self.cond.as_ref());
        let mut named = Vec::new();
        if let Some(c) = cond {
            c.attributes(&mut named);
        }
        let pk = self.primary_key.as_str();
        let (batch, resume) = self.storage.scan_step_with(&self.db, &self.table, &self.driver, self.resume.as_deref(), max, self.budget, |key, bytes| {
            let kept = match cond {
                None => {
                    projection.json_from_raw_into(bytes, page)?;
                    true
                }
                Some(c) => raw_read::filtered_into(projection, c, &named, pk, key, bytes, page)?,
            };
            if kept {
                page.push('\n');
            }
            Ok(kept.then_some(()))
        })?;
        self.done = resume.is_none();
        self.resume = resume;
        Ok(batch.len())
    }

    /// The condition and primary key name when the index alone answers this search (see
    /// [`Storage::covered_step`]).
    fn covered(&self) -> Option<(&Cond, &str)> {
        let Driver::Index { attribute, .. } = &self.driver else { return None };
        let cond = self.cond.as_ref()?;
        let on_driver = matches!(cond, Cond::Leaf { attribute: a, .. } if a == attribute);
        let pk = self.primary_key.as_str();
        (on_driver && self.projection.names.len() == 1 && self.projection.names[0] == pk).then_some((cond, pk))
    }

    /// The order of sorted rows: by each sort key (nulls first, then by type, then by value),
    /// then by scan order.
    fn order(sort: &[(String, bool)]) -> impl Fn(&SortRow, &SortRow) -> std::cmp::Ordering + '_ {
        move |a, b| {
            for (i, (_, desc)) in sort.iter().enumerate() {
                let o = query::sort_order(&a.keys[i], &b.keys[i]);
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            a.seq.cmp(&b.seq)
        }
    }

    fn sorted_step(&mut self, max: usize) -> Result<Vec<String>, ServiceError> {
        let keep = self.left.map(|l| (self.to_skip.saturating_add(l)).min(usize::MAX as u64) as usize);
        let sorted = self.sorted.get_or_insert_with(|| Sorted::Collecting(TopK { keep, rows: Vec::new(), seq: 0, bytes: 0 }));
        match sorted {
            Sorted::Collecting(top) => {
                let (cond, sort) = (self.cond.as_ref(), &self.sort);
                let (rows, resume) = self.storage.scan_step_with(
                    &self.db,
                    &self.table,
                    &self.driver,
                    self.resume.as_deref(),
                    self.budget,
                    self.budget,
                    |key, bytes| {
                        let r = serde_json::from_slice::<Value>(bytes).map_err(internal)?;
                        if cond.is_some_and(|c| !c.matches(&r)) {
                            return Ok(None);
                        }
                        let keys = sort.iter().map(|(a, _)| r.get(a).cloned().unwrap_or(Value::Null)).collect();
                        Ok(Some((keys, key.to_vec())))
                    },
                )?;
                let order = Self::order(sort);
                for (keys, pk) in rows {
                    top.seq += 1;
                    top.push(SortRow { keys, seq: top.seq, pk }, &order)?;
                }
                self.done = resume.is_none();
                self.resume = resume;
                if self.done {
                    top.prune(&order);
                    let queue = std::mem::take(&mut top.rows).into_iter().map(|r| r.pk).collect();
                    *sorted = Sorted::Ready(queue);
                }
                Ok(Vec::new())
            }
            Sorted::Ready(queue) => {
                // Offset rows are dropped without being read.
                while self.to_skip > 0 && queue.pop_front().is_some() {
                    self.to_skip -= 1;
                }
                let take = self.left.map_or(max, |l| max.min(l as usize));
                let keys: Vec<Vec<u8>> = queue.drain(..take.min(queue.len())).collect();
                let mut out = Vec::with_capacity(keys.len());
                for bytes in self.storage.fetch(&self.db, &self.table, &keys)? {
                    // A record changed since it was sorted is still checked against the filter.
                    if let Some(c) = &self.cond {
                        let r = serde_json::from_slice::<Value>(&bytes).map_err(internal)?;
                        if c.matches(&r) {
                            out.push(self.projection.json_from_value(&r));
                        }
                    } else {
                        out.push(self.projection.json_from_raw(&bytes)?);
                    }
                }
                let mut kept = Vec::with_capacity(out.len());
                window(&mut self.to_skip, &mut self.left, out, &mut kept, |r| r);
                Ok(kept)
            }
        }
    }
}
