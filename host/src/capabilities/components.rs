//! `components` capability: deploy, list, read, drop and roll back components through the
//! operations API. Only super_users reach it (the operations are super_user only, and the
//! capability checks again: a grant to a third-party operation must not open it to anyone).

use super::CallState;
use crate::bindings::opshost::host::components::{DeployRequest, Host};
use crate::bindings::OpError;
use crate::services::components;

impl CallState {
    fn components_allowed(&self) -> Result<(), OpError> {
        self.check("components")?;
        if !self.caller.super_user {
            return Err(OpError::Forbidden("managing components is restricted to 'super_user' roles".into()));
        }
        Ok(())
    }
}

impl Host for CallState {
    async fn deploy(&mut self, request: DeployRequest) -> Result<String, OpError> {
        self.components_allowed()?;
        let request = components::DeployRequest {
            name: request.name,
            payload: request.payload,
            grants: request.grants,
            signature: request.signature,
            user: self.caller.username.clone(),
            replicated: request.replicated,
        };
        Ok(self.services.components.deploy(request).await?.to_string())
    }

    fn list(&mut self) -> Result<String, OpError> {
        self.components_allowed()?;
        Ok(self.services.components.list()?.to_string())
    }

    fn file(&mut self, name: String, version: Option<u64>) -> Result<String, OpError> {
        self.components_allowed()?;
        Ok(self.services.components.file(&name, version)?.to_string())
    }

    async fn drop(&mut self, name: String, replicated: bool) -> Result<String, OpError> {
        self.components_allowed()?;
        let user = self.caller.username.clone();
        Ok(self.services.components.remove(&name, &user, replicated).await?.to_string())
    }

    async fn rollback(&mut self, name: String, version: Option<u64>) -> Result<String, OpError> {
        self.components_allowed()?;
        let user = self.caller.username.clone();
        Ok(self.services.components.rollback(&name, version, &user).await?.to_string())
    }

    fn events(&mut self, name: Option<String>) -> Result<String, OpError> {
        self.components_allowed()?;
        Ok(self.services.components.events(name.as_deref())?.to_string())
    }
}
