//! Pure translation of one SQL statement into a small plan (the host-plannable part of WHERE as a
//! `data::Cond`, the rest as a guest-side predicate), plus the row logic the guest runs itself:
//! predicate evaluation, projection and streaming aggregation over `serde_json::Value` rows.

use crate::data::{default_database, Comparator, Cond};
use opshost_conditions::Cmp;
use serde_json::{Map, Number, Value};
use sqlparser::ast::{
    BinaryOperator as Op, Distinct, DuplicateTreatment, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, LimitClause, ObjectName, ObjectNamePart, OrderByKind, OrderBySort,
    Query, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, UnaryOperator,
    Value as Lit,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Anything we cannot parse or do not support: HarperDB answers all of it with one text.
#[derive(Debug)]
pub struct Unsupported;
type R<T> = Result<T, Unsupported>;

pub fn invalid_sql(sql: &str) -> String {
    format!("Invalid SQL at: {sql}. Please ensure your SQL is valid. Try adding backticks to reserved words and schema table references.")
}

#[derive(Debug)]
pub enum Plan {
    Select(Select),
    Insert { db: String, table: String, records: Vec<Value> },
    Update { db: String, table: String, filter: Filter, set: Map<String, Value> },
    Delete { db: String, table: String, filter: Filter },
}

/// WHERE, split: what the host can plan onto its indexes, and what the guest checks per row.
#[derive(Debug, Default)]
pub struct Filter {
    pub cond: Option<Cond>,
    pub residual: Option<Pred>,
}

impl Filter {
    pub fn keep(&self, row: &Value) -> bool {
        self.residual.as_ref().is_none_or(|p| p.matches(row))
    }
}

#[derive(Debug)]
pub struct Select {
    pub db: String,
    pub table: String,
    pub filter: Filter,
    pub columns: Vec<Column>,
    pub group_by: Vec<String>,
    /// Aggregates, GROUP BY or DISTINCT: the guest builds the rows, sorts and windows them.
    pub grouped: bool,
    /// Attribute names when not grouped (pushed to the host), output names when grouped.
    pub order: Vec<(String, bool)>,
    pub offset: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func { Count, Sum, Avg, Min, Max }

#[derive(Debug)]
pub enum Column {
    Star,
    Attr { attr: String, name: String },
    /// `arg` is None for `COUNT(*)`.
    Agg { func: Func, arg: Option<String>, distinct: bool, name: String },
}

/// A WHERE tree. `Cond` subtrees are exact and go to the host; the rest is checked in the guest.
#[derive(Debug)]
pub enum Pred {
    Cond(Cond),
    Like { attr: String, pattern: String },
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
}

pub fn parse(sql: &str) -> R<Plan> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|_| Unsupported)?;
    if statements.len() != 1 {
        return Err(Unsupported);
    }
    match statements.remove(0) {
        Statement::Query(q) => select(*q).map(Plan::Select),
        Statement::Insert(i) => {
            let TableObject::TableName(name) = &i.table else { return Err(Unsupported) };
            let (db, table) = table_name(name)?;
            let columns = i.columns.iter().map(last_ident).collect::<R<Vec<_>>>()?;
            let rows = match i.source.as_deref().map(|q| q.body.as_ref()) {
                Some(SetExpr::Values(v)) if !columns.is_empty() && i.on.is_none() => &v.rows,
                _ => return Err(Unsupported),
            };
            let records = rows
                .iter()
                .map(|row| {
                    if row.len() != columns.len() {
                        return Err(Unsupported);
                    }
                    let values = row.iter().map(literal).collect::<R<Vec<_>>>()?;
                    Ok(Value::Object(columns.iter().cloned().zip(values).collect()))
                })
                .collect::<R<Vec<_>>>()?;
            Ok(Plan::Insert { db, table, records })
        }
        Statement::Update(u) => {
            let (db, table) = single_table(&u.table)?;
            if u.from.is_some() || u.limit.is_some() || !u.order_by.is_empty() {
                return Err(Unsupported);
            }
            let mut set = Map::new();
            for a in &u.assignments {
                let sqlparser::ast::AssignmentTarget::ColumnName(col) = &a.target else { return Err(Unsupported) };
                set.insert(last_ident(col)?, literal(&a.value)?);
            }
            Ok(Plan::Update { db, table, filter: filter(u.selection.as_ref())?, set })
        }
        Statement::Delete(d) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
            if from.len() != 1 || !d.tables.is_empty() || d.using.is_some() || d.limit.is_some() || !d.order_by.is_empty() {
                return Err(Unsupported);
            }
            let (db, table) = single_table(&from[0])?;
            Ok(Plan::Delete { db, table, filter: filter(d.selection.as_ref())? })
        }
        _ => Err(Unsupported),
    }
}

