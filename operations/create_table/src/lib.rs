//! `create_table`: creates a table (and its database when missing) with a primary key.
//!
//! Request: `{"operation": "create_table", "database": "dev", "table": "dog",
//! "primary_key": "id"}` (`schema` and `hash_attribute` also accepted). Capabilities: `storage`.

use opshost_guest::prelude::*;
use opshost_harper::data;

pub struct CreateTable;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: Option<Value>,
    #[serde(alias = "hash_attribute")]
    primary_key: Option<Value>,
}

impl Operation for CreateTable {
    const NAME: &'static str = "create_table";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let (table, primary_key) = required_names(req.table.as_ref(), req.primary_key.as_ref())?;
        data::create_table(&req.database, table, primary_key)?;
        Ok(json!({ "message": format!("table '{}.{}' successfully created.", req.database, table) }))
    }
}

opshost_guest::export_operation!(CreateTable);

/// HarperDB reports every missing or mistyped field at once, joined by ". ".
fn required_names<'a>(table: Option<&'a Value>, primary_key: Option<&'a Value>) -> Result<(&'a str, &'a str), Error> {
    let mut errors = Vec::new();
    let mut check = |name: &str, v: Option<&'a Value>| match v {
        None | Some(Value::Null) => {
            errors.push(format!("'{name}' is required"));
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(format!("'{name}' must be a string"));
            None
        }
    };
    let t = check("table", table);
    let p = check("primary_key", primary_key);
    match (t, p) {
        (Some(t), Some(p)) => Ok((t, p)),
        _ => Err(Error::BadRequest(errors.join(". "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_missing_field() {
        let err = required_names(None, None).expect_err("missing");
        assert!(matches!(err, Error::BadRequest(m) if m == "'table' is required. 'primary_key' is required"));
        let err = required_names(Some(&json!("dog")), Some(&json!(1))).expect_err("mistyped");
        assert!(matches!(err, Error::BadRequest(m) if m == "'primary_key' must be a string"));
    }
}
