//! `drop_role`: drops a role no user has, by id.
//!
//! Request: `{"operation": "drop_role", "id": "f6a1..."}`. Answers
//! `{"message": "developer successfully deleted"}`. Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct DropRole;

#[derive(Deserialize)]
pub struct Request {
    id: Option<String>,
}

impl Operation for DropRole {
    const NAME: &'static str = "drop_role";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let id = required_id(req.id.as_deref())?;
        let name = users::drop_role(id)?;
        Ok(json!({ "message": format!("{name} successfully deleted") }))
    }
}

opshost_guest::export_operation!(DropRole);

/// HarperDB's text for a missing or empty id.
fn required_id(id: Option<&str>) -> Result<&str, Error> {
    match id {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(Error::BadRequest("Id can't be blank".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_id_is_blank() {
        assert!(matches!(required_id(None), Err(Error::BadRequest(m)) if m == "Id can't be blank"));
        assert!(matches!(required_id(Some("")), Err(Error::BadRequest(m)) if m == "Id can't be blank"));
        assert!(matches!(required_id(Some("abc")), Ok("abc")));
    }
}