fn select(q: Query) -> R<Select> {
    let SetExpr::Select(s) = *q.body else { return Err(Unsupported) };
    if q.with.is_some() || q.fetch.is_some() || s.having.is_some() || s.from.len() != 1 {
        return Err(Unsupported);
    }
    let (db, table) = single_table(&s.from[0])?;
    let mut columns = Vec::new();
    for item in &s.projection {
        columns.push(match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => Column::Star,
            SelectItem::UnnamedExpr(e) => column(e, None)?,
            SelectItem::ExprWithAlias { expr, alias } => column(expr, Some(alias.value.clone()))?,
            _ => return Err(Unsupported),
        });
    }
    // A name in GROUP BY / ORDER BY may be a select alias; resolve it to its attribute.
    let attr_of = |e: &Expr| -> R<String> {
        let n = ident(e)?;
        Ok(columns.iter().find_map(|c| match c {
            Column::Attr { attr, name } if *name == n => Some(attr.clone()),
            _ => None,
        }).unwrap_or(n))
    };
    let mut group_by = match &s.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs.iter().map(attr_of).collect::<R<Vec<_>>>()?,
        _ => return Err(Unsupported),
    };
    let distinct = match &s.distinct {
        None | Some(Distinct::All) => false,
        Some(Distinct::Distinct) => true,
        Some(Distinct::On(_)) => return Err(Unsupported),
    };
    let has_agg = columns.iter().any(|c| matches!(c, Column::Agg { .. }));
    if distinct && !has_agg && group_by.is_empty() {
        group_by = columns.iter().filter_map(|c| if let Column::Attr { attr, .. } = c { Some(attr.clone()) } else { None }).collect();
    }
    let grouped = has_agg || distinct || !group_by.is_empty();
    if grouped && columns.iter().any(|c| matches!(c, Column::Star)) {
        return Err(Unsupported);
    }
    let mut order = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(list) = &ob.kind else { return Err(Unsupported) };
        for o in list {
            let desc = match o.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return Err(Unsupported),
            };
            let key = if !grouped {
                attr_of(&o.expr)?
            } else {
                // Grouped rows are sorted by output name: an alias, an attribute, or `COUNT(*)`.
                let text = ident(&o.expr).unwrap_or_else(|_| o.expr.to_string());
                columns.iter().find_map(|c| match c {
                    Column::Attr { attr, name } if *name == text || *attr == text => Some(name.clone()),
                    Column::Agg { name, .. } if *name == text => Some(name.clone()),
                    _ => None,
                }).unwrap_or(text)
            };
            order.push((key, desc));
        }
    }
    let (offset, limit) = match &q.limit_clause {
        None => (None, None),
        Some(LimitClause::LimitOffset { limit, offset, limit_by }) if limit_by.is_empty() => (offset.as_ref().map(|o| &o.value), limit.as_ref()),
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => (Some(offset), Some(limit)),
        Some(_) => return Err(Unsupported),
    };
    Ok(Select {
        db,
        table,
        filter: filter(s.selection.as_ref())?,
        columns,
        group_by,
        grouped,
        order,
        offset: offset.map(count).transpose()?.unwrap_or(0),
        limit: limit.map(count).transpose()?,
    })
}

