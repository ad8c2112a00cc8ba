//! The loader as the components service sees it (`services::components::Deployer`): a check of
//! candidate bytes by the same code that loads files from `componentsRoot`, and a reload of the
//! registry that publishes what is on disk.

use crate::registry::{self, Candidate};
use crate::services::components::Deployer;
use crate::services::grants::Policy;
use crate::AppState;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Deployer for AppState {
    fn check(&self, name: &str, path: &Path, bytes: &[u8], hash: &str, policy: &Policy) -> Result<Vec<String>, String> {
        let current = self.registry.load_full();
        let builtin_names = registry::builtin_names(&current, &self.builtin_dir);
        let candidate = Candidate { path, bytes, hash, builtin: false };
        let op = registry::load_candidate(&self.runtime, &self.services, policy, self.call_limits(), &candidate, &builtin_names)?;
        if op.info.name != name {
            return Err(format!("the component describes itself as '{}', not '{name}': 'name' must be its operation name", op.info.name));
        }
        // The names must be free: not served by another file (a built-in only when
        // replaceBuiltins allows that very name; the policy already refused the others).
        for name in op.names() {
            if let Some(existing) = current.get(&name) {
                let allowed = existing.source == path || (existing.builtin && policy.replace_builtins.contains(&name));
                if !allowed {
                    return Err(format!("operation '{name}' is already served by {}", existing.source.display()));
                }
            }
        }
        Ok(op.names())
    }

    fn reload(self: Arc<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move { self.reload_registry("a component change").await })
    }

    fn serving(&self, name: &str) -> Option<(PathBuf, String)> {
        self.registry.load().get(name).map(|op| (op.source.clone(), op.hash.clone()))
    }

    fn policy(&self) -> Policy {
        AppState::policy(self)
    }

    fn components_root(&self) -> PathBuf {
        self.settings.load().components_root.clone()
    }

    fn limits(&self) -> (usize, usize) {
        let settings = self.settings.load();
        (settings.component_versions, settings.component_max_size)
    }
}
