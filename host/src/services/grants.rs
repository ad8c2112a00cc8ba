//! Grants: which host interfaces an operation may import (a bit set over the interfaces the
//! host implements) and the policy that decides them from the configuration. Plain data, used by
//! the configuration (to validate `operationsApi.grants`), the registry and the call machinery.

use std::collections::{HashMap, HashSet};

/// The host interfaces an operation may import. Deny by default. A bit set, so copying it
/// into every call's store costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Grants(u32);

/// Every interface of `opshost:host` the host implements; a grant is an index into this.
pub const INTERFACES: [&str; 17] = [
    "types", "log", "config", "sysinfo", "control", "storage", "certs", "jobs", "filesystem", "objectstore", "users",
    "catalog", "packages", "wasi", "components", "sources", "cluster",
];
/// Interfaces every operation may import: shared types and its own log.
const ALWAYS: [&str; 2] = ["types", "log"];

impl Grants {
    /// Nothing at all, not even the log (used while a component describes itself).
    pub fn none() -> Self {
        Self(0)
    }

    /// Every interface (the upper bound for built-in operations, which ship with the server).
    pub fn all() -> Self {
        Self(INTERFACES.iter().filter_map(|name| bit(name)).fold(0, |acc, b| acc | b))
    }

    /// Whether every interface of `self` is also in `other`.
    pub fn within(self, other: Grants) -> bool {
        self.0 & !other.0 == 0
    }

    /// Both sets.
    pub fn union(self, other: Grants) -> Self {
        Self(self.0 | other.0)
    }

    /// The always-granted interfaces plus `extra` (unknown names grant nothing).
    pub fn with(extra: &[&str]) -> Self {
        let bits = ALWAYS.iter().chain(extra).filter_map(|name| bit(name)).fold(0, |acc, b| acc | b);
        Self(bits)
    }

    pub fn has(&self, interface: &str) -> bool {
        bit(interface).is_some_and(|b| self.0 & b != 0)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        INTERFACES.iter().copied().filter(|name| self.has(name))
    }

    /// The interfaces a component's imports name (`opshost:host/<interface>@...`, and `wasi`
    /// for any standard WASI import); imports of anything else grant nothing.
    pub fn from_imports(imports: &[String]) -> Self {
        imports.iter().fold(Self::with(&[]), |acc, import| {
            let interface = match import.strip_prefix("opshost:host/") {
                Some(rest) => rest.split('@').next().unwrap_or(rest),
                None if import.starts_with("wasi:") => "wasi",
                None => return acc,
            };
            Self(acc.0 | bit(interface).unwrap_or(0))
        })
    }

    /// Whether a component import such as `opshost:host/config@0.1.0` is allowed.
    pub fn allows_import(&self, import: &str) -> bool {
        match import.strip_prefix("opshost:host/") {
            Some(rest) => {
                let interface = rest.split('@').next().unwrap_or(rest);
                self.has(interface)
            }
            // Standard WASI interfaces come as one grant; anything else is never linked.
            None => import.starts_with("wasi:") && self.has("wasi"),
        }
    }
}

fn bit(interface: &str) -> Option<u32> {
    INTERFACES.iter().position(|i| *i == interface).map(|i| 1 << i)
}

/// Who may import what: `operationsApi.grants` (operation name -> interfaces) over the
/// built-in defaults; third-party components get `log` only unless granted more, and may
/// replace a built-in operation only when `operationsApi.replaceBuiltins` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub grants: HashMap<String, Vec<String>>,
    pub replace_builtins: Vec<String>,
    /// Components deployed through the operations API, by name: the exact bytes (hash) that
    /// were deployed and the grants they were deployed with.
    pub deployed: HashMap<String, Deployed>,
    /// `operationsApi.components.requireSigned`: every third-party component needs a signature
    /// by one of `trusted_keys`.
    pub require_signed: bool,
    pub trusted_keys: Vec<[u8; 32]>,
}

/// The active version of a deployed component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployed {
    pub version: u64,
    pub hash: String,
    /// Grants given at deploy time (`None`: those of `operationsApi.grants`, as for a dropped file).
    pub grants: Option<Vec<String>>,
    /// The publisher's signature (base64), when it was deployed with one.
    pub signature: Option<String>,
}

