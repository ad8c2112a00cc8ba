//! Streaming GROUP BY and aggregates (COUNT, SUM, AVG, MIN, MAX, DISTINCT) over plan rows,
//! then the grouped result's sort and window.

use super::eval::total_cmp;
use super::plan::{Column, Func, Select};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// JavaScript prints whole floats without `.0`; so do we.
fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

#[derive(Default)]
struct Acc {
    count: u64,
    sum: f64,
    numbers: u64,
    best: Option<Value>,
    seen: HashSet<String>,
}

/// Streaming GROUP BY: one accumulator per aggregate per group, never the rows themselves.
pub struct Aggregator<'a> {
    select: &'a Select,
    index: HashMap<String, usize>,
    /// Per group: the first row's plain columns, then one accumulator per column.
    groups: Vec<(Map<String, Value>, Vec<Acc>)>,
}

impl<'a> Aggregator<'a> {
    pub fn new(select: &'a Select) -> Self {
        Aggregator { select, index: HashMap::new(), groups: Vec::new() }
    }

    pub fn add(&mut self, row: &Value) {
        let key: Vec<&Value> = self.select.group_by.iter().map(|g| row.get(g).unwrap_or(&Value::Null)).collect();
        let key = serde_json::to_string(&key).unwrap_or_default();
        let columns = &self.select.columns;
        let i = *self.index.entry(key).or_insert_with(|| {
            let firsts = match self.select.shape(row) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            self.groups.push((firsts, columns.iter().map(|_| Acc::default()).collect()));
            self.groups.len() - 1
        });
        for (c, acc) in columns.iter().zip(self.groups[i].1.iter_mut()) {
            let Column::Agg { func, arg, distinct, .. } = c else { continue };
            let Some(attr) = arg else {
                acc.count += 1;
                continue;
            };
            let v = match row.get(attr) {
                None | Some(Value::Null) => continue,
                Some(v) => v,
            };
            if *distinct && !acc.seen.insert(v.to_string()) {
                continue;
            }
            acc.count += 1;
            if let Some(n) = v.as_f64() {
                acc.sum += n;
                acc.numbers += 1;
            }
            let better = match (&acc.best, func) {
                (None, _) => true,
                (Some(b), Func::Min) => total_cmp(v, b) == Ordering::Less,
                (Some(b), Func::Max) => total_cmp(v, b) == Ordering::Greater,
                _ => false,
            };
            if better && matches!(func, Func::Min | Func::Max) {
                acc.best = Some(v.clone());
            }
        }
    }

    /// Whether every column is a plain `COUNT(*)` over the whole table (no GROUP BY): then the
    /// answer is the table's record count, and [`Aggregator::count_rows`] stands for the scan.
    pub fn counts_rows_only(&self) -> bool {
        let s = self.select;
        s.group_by.is_empty()
            && s.filter.cond.is_none()
            && s.filter.residual.is_none()
            && s.columns.iter().all(|c| matches!(c, Column::Agg { func: Func::Count, arg: None, distinct: false, .. }))
    }

    /// `n` rows seen, when only `COUNT(*)` is asked ([`Aggregator::counts_rows_only`]).
    pub fn count_rows(&mut self, n: u64) {
        if self.groups.is_empty() {
            self.groups.push((Map::new(), self.select.columns.iter().map(|_| Acc::default()).collect()));
        }
        for acc in self.groups[0].1.iter_mut() {
            acc.count += n;
        }
    }