fn column(e: &Expr, alias: Option<String>) -> R<Column> {
    let Expr::Function(f) = e else {
        let attr = ident(e)?;
        return Ok(Column::Attr { name: alias.unwrap_or_else(|| attr.clone()), attr });
    };
    let func = match f.name.to_string().to_ascii_uppercase().as_str() {
        "COUNT" => Func::Count,
        "SUM" => Func::Sum,
        "AVG" => Func::Avg,
        "MIN" => Func::Min,
        "MAX" => Func::Max,
        _ => return Err(Unsupported),
    };
    let FunctionArguments::List(list) = &f.args else { return Err(Unsupported) };
    if list.args.len() != 1 || f.filter.is_some() || f.over.is_some() {
        return Err(Unsupported);
    }
    let arg = match &list.args[0] {
        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if func == Func::Count => None,
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(ident(e)?),
        _ => return Err(Unsupported),
    };
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    // HarperDB names an unaliased aggregate by its text, e.g. `COUNT(*)`.
    Ok(Column::Agg { func, arg, distinct, name: alias.unwrap_or_else(|| f.to_string()) })
}

fn single_table(t: &TableWithJoins) -> R<(String, String)> {
    match &t.relation {
        TableFactor::Table { name, .. } if t.joins.is_empty() => table_name(name),
        _ => Err(Unsupported),
    }
}

/// `db.table`, or `table` in HarperDB's default database.
fn table_name(name: &ObjectName) -> R<(String, String)> {
    let parts = name.0.iter().map(part).collect::<R<Vec<_>>>()?;
    match parts.as_slice() {
        [t] => Ok((default_database(), t.clone())),
        [d, t] => Ok((d.clone(), t.clone())),
        _ => Err(Unsupported),
    }
}

fn part(p: &ObjectNamePart) -> R<String> {
    match p {
        ObjectNamePart::Identifier(i) => Ok(i.value.clone()),
        _ => Err(Unsupported),
    }
}

fn last_ident(name: &ObjectName) -> R<String> {
    name.0.last().ok_or(Unsupported).and_then(part)
}

/// A column reference; `dog.name` and `d.name` both mean attribute `name` (one table per query).
fn ident(e: &Expr) -> R<String> {
    match e {
        Expr::Identifier(i) => Ok(i.value.clone()),
        Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()).ok_or(Unsupported),
        _ => Err(Unsupported),
    }
}

/// A constant, typed like HarperDB: `3` is a number, `'3'` a string. `"x"` (an identifier in
/// standard SQL) is taken as a string where a value is expected, as HarperDB's parser does.
fn literal(e: &Expr) -> R<Value> {
    match e {
        Expr::Value(v) => match &v.value {
            Lit::Number(n, _) => number(n, false),
            Lit::SingleQuotedString(s) | Lit::DoubleQuotedString(s) => Ok(Value::String(s.clone())),
            Lit::Boolean(b) => Ok(Value::Bool(*b)),
            Lit::Null => Ok(Value::Null),
            _ => Err(Unsupported),
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Lit::Number(n, _) => number(n, true),
                _ => Err(Unsupported),
            },
            _ => Err(Unsupported),
        },
        Expr::Nested(inner) => literal(inner),
        Expr::Identifier(i) if i.quote_style == Some('"') => Ok(Value::String(i.value.clone())),
        _ => Err(Unsupported),
    }
}

fn number(text: &str, negative: bool) -> R<Value> {
    let text = if negative { format!("-{text}") } else { text.to_string() };
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number).ok_or(Unsupported)
}

fn count(e: &Expr) -> R<u64> {
    literal(e)?.as_u64().ok_or(Unsupported)
}

