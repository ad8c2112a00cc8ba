//! `users` capability: users, roles and tokens through the user and token services. Password
//! hashing and checking run off the async workers.

use super::{blocking, CallState};
use crate::bindings::opshost::host::users::{Host, NewUser, Tokens, UserChange};
use crate::bindings::OpError;
use crate::services::tokens::Kind;
use crate::services::users::User;
use crate::services::ServiceError;
use serde_json::Value;

fn permission_json(text: &str) -> Result<Value, OpError> {
    serde_json::from_str(text).map_err(|_| OpError::BadRequest("'permission' must be a JSON object".into()))
}


impl CallState {
    /// Keeps a role validation's problem list for HarperDB's structured 400 body.
    fn role_result<T>(&mut self, result: Result<T, ServiceError>) -> Result<T, OpError> {
        if let Err(ServiceError::RolePermissions(problems)) = &result {
            self.effects.role_problems = problems.clone();
        }
        Ok(result?)
    }

    fn tokens_for(&self, user: &User) -> Result<Tokens, OpError> {
        let (operation, refresh) = **self.services.token_lifetimes.load();
        let issue = |kind, lifetime| {
            self.services.tokens.issue(user, kind, lifetime).map_err(|e| {
                tracing::error!("issuing a token: {e:#}");
                OpError::Internal("could not issue a token".into())
            })
        };
        Ok(Tokens { operation_token: issue(Kind::Operation, operation)?, refresh_token: issue(Kind::Refresh, refresh)? })
    }
}

impl Host for CallState {
    fn add_role(&mut self, role: String, permission: String, id: Option<String>) -> Result<String, OpError> {
        self.check("users")?;
        let added = self.services.users.add_role(&role, permission_json(&permission)?, id);
        Ok(self.role_result(added)?.to_json().to_string())
    }

    fn alter_role(&mut self, id: String, role: Option<String>, permission: String) -> Result<String, OpError> {
        self.check("users")?;
        let altered = self.services.users.alter_role(&id, role, permission_json(&permission)?);
        Ok(self.role_result(altered)?.to_json().to_string())
    }

    fn drop_role(&mut self, id: String) -> Result<String, OpError> {
        self.check("users")?;
        Ok(self.services.users.drop_role(&id)?)
    }

    fn list_roles(&mut self) -> Result<Vec<String>, OpError> {
        self.check("users")?;
        Ok(self.services.users.list_roles().iter().map(|r| r.to_json().to_string()).collect())
    }

    async fn add_user(&mut self, user: NewUser) -> Result<(), OpError> {
        self.check("users")?;
        let users = self.services.users.clone();
        blocking("user", move || users.add_user(&user.username, &user.password, &user.role, user.active)).await
    }

    async fn alter_user(&mut self, change: UserChange) -> Result<(), OpError> {
        self.check("users")?;
        let users = self.services.users.clone();
        blocking("user", move || users.alter_user(&change.username, change.password.as_deref(), change.role.as_deref(), change.active)).await
    }

    fn drop_user(&mut self, username: String) -> Result<(), OpError> {
        self.check("users")?;
        Ok(self.services.users.drop_user(&username)?)
    }

    fn get_user(&mut self, username: String) -> Result<Option<String>, OpError> {
        self.check("users")?;
        Ok(self.services.users.user_json(&username).map(|u| u.to_string()))
    }

    fn list_users(&mut self) -> Result<Vec<String>, OpError> {
        self.check("users")?;
        let users = &self.services.users;
        Ok(users.usernames().iter().filter_map(|name| users.user_json(name)).map(|u| u.to_string()).collect())
    }

    async fn create_tokens(&mut self, username: String, password: String) -> Result<Tokens, OpError> {
        self.check("users")?;
        // The HTTP layer checks a body's username and password before the call (throttled,
        // with no call slot held) and runs the call as that user: no second hash here.
        if !username.is_empty() && username == self.caller.username {
            let user = self.services.users.user(&username).ok_or_else(|| OpError::Unauthorized("invalid credentials".into()))?;
            return self.tokens_for(&user);
        }
        // Another name than the caller's: checked here, refused at once when throttled or
        // when every hashing slot is busy (never waiting while the call holds its slot).
        let users = self.services.users.clone();
        let log_failed = self.services.config.current().map(|s| s.log_failed_logins).unwrap_or(false);
        let user = users.login(None, &username, &password, log_failed).await.map_err(|why| match why {
            crate::services::users::LoginRefused::Failed => OpError::Unauthorized("invalid credentials".into()),
            _ => OpError::Unauthorized("too many login attempts; try again later".into()),
        })?;
        self.tokens_for(&user)
    }

    fn create_tokens_for_caller(&mut self) -> Result<Tokens, OpError> {
        self.check("users")?;
        let user = self.services.users.user(&self.caller.username).ok_or_else(|| OpError::Unauthorized("Must login".into()))?;
        self.tokens_for(&user)
    }

    fn refresh_operation_token(&mut self, refresh_token: Option<String>) -> Result<String, OpError> {
        self.check("users")?;
        let invalid = || OpError::Unauthorized("invalid token".into());
        let token = refresh_token.or_else(|| self.caller.refresh_token.clone()).ok_or_else(invalid)?;
        let claims = self.services.tokens.verify(&token, Kind::Refresh).ok_or_else(invalid)?;
        let user = self.services.users.user(&claims.username).filter(|u| u.token_generation == claims.gen).ok_or_else(invalid)?;
        let (operation, _) = **self.services.token_lifetimes.load();
        self.services.tokens.issue(&user, Kind::Operation, operation).map_err(|e| {
            tracing::error!("issuing a token: {e:#}");
            OpError::Internal("could not issue a token".into())
        })
    }
}