impl Policy {
    /// What a component claiming `names` may import. A third-party component may claim no
    /// built-in name (its main name or any alias) unless `replaceBuiltins` lists that name;
    /// grants follow the main name.
    ///
    /// A built-in not named in `operationsApi.grants` gets exactly the interfaces its component
    /// imports: built-ins ship with the server (the dist folder is as trusted as the binary), so
    /// what each needs is declared by the component itself, not by a table in the host.
    ///
    /// A component deployed through the API gets the grants it was deployed with, but only
    /// while the file holds exactly the bytes that were deployed (`hash`).
    pub fn grants_for(
        &self,
        names: &[String],
        imports: &[String],
        hash: &str,
        builtin: bool,
        builtin_names: &HashSet<String>,
    ) -> Result<Grants, String> {
        let main = names.first().map(String::as_str).unwrap_or_default();
        if !builtin {
            if let Some(taken) = names.iter().find(|n| builtin_names.contains(*n) && !self.replace_builtins.contains(n)) {
                return Err(format!(
                    "operation '{taken}' is a built-in operation and cannot be replaced from componentsRoot (allow it in operationsApi.replaceBuiltins)"
                ));
            }
        }
        if !builtin {
            if let Some(list) = self.deployed_grants(main, hash) {
                return Ok(Grants::with(&list.iter().map(String::as_str).collect::<Vec<_>>()));
            }
        }
        Ok(match self.grants.get(main) {
            Some(list) => Grants::with(&list.iter().map(String::as_str).collect::<Vec<_>>()),
            None if builtin => Grants::from_imports(imports),
            None => Grants::with(&[]),
        })
    }

    /// The most a file could be granted under any name: checked against its imports before
    /// anything of it runs. Built-ins ship with the server; a third-party file gets at most what
    /// `operationsApi.grants` gives some name.
    pub fn most(&self, builtin: bool) -> Grants {
        if builtin {
            return Grants::all();
        }
        let deployed = self.deployed.values().filter_map(|d| d.grants.as_ref());
        self.grants
            .values()
            .chain(deployed)
            .map(|list| Grants::with(&list.iter().map(String::as_str).collect::<Vec<_>>()))
            .fold(Grants::with(&[]), Grants::union)
    }

    /// The grants `name` was deployed with, when the file holds the deployed bytes.
    fn deployed_grants(&self, name: &str, hash: &str) -> Option<&Vec<String>> {
        self.deployed.get(name).filter(|d| d.hash == hash).and_then(|d| d.grants.as_ref())
    }

    /// The deployed record of `name` when it matches these bytes.
    pub fn deployed_as(&self, name: &str, hash: &str) -> Option<&Deployed> {
        self.deployed.get(name).filter(|d| d.hash == hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_checked_by_interface_name() {
        let g = Grants::with(&["config"]);
        assert!(g.allows_import("opshost:host/config@0.1.0"));
        assert!(g.allows_import("opshost:host/log@0.1.0"));
        assert!(!g.allows_import("opshost:host/control@0.1.0"));
        assert!(!g.allows_import("wasi:cli/stdout@0.2.0"));
        assert!(Grants::with(&["wasi"]).allows_import("wasi:cli/stdout@0.2.0"));
        assert!(!Grants::with(&["wasi"]).allows_import("other:pkg/iface"));
        assert!(!Grants::none().allows_import("opshost:host/log@0.1.0"));
    }

    #[test]
    fn a_built_in_is_granted_what_it_imports() {
        let imports = ["opshost:host/storage@0.1.0", "opshost:host/jobs@0.1.0", "wasi:clocks/wall-clock@0.2.0", "other:x/y"];
        let g = Grants::from_imports(&imports.map(String::from));
        assert_eq!(g, Grants::with(&["storage", "jobs", "wasi"]));
        assert!(!g.has("users"));
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn policy_defaults_overrides_and_builtin_protection() {
        let builtins: HashSet<String> = ["sql".to_string(), "create_authentication_tokens".to_string()].into();
        let mut policy = Policy::default();
        assert!(policy.grants_for(&names(&["sql"]), &names(&["opshost:host/storage@0.1.0"]), "h", true, &builtins).expect("builtin").has("storage"));
        assert!(policy.grants_for(&names(&["sql"]), &[], "h", false, &builtins).is_err(), "third-party cannot take a built-in name");
        let alias = policy.grants_for(&names(&["innocent", "create_authentication_tokens"]), &[], "h", false, &builtins);
        assert!(alias.is_err_and(|e| e.contains("'create_authentication_tokens' is a built-in")), "nor through an alias");
        let third = policy.grants_for(&names(&["mine"]), &[], "h", false, &builtins).expect("third-party");
        assert!(third.has("log") && !third.has("storage"));
        assert_eq!(policy.most(false), Grants::with(&[]), "nothing granted: a third-party file may import only the log");
        policy.grants.insert("mine".into(), vec!["storage".into(), "wasi".into()]);
        policy.replace_builtins.push("sql".into());
        let granted = policy.grants_for(&names(&["mine"]), &[], "h", false, &builtins).expect("granted");
        assert!(granted.has("storage") && granted.has("wasi"));
        assert!(policy.most(false).has("wasi") && !policy.most(false).has("users"));
        assert!(policy.grants_for(&names(&["sql"]), &[], "h", false, &builtins).is_ok(), "allowed by replaceBuiltins");
        assert!(policy.grants_for(&names(&["mine", "create_authentication_tokens"]), &[], "h", false, &builtins).is_err(), "only the listed name");
    }
}