fn filter(selection: Option<&Expr>) -> R<Filter> {
    Ok(match selection.map(pred).transpose()? {
        None => Filter::default(),
        Some(Pred::Cond(c)) => Filter { cond: Some(c), residual: None },
        // In a top-level AND, the exact parts still narrow the host's search.
        Some(Pred::And(parts)) => {
            let (exact, rest): (Vec<_>, Vec<_>) = parts.into_iter().partition(|p| matches!(p, Pred::Cond(_)));
            let mut conds: Vec<Cond> = exact.into_iter().filter_map(|p| if let Pred::Cond(c) = p { Some(c) } else { None }).collect();
            let cond = if conds.len() > 1 { Some(Cond::And(conds)) } else { conds.pop() };
            Filter { cond, residual: Some(Pred::And(rest)) }
        }
        Some(other) => Filter { cond: None, residual: Some(other) },
    })
}

fn pred(e: &Expr) -> R<Pred> {
    let leaf = |e: &Expr, c: Comparator, v: Value| Ok(Pred::Cond(Cond::leaf(ident(e)?, c, v)));
    match e {
        Expr::Nested(inner) => pred(inner),
        Expr::BinaryOp { left, op: Op::And, right } => Ok(combine(true, [pred(left)?, pred(right)?])),
        Expr::BinaryOp { left, op: Op::Or, right } => Ok(combine(false, [pred(left)?, pred(right)?])),
        Expr::BinaryOp { left, op, right } => {
            // Either side may hold the column; `5 < age` is `age > 5`.
            let (col, value, flipped) = match (ident(left), literal(right)) {
                (Ok(c), Ok(v)) => (c, v, false),
                _ => (ident(right)?, literal(left)?, true),
            };
            let c = match (op, flipped) {
                (Op::Eq, _) => Comparator::Equals,
                (Op::NotEq, _) => Comparator::NotEqual,
                (Op::Lt, false) | (Op::Gt, true) => Comparator::LessThan,
                (Op::LtEq, false) | (Op::GtEq, true) => Comparator::LessThanEqual,
                (Op::Gt, false) | (Op::Lt, true) => Comparator::GreaterThan,
                (Op::GtEq, false) | (Op::LtEq, true) => Comparator::GreaterThanEqual,
                _ => return Err(Unsupported),
            };
            Ok(Pred::Cond(Cond::leaf(col, c, value)))
        }
        Expr::UnaryOp { op: UnaryOperator::Not, expr } => Ok(negate(pred(expr)?)),
        Expr::IsNull(e) => leaf(e, Comparator::IsNull, Value::Null),
        Expr::IsNotNull(e) => leaf(e, Comparator::Exists, Value::Null),
        Expr::In { expr, target: sqlparser::ast::InTarget::List(list), negated, .. } => {
            let attr = ident(expr)?;
            let any = list.iter().map(|v| Ok(Cond::leaf(attr.clone(), Comparator::Equals, literal(v)?))).collect::<R<Vec<_>>>()?;
            let p = Pred::Cond(Cond::Or(any));
            Ok(if *negated { negate(p) } else { p })
        }
        Expr::Between { expr, negated, low, high } => {
            let c = Cond::Leaf { attribute: ident(expr)?, comparator: Comparator::Between, value: literal(low)?, upper: Some(literal(high)?) };
            Ok(if *negated { negate(Pred::Cond(c)) } else { Pred::Cond(c) })
        }
        Expr::Like { negated, any: false, expr, pattern, escape_char: None } => {
            let Value::String(pattern) = literal(pattern)? else { return Err(Unsupported) };
            let p = like(ident(expr)?, pattern);
            Ok(if *negated { negate(p) } else { p })
        }
        _ => Err(Unsupported),
    }
}

/// `abc%`, `%abc`, `%abc%` and `abc` map onto the host's comparators; other patterns (`_`, inner
/// `%`, bare `%`) are matched in the guest.
fn like(attr: String, pattern: String) -> Pred {
    let core = pattern.trim_start_matches('%').trim_end_matches('%');
    if core.is_empty() || core.contains(['%', '_', '\\']) {
        return Pred::Like { attr, pattern };
    }
    let c = match (pattern.starts_with('%'), pattern.ends_with('%')) {
        (true, true) => Comparator::Contains,
        (true, false) => Comparator::EndsWith,
        (false, true) => Comparator::StartsWith,
        (false, false) => Comparator::Equals,
    };
    Pred::Cond(Cond::leaf(attr, c, Value::String(core.to_string())))
}

