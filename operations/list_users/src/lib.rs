//! `list_users`: every user with its role, without passwords, sorted by name. As in HarperDB,
//! each role's `permission` gains `system.tables`: every system table, readable by super_users.
//!
//! Request: `{"operation": "list_users"}`. Capabilities: `users`.

use opshost_guest::prelude::*;
use opshost_harper::users;

pub struct ListUsers;

impl Operation for ListUsers {
    const NAME: &'static str = "list_users";
    type Request = Empty;
    type Response = Vec<Value>;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Vec<Value>, Error> {
        let mut all = users::list_users()?;
        all.iter_mut().for_each(users::add_system_table_permissions);
        Ok(all)
    }
}

opshost_guest::export_operation!(ListUsers);
