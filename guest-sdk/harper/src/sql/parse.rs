//! SQL text (sqlparser's AST) to a [`Plan`]: tables, columns, windows, and WHERE split into the
//! host-plannable `Cond` and a guest-side residual.

use super::plan::{Column, Filter, Func, Plan, Pred, Select, Unsupported, R};
use crate::data::{default_database, Comparator, Cond};
use serde_json::{Map, Number, Value};
use sqlparser::ast::{
    BinaryOperator as Op, Distinct, DuplicateTreatment, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, LimitClause, ObjectName, ObjectNamePart, OrderByKind, OrderBySort,
    Query, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, UnaryOperator,
    Value as Lit,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

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

#[cfg(test)]
mod tests {
    use super::super::plan::{invalid_sql, select_of as sel};
    use super::*;
    use serde_json::json;

    fn leaf(c: &Cond) -> (&str, Comparator, &Value) {
        match c {
            Cond::Leaf { attribute, comparator, value, .. } => (attribute.as_str(), *comparator, value),
            other => panic!("not a leaf: {other:?}"),
        }
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
