//! A cursor a guest pages through, read one page ahead: while the guest encodes and writes the
//! page it was just handed (an export's CSV or JSON, a search's response), a blocking thread
//! already reads the next one, so the host's scan and the guest's work overlap instead of
//! taking turns (on two cores an export's time is the longer of the two, not their sum).
//!
//! A page is the rows' JSON texts, each followed by `\n` (rows are compact JSON, so a newline
//! only ever ends one). Reading ahead changes nothing the guest can see: a cursor is not a
//! snapshot, so reading a page a few milliseconds earlier is one of the orders a scan could
//! have had anyway. Steps stay bounded ([`Cursor::fill_page`]) and a dropped cursor (the guest
//! dropped it, or the call's store went away at its time limit) stops the page being read
//! ahead at its next step.

use super::{Cursor, ServiceError, MAX_BATCH};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A page: its text and how many rows it holds.
type Page = (String, usize);
type Filled = (Cursor, Result<Page, ServiceError>);

pub struct Paged {
    state: State,
    /// Rows read ahead beyond what the last call asked for (a call asking fewer rows than
    /// the one before); handed out first.
    spare: Page,
    /// Set when this cursor is dropped: a page being read ahead stops at its next step.
    stop: Arc<AtomicBool>,
}

enum State {
    Idle(Cursor),
    /// The next page is being read by a blocking task.
    Ahead(JoinHandle<Filled>),
    /// A call was dropped while it waited for a page (its store is going away).
    Lost,
}

impl Paged {
    pub fn new(cursor: Cursor) -> Paged {
        Paged { state: State::Idle(cursor), spare: (String::new(), 0), stop: Arc::default() }
    }

    /// Up to `max` rows as one page (empty at the end); the next page of the same size is
    /// then read ahead unless the search is finished.
    pub async fn next_page(&mut self, max: usize) -> Result<Page, ServiceError> {
        let max = max.clamp(1, MAX_BATCH);
        let (mut text, mut rows) = std::mem::take(&mut self.spare);
        let cursor = match std::mem::replace(&mut self.state, State::Lost) {
            State::Idle(cursor) => cursor,
            State::Ahead(task) => self.absorb(join(task).await?, &mut text, &mut rows)?,
            State::Lost => return Err(ServiceError::Internal(anyhow::anyhow!("a cursor was used after its call was dropped"))),
        };
        let mut cursor = cursor;
        if rows > max {
            // Keep the rows past `max` for the next call.
            let cut = nth_row_end(&text, max);
            self.spare = (text.split_off(cut), rows - max);
            rows = max;
        } else if rows < max && !cursor.finished() {
            // Nothing (or too little) was read ahead: read the rest now.
            cursor = self.absorb(join(fill(cursor, max - rows, self.stop.clone())).await?, &mut text, &mut rows)?;
        }
        self.state = if cursor.finished() { State::Idle(cursor) } else { State::Ahead(fill(cursor, max, self.stop.clone())) };
        Ok((text, rows))
    }

    /// Appends a filled page to `text` and `rows` and hands its cursor back; on an error the
    /// cursor stays idle here, so the guest's next call reads again from where it stopped.
    fn absorb(&mut self, (cursor, page): Filled, text: &mut String, rows: &mut usize) -> Result<Cursor, ServiceError> {
        match page {
            Ok((more, n)) => {
                text.push_str(&more);
                *rows += n;
                Ok(cursor)
            }
            Err(e) => {
                self.state = State::Idle(cursor);
                Err(e)
            }
        }
    }
}