    /// The result rows, sorted and windowed.
    pub fn finish(mut self) -> Vec<Value> {
        // Aggregates over no rows still give one row (`COUNT(*)` = 0), unless grouped.
        if self.groups.is_empty() && self.select.group_by.is_empty() {
            self.groups.push((Map::new(), self.select.columns.iter().map(|_| Acc::default()).collect()));
        }
        let mut rows: Vec<Value> = self
            .groups
            .into_iter()
            .map(|(mut out, accs)| {
                for (c, acc) in self.select.columns.iter().zip(accs) {
                    if let Column::Agg { func, name, .. } = c {
                        let v = match func {
                            Func::Count => Value::from(acc.count),
                            Func::Sum if acc.numbers > 0 => num(acc.sum),
                            Func::Avg if acc.numbers > 0 => num(acc.sum / acc.numbers as f64),
                            Func::Min | Func::Max => acc.best.unwrap_or(Value::Null),
                            _ => Value::Null,
                        };
                        out.insert(name.clone(), v);
                    }
                }
                // Keep SELECT order: aggregates were appended after the plain columns.
                let ordered = self.select.columns.iter().filter_map(|c| match c {
                    Column::Attr { name, .. } | Column::Agg { name, .. } => out.get(name).map(|v| (name.clone(), v.clone())),
                    Column::Star => None,
                });
                Value::Object(ordered.collect())
            })
            .collect();
        let order = &self.select.order;
        rows.sort_by(|a, b| {
            order.iter().fold(Ordering::Equal, |acc, (k, desc)| {
                acc.then_with(|| {
                    let o = total_cmp(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                    if *desc { o.reverse() } else { o }
                })
            })
        });
        let skip = usize::try_from(self.select.offset).unwrap_or(usize::MAX);
        let take = self.select.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        rows.into_iter().skip(skip).take(take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::eval::cond_matches;
    use super::super::plan::select_of as sel;
    use super::*;
    use serde_json::json;

    fn run(s: &Select, rows: &[Value]) -> Vec<Value> {
        let mut agg = Aggregator::new(s);
        let host = |r: &Value| s.filter.cond.as_ref().is_none_or(|c| cond_matches(c, r));
        rows.iter().filter(|r| host(r) && s.filter.keep(r)).for_each(|r| agg.add(r));
        agg.finish()
    }

    #[test]
    fn a_bare_count_takes_the_table_count() {
        let s = sel("SELECT COUNT(*) AS c, COUNT(*) FROM dev.dog");
        let mut agg = Aggregator::new(&s);
        assert!(agg.counts_rows_only());
        agg.count_rows(100_000);
        assert_eq!(agg.finish(), vec![json!({"c": 100_000, "COUNT(*)": 100_000})]);
        for sql in [
            "SELECT COUNT(*) FROM dev.dog WHERE age > 1",
            "SELECT COUNT(*) FROM dev.dog WHERE name LIKE 'a%'",
            "SELECT COUNT(age) FROM dev.dog",
            "SELECT COUNT(*), b FROM dev.dog GROUP BY b",
            "SELECT COUNT(DISTINCT age) FROM dev.dog",
            "SELECT COUNT(*), SUM(age) FROM dev.dog",
        ] {
            assert!(!Aggregator::new(&sel(sql)).counts_rows_only(), "{sql}");
        }
        let s = sel("SELECT COUNT(*) FROM dev.dog LIMIT 1 OFFSET 1");
        let mut agg = Aggregator::new(&s);
        agg.count_rows(3);
        assert_eq!(agg.finish(), Vec::<Value>::new());
    }

    #[test]
    fn aggregates_with_and_without_group_by() {
        let rows = [json!({"b": "x", "age": 3}), json!({"b": "y", "age": 8}), json!({"b": "x", "age": 4.5}), json!({"b": "x", "age": null})];
        let s = sel("SELECT COUNT(*) AS c FROM dev.dog");
        assert_eq!(run(&s, &rows), vec![json!({"c": 4})]);
        assert!(s.fetch_attributes().is_empty());
        let s = sel("SELECT COUNT(*), count(age), SUM(age), AVG(age), MIN(age), MAX(b) FROM dev.dog WHERE age > 100");
        assert_eq!(run(&s, &rows), vec![json!({"COUNT(*)": 0, "count(age)": 0, "SUM(age)": null, "AVG(age)": null, "MIN(age)": null, "MAX(b)": null})]);
        let s = sel("SELECT b, COUNT(age) AS n, SUM(age) AS s, MIN(age) AS lo FROM dev.dog GROUP BY b ORDER BY n DESC");
        assert_eq!(run(&s, &rows), vec![json!({"b": "x", "n": 2, "s": 7.5, "lo": 3}), json!({"b": "y", "n": 1, "s": 8, "lo": 8})]);
        let s = sel("SELECT DISTINCT b FROM t ORDER BY b DESC LIMIT 1");
        assert_eq!(run(&s, &rows), vec![json!({"b": "y"})]);
        let s = sel("SELECT b, COUNT(*) FROM t GROUP BY b ORDER BY COUNT(*)");
        assert_eq!(s.order, vec![("COUNT(*)".to_string(), false)]);
    }
}