fn negate(p: Pred) -> Pred {
    match p {
        Pred::Cond(c) => Pred::Cond(Cond::Not(Box::new(c))),
        other => Pred::Not(Box::new(other)),
    }
}

/// Joins two predicates, flattening `a AND b AND c`; stays an exact `Cond` when both sides are.
fn combine(and: bool, parts: [Pred; 2]) -> Pred {
    let mut flat = Vec::new();
    for p in parts {
        match p {
            Pred::And(v) if and => flat.extend(v),
            Pred::Or(v) if !and => flat.extend(v),
            Pred::Cond(Cond::And(v)) if and => flat.extend(v.into_iter().map(Pred::Cond)),
            Pred::Cond(Cond::Or(v)) if !and => flat.extend(v.into_iter().map(Pred::Cond)),
            p => flat.push(p),
        }
    }
    if flat.iter().all(|p| matches!(p, Pred::Cond(_))) {
        let conds = flat.into_iter().filter_map(|p| if let Pred::Cond(c) = p { Some(c) } else { None }).collect();
        Pred::Cond(if and { Cond::And(conds) } else { Cond::Or(conds) })
    } else if and {
        Pred::And(flat)
    } else {
        Pred::Or(flat)
    }
}

impl Pred {
    pub fn matches(&self, row: &Value) -> bool {
        match self {
            Pred::Cond(c) => cond_matches(c, row),
            Pred::Like { attr, pattern } => row.get(attr).and_then(Value::as_str).is_some_and(|s| {
                like_match(&s.chars().collect::<Vec<_>>(), &pattern.chars().collect::<Vec<_>>())
            }),
            Pred::And(v) => v.iter().all(|p| p.matches(row)),
            Pred::Or(v) => v.iter().any(|p| p.matches(row)),
            Pred::Not(p) => !p.matches(row),
        }
    }

    /// The attributes the guest needs fetched to evaluate this.
    pub fn attributes(&self, out: &mut Vec<String>) {
        fn cond(c: &Cond, out: &mut Vec<String>) {
            match c {
                Cond::Leaf { attribute, .. } => push(out, attribute),
                Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| cond(c, out)),
                Cond::Not(c) => cond(c, out),
            }
        }
        match self {
            Pred::Cond(c) => cond(c, out),
            Pred::Like { attr, .. } => push(out, attr),
            Pred::And(v) | Pred::Or(v) => v.iter().for_each(|p| p.attributes(out)),
            Pred::Not(p) => p.attributes(out),
        }
    }
}

fn push(out: &mut Vec<String>, a: &str) {
    if !out.iter().any(|x| x == a) {
        out.push(a.to_string());
    }
}

/// A condition evaluated in the guest (under an OR/NOT that also holds a LIKE): with the host's
/// exact semantics, from the one crate both sides use.
fn cond_matches(c: &Cond, row: &Value) -> bool {
    match c {
        Cond::Leaf { attribute, comparator, value, upper } => {
            let actual = row.get(attribute).unwrap_or(&Value::Null);
            opshost_conditions::leaf_matches(actual, cmp_of(*comparator), value, upper.as_ref())
        }
        Cond::And(v) => v.iter().all(|c| cond_matches(c, row)),
        Cond::Or(v) => v.iter().any(|c| cond_matches(c, row)),
        Cond::Not(c) => !cond_matches(c, row),
    }
}

fn cmp_of(c: Comparator) -> Cmp {
    match c {
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
    }
}

/// SQL LIKE: `%` any run, `_` one character. Greedy with backtracking to the last `%`.
fn like_match(text: &[char], pat: &[char]) -> bool {
    let (mut t, mut p, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pat.len() && pat[p] == '%' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if p < pat.len() && (pat[p] == '_' || pat[p] == text[t]) {
            t += 1;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == '%')
}

/// A total order for sorting and MIN/MAX: null < booleans < numbers < strings < the rest.
fn total_cmp(a: &Value, b: &Value) -> Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    };
    rank(a).cmp(&rank(b)).then_with(|| opshost_conditions::compare(a, b).unwrap_or(Ordering::Equal))
}