impl Drop for Paged {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads up to `max` rows on a blocking thread.
fn fill(mut cursor: Cursor, max: usize, stop: Arc<AtomicBool>) -> JoinHandle<Filled> {
    tokio::task::spawn_blocking(move || {
        let mut page = String::new();
        let result = cursor.fill_page(max, &mut page, &stop).map(|n| (page, n));
        (cursor, result)
    })
}

async fn join(task: JoinHandle<Filled>) -> Result<Filled, ServiceError> {
    task.await.map_err(|e| {
        tracing::error!("storage task failed: {e}");
        ServiceError::Internal(anyhow::anyhow!("storage task failed"))
    })
}

/// The byte index just past the `n`th row's newline (`n` ≥ 1, the page holds more rows).
fn nth_row_end(page: &str, n: usize) -> usize {
    page.bytes().enumerate().filter(|(_, b)| *b == b'\n').nth(n - 1).map_or(page.len(), |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::super::conformance::temp_storage;
    use super::super::query::{Cmp, Cond, Query};
    use super::super::{Storage, WriteMode};
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn rows_are_cut_after_their_newline() {
        let page = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
        assert_eq!(&page[..nth_row_end(page, 1)], "{\"a\":1}\n");
        assert_eq!(&page[..nth_row_end(page, 2)], "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(nth_row_end(page, 3), page.len());
    }

    fn leaf(attribute: &str, cmp: Cmp, value: Value) -> Cond {
        Cond::Leaf { attribute: attribute.into(), cmp, value, upper: None }
    }

    /// Paging with reads ahead (page sizes changing between calls, so rows read ahead are
    /// kept for the next call) hands out exactly the rows the cursor gives one batch at a
    /// time, for plain scans, conditions on the primary key, filters, index reads, offsets,
    /// limits and sorts; a cursor dropped with a page being read ahead just stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_read_ahead_hold_the_cursor_rows() {
        let (_t, s) = temp_storage();
        let s = Arc::new(s);
        s.create_table("dev", "dog", "id").expect("table");
        let mut records: Vec<Value> = (0..2500)
            .map(|i| json!({"id": i, "name": format!("dog \"{i}\"\n"), "age": i % 17, "tags": [i % 3, {"k": "v,}"}]}))
            .collect();
        records.extend([json!({"id": -3.5, "age": 1}), json!({"id": "x", "age": 2}), json!({"id": 9007199254740000u64, "age": 3})]);
        s.write("dev", "dog", WriteMode::Insert, records).expect("insert");
        let star = || vec!["*".to_string()];
        let queries = vec![
            Query { attributes: star(), ..Default::default() },
            Query { cond: Some(leaf("id", Cmp::GreaterThanEqual, json!(0))), attributes: star(), ..Default::default() },
            Query { cond: Some(leaf("id", Cmp::LessThan, json!(100))), attributes: vec!["name".into()], ..Default::default() },
            Query { cond: Some(leaf("age", Cmp::Equals, json!(3))), attributes: star(), ..Default::default() },
            Query { cond: Some(leaf("age", Cmp::LessThan, json!(2))), attributes: vec!["id".into()], ..Default::default() },
            Query {
                cond: Some(Cond::Or(vec![leaf("age", Cmp::Equals, json!(4)), leaf("id", Cmp::Equals, json!("x"))])),
                attributes: star(),
                ..Default::default()
            },
            Query { attributes: star(), offset: 7, limit: Some(1500), ..Default::default() },
            Query { attributes: vec!["id".into(), "age".into()], sort: vec![("age".into(), true)], limit: Some(900), ..Default::default() },
        ];
        for q in queries {
            let mut cursor = s.search("dev", "dog", q.clone()).expect("search");
            let mut want = Vec::new();
            loop {
                let batch = cursor.next_batch_json(1000).expect("batch");
                if batch.is_empty() {
                    break;
                }
                want.extend(batch);
            }
            let mut paged = Paged::new(s.search("dev", "dog", q.clone()).expect("search"));
            let mut got = Vec::new();
            for size in [1, 500, 2, 1000, 333].iter().cycle() {
                let (page, rows) = paged.next_page(*size).await.expect("page");
                let page_rows: Vec<String> = page.split_terminator('\n').map(str::to_string).collect();
                assert_eq!(page_rows.len(), rows, "{q:?}");
                assert!(rows <= *size, "{q:?}");
                if rows == 0 {
                    break;
                }
                got.extend(page_rows);
            }
            assert_eq!(got.len(), want.len(), "{q:?}");
            assert_eq!(got, want, "{q:?}");
        }
        // Dropped with a page being read ahead: nothing hangs or fails.
        let mut paged = Paged::new(s.search("dev", "dog", Query { attributes: star(), ..Default::default() }).expect("search"));
        assert_eq!(paged.next_page(10).await.expect("page").1, 10);
        drop(paged);
        let _: &Storage = &s;
    }
}
