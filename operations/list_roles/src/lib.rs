//! `list_roles`: every role record, sorted by name, including the built-in `super_user` and
//! `cluster_user`.
//!
//! Request: `{"operation": "list_roles"}`. Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct ListRoles;

impl Operation for ListRoles {
    const NAME: &'static str = "list_roles";
    type Request = Empty;
    type Response = Vec<Value>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Vec<Value>, Error> {
        users::list_roles()
    }
}

opshost_guest::export_operation!(ListRoles);