/// JavaScript prints whole floats without `.0`; so do we.
fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

impl Select {
    /// What to ask the host for; empty when only `COUNT(*)` is asked (the caller adds the key).
    pub fn fetch_attributes(&self) -> Vec<String> {
        if self.columns.iter().any(|c| matches!(c, Column::Star)) {
            return vec!["*".into()];
        }
        let mut out = Vec::new();
        for c in &self.columns {
            match c {
                Column::Attr { attr, .. } | Column::Agg { arg: Some(attr), .. } => push(&mut out, attr),
                _ => {}
            }
        }
        self.group_by.iter().for_each(|g| push(&mut out, g));
        if let Some(r) = &self.filter.residual {
            r.attributes(&mut out);
        }
        out
    }

    /// Sort, offset and limit can go to the host only when it sees every filter and builds the rows.
    pub fn pushes_window(&self) -> bool {
        !self.grouped && self.filter.residual.is_none()
    }

    /// The host's rows are already the answer: `*` or plain unaliased columns, nothing extra fetched.
    pub fn passthrough(&self) -> bool {
        self.filter.residual.is_none()
            && self.columns.iter().all(|c| match c {
                Column::Star => self.columns.len() == 1,
                Column::Attr { attr, name } => attr == name,
                Column::Agg { .. } => false,
            })
    }

    /// One output row from one stored row (not grouped).
    pub fn shape(&self, row: &Value) -> Value {
        let mut out = Map::new();
        for c in &self.columns {
            match c {
                Column::Star => out.extend(row.as_object().cloned().unwrap_or_default()),
                Column::Attr { attr, name } => {
                    out.insert(name.clone(), row.get(attr).cloned().unwrap_or(Value::Null));
                }
                Column::Agg { .. } => {}
            }
        }
        Value::Object(out)
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
    use super::*;
    use serde_json::json;

    fn sel(sql: &str) -> Select {
        match parse(sql).expect("parses") {
            Plan::Select(s) => s,
            other => panic!("not a select: {other:?}"),
        }
    }

    fn leaf(c: &Cond) -> (&str, Comparator, &Value) {
        match c {
            Cond::Leaf { attribute, comparator, value, .. } => (attribute.as_str(), *comparator, value),
            other => panic!("not a leaf: {other:?}"),
        }
    }

    fn run(s: &Select, rows: &[Value]) -> Vec<Value> {
        let mut agg = Aggregator::new(s);
        let host = |r: &Value| s.filter.cond.as_ref().is_none_or(|c| cond_matches(c, r));
        rows.iter().filter(|r| host(r) && s.filter.keep(r)).for_each(|r| agg.add(r));
        agg.finish()
    }

    #[test]
    fn tables_columns_window_and_pushdown() {
        let s = sel("SELECT name AS n, age FROM `dev`.`dog` WHERE age >= 3 ORDER BY n DESC, age LIMIT 10 OFFSET 2");
        assert_eq!((s.db.as_str(), s.table.as_str()), ("dev", "dog"));
        assert_eq!(s.order, vec![("name".to_string(), true), ("age".to_string(), false)]);
        assert_eq!((s.offset, s.limit, s.grouped), (2, Some(10), false));
        assert!(s.pushes_window() && !s.passthrough());
        assert_eq!(leaf(s.filter.cond.as_ref().expect("cond")), ("age", Comparator::GreaterThanEqual, &json!(3)));
        assert_eq!(s.shape(&json!({"name": "Penny", "age": 5})), json!({"n": "Penny", "age": 5}));
        let s = sel("SELECT * FROM dog WHERE 5 < age LIMIT 2, 3");
        assert_eq!((s.db.as_str(), s.offset, s.limit), ("data", 2, Some(3)));
        assert_eq!(leaf(s.filter.cond.as_ref().expect("cond")), ("age", Comparator::GreaterThan, &json!(5)));
        assert!(s.passthrough());
    }

    #[test]
    fn where_translates_to_conditions() {
        let s = sel("SELECT * FROM dev.dog WHERE (breed = '3' OR breed IN (1, 2)) AND name LIKE 'Pe%' AND NOT age BETWEEN 1 AND 4 AND x IS NOT NULL");
        let Some(Cond::And(parts)) = &s.filter.cond else { panic!("and: {:?}", s.filter) };
        assert_eq!(parts.len(), 4);
        let Cond::Or(or) = &parts[0] else { panic!("or") };
        assert_eq!(leaf(&or[0]), ("breed", Comparator::Equals, &json!("3")));
        assert_eq!(leaf(&or[1]), ("breed", Comparator::Equals, &json!(1)));
        assert_eq!(leaf(&parts[1]), ("name", Comparator::StartsWith, &json!("Pe")));
        assert!(matches!(&parts[2], Cond::Not(b) if matches!(**b, Cond::Leaf { comparator: Comparator::Between, upper: Some(_), .. })));
        assert_eq!(leaf(&parts[3]).1, Comparator::Exists);
        for (pat, c, v) in [("%ny", Comparator::EndsWith, "ny"), ("%en%", Comparator::Contains, "en"), ("Penny", Comparator::Equals, "Penny")] {
            let s = sel(&format!("SELECT * FROM t WHERE name LIKE '{pat}'"));
            assert_eq!(leaf(s.filter.cond.as_ref().expect("cond")), ("name", c, &json!(v)));
        }
    }

    #[test]
    fn complex_like_is_filtered_in_the_guest() {
        let s = sel("SELECT name FROM t WHERE age > 1 AND name LIKE 'P_n%y' LIMIT 1");
        assert!(s.filter.cond.is_some() && s.filter.residual.is_some());
        assert!(!s.pushes_window() && !s.passthrough());
        assert_eq!(s.fetch_attributes(), vec!["name".to_string()]);
        assert!(s.filter.keep(&json!({"name": "Penny"})) && !s.filter.keep(&json!({"name": "Pen"})));
        let s = sel("SELECT * FROM t WHERE a = 1 OR b LIKE '%'");
        assert!(s.filter.cond.is_none());
        assert!(s.filter.keep(&json!({"a": 1})) && s.filter.keep(&json!({"b": ""})) && !s.filter.keep(&json!({"a": "1"})));
        assert!(like_match(&['a', 'b', 'c'], &['%', 'c']) && !like_match(&['a', 'b'], &['_']));
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

    #[test]
    fn writes() {
        let Ok(Plan::Insert { db, records, .. }) = parse("INSERT INTO dev.dog (id, name, ok) VALUES (1, 'a', TRUE), (-2.5, NULL, false)") else { panic!("insert") };
        assert_eq!(db, "dev");
        assert_eq!(records, vec![json!({"id": 1, "name": "a", "ok": true}), json!({"id": -2.5, "name": null, "ok": false})]);
        let Ok(Plan::Update { set, filter, .. }) = parse("UPDATE dev.dog SET name = 'b', age = 3 WHERE id = 1") else { panic!("update") };
        assert_eq!(Value::Object(set), json!({"name": "b", "age": 3}));
        assert!(filter.cond.is_some());
        let Ok(Plan::Delete { table, filter, .. }) = parse("DELETE FROM dev.dog") else { panic!("delete") };
        assert!(table == "dog" && filter.cond.is_none() && filter.residual.is_none());
    }

    #[test]
    fn unsupported_is_invalid_sql() {
        for sql in ["SELEC 1", "SELECT * FROM a JOIN b ON a.x = b.y", "DROP TABLE dev.dog", "INSERT INTO t VALUES (1)",
                    "SELECT a + 1 FROM t", "UPDATE t SET a = a + 1", "SELECT 1; SELECT 2", "SELECT * FROM t WHERE a = b"] {
            assert!(parse(sql).is_err(), "{sql}");
        }
        assert!(invalid_sql("x").starts_with("Invalid SQL at: x. Please"));
    }
}
