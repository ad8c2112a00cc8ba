//! Users and roles: records in `system.hdb_user` and `system.hdb_role`, argon2id password
//! hashes, role permissions parsed once into [`Permissions`], and a generation counter that
//! tells caches (logins, tokens) that something changed.

use super::storage::{StorageBackend, WriteMode, SYSTEM_DATABASE};
use super::ServiceError;
use anyhow::Context as _;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: &str = "hdb_user";
const ROLES: &str = "hdb_role";

/// A table permission as a role grants it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePermission {
    pub read: bool,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    /// Attribute-level rules: when a table lists any, only attributes with `read` are shown.
    pub attributes: Vec<(String, bool)>,
    /// Whether the role gave `attribute_permissions` at all.
    pub attribute_rules: bool,
    /// The same entries' write flags, `(attribute_name, insert, update)`: with attribute rules
    /// a write may set only attributes listed with the permission it needs.
    pub attribute_writes: Vec<(String, bool, bool)>,
}

/// A role's permission JSON, parsed.
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    pub super_user: bool,
    pub cluster_user: bool,
    /// `structure_user: true` (every database) or a list of databases.
    pub structure: Structure,
    /// database -> table -> permission.
    pub tables: HashMap<String, HashMap<String, TablePermission>>,
}

#[derive(Clone, Debug, Default)]
pub enum Structure {
    #[default]
    None,
    All,
    Databases(Vec<String>),
}

impl Permissions {
    pub fn table(&self, database: &str, table: &str) -> Option<&TablePermission> {
        self.tables.get(database).and_then(|t| t.get(table))
    }

    /// May create or drop tables in `database`.
    pub fn structure(&self, database: &str) -> bool {
        self.super_user
            || match &self.structure {
                Structure::None => false,
                Structure::All => true,
                Structure::Databases(list) => list.iter().any(|d| d == database),
            }
    }

    /// HarperDB's permission JSON, checked. Unknown booleans and shapes are refused by name.
    pub fn parse(permission: &Value) -> Result<Self, ServiceError> {
        let bad = |m: String| ServiceError::RolePermissions(vec![m]);
        let obj = permission.as_object().ok_or_else(|| bad("'permission' must be an object".into()))?;
        let mut p = Permissions::default();
        for (key, value) in obj {
            match key.as_str() {
                "super_user" | "cluster_user" => {
                    let b = value.as_bool().ok_or_else(|| bad(format!("'{key}' must be a boolean")))?;
                    if key == "super_user" {
                        p.super_user = b;
                    } else {
                        p.cluster_user = b;
                    }
                }
                "structure_user" => {
                    p.structure = match value {
                        Value::Bool(true) => Structure::All,
                        Value::Bool(false) => Structure::None,
                        Value::Array(list) => Structure::Databases(
                            list.iter()
                                .map(|d| d.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                                .ok_or_else(|| bad("'structure_user' must be a boolean or a list of database names".into()))?,
                        ),
                        _ => return Err(bad("'structure_user' must be a boolean or a list of database names".into())),
                    }
                }
                database => {
                    let tables = value
                        .get("tables")
                        .and_then(Value::as_object)
                        .ok_or_else(|| bad(format!("database '{database}' must have a 'tables' object")))?;
                    let mut parsed = HashMap::new();
                    for (table, perm) in tables {
                        parsed.insert(table.clone(), table_permission(perm).map_err(|m| bad(format!("table '{database}.{table}': {m}")))?);
                    }
                    p.tables.insert(database.to_string(), parsed);
                }
            }
        }
        Ok(p)
    }
}

fn table_permission(v: &Value) -> Result<TablePermission, String> {
    let obj = v.as_object().ok_or("must be an object")?;
    let flag = |k: &str| match obj.get(k) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("'{k}' must be a boolean")),
    };
    let mut t = TablePermission { read: flag("read")?, insert: flag("insert")?, update: flag("update")?, delete: flag("delete")?, ..Default::default() };
    if let Some(list) = obj.get("attribute_permissions") {
        let list = list.as_array().ok_or("'attribute_permissions' must be an array")?;
        t.attribute_rules = true;
        for a in list {
            let name = a.get("attribute_name").and_then(Value::as_str).ok_or("each attribute permission needs 'attribute_name'")?;
            let flag = |k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
            t.attributes.push((name.to_string(), flag("read")));
            t.attribute_writes.push((name.to_string(), flag("insert"), flag("update")));
        }
    }
    Ok(t)
}

/// A role record.
#[derive(Clone, Debug)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub permission: Value,
    pub parsed: Arc<Permissions>,
    pub created: f64,
    pub updated: f64,
}

impl Role {
    pub fn to_json(&self) -> Value {
        json!({"role": self.name, "permission": self.permission, "id": self.id, "__updatedtime__": self.updated, "__createdtime__": self.created})
    }

    fn record(&self) -> Value {
        json!({"id": self.id, "role": self.name, "permission": self.permission})
    }
}

#[derive(Clone, Debug)]
struct StoredUser {
    username: String,
    /// PHC string (argon2id); the password itself is never stored.
    password_hash: String,
    role_id: String,
    active: bool,
    /// Tokens carry this number; changing the password or deactivating bumps it, which ends
    /// every token issued before.
    token_generation: u64,
    created: f64,
    updated: f64,
}

impl StoredUser {
    fn record(&self) -> Value {
        json!({"username": self.username, "password_hash": self.password_hash, "role": self.role_id,
               "active": self.active, "token_generation": self.token_generation})
    }
}

/// A user as the rest of the host sees it after authentication.
#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    pub role: String,
    pub super_user: bool,
    pub cluster_user: bool,
    pub permissions: Arc<Permissions>,
    pub token_generation: u64,
}

/// Why a login failed; the HTTP layer answers HarperDB's `Login failed` for every case.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    UnknownUser,
    WrongPassword,
    Inactive,
}

/// Why [`UserService::login`] gave no user.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// The password was checked and did not match (or the user is unknown or inactive).
    Failed,
    /// Too many recent attempts from this client for this name: try again in this many seconds.
    /// Nothing was checked.
    Throttled { retry_after: u64 },
    /// Every password-hashing slot is busy: try again shortly. Nothing was checked.
    Busy,
}

/// Who is trying to log in as whom: failed attempts are counted per client address and user
/// name, so one client's guesses neither lock out the same name elsewhere nor go unthrottled.
type AttemptKey = (Option<std::net::IpAddr>, String);

/// Recent login attempts for one [`AttemptKey`].
#[derive(Clone, Copy, Debug)]
struct Attempts {
    /// Attempts since the last success, counted as each one starts.
    count: u32,
    last: Instant,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, StoredUser>,
    roles: BTreeMap<String, Role>,
}

pub struct UserService {
    storage: Arc<dyn StorageBackend>,
    state: RwLock<State>,
    /// Bumped on every change to users or roles; cached logins older than it are re-checked.
    generation: AtomicU64,
    /// Serializes read-modify-write changes to users and roles (a deactivation racing a
    /// password change must not be undone by it). Password hashing happens before taking it.
    changes: parking_lot::Mutex<()>,
    /// Login attempts per client and user name, for the throttle in [`UserService::login`].
    failures: parking_lot::Mutex<HashMap<AttemptKey, Attempts>>,
    /// Password hashes running at once (Argon2id takes ~19 MiB and a core each): one per core,
    /// and a login that finds none free is refused at once rather than queued.
    hash_slots: Arc<tokio::sync::Semaphore>,
    /// Logins waiting for a hashing slot (bounded by [`HASH_QUEUE_PER_SLOT`]).
    hash_waiters: std::sync::atomic::AtomicUsize,
}

/// Attempts for one client and name that run freely; past them each attempt must wait...
const FREE_FAILURES: u32 = 5;
/// ...this long after the previous one, doubling with each attempt past the free ones...
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// ...up to this. An attempt made sooner is refused (never delayed while holding anything).
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A count is forgotten after this long without attempts.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Bounds the attempt map (a flood of made-up user names); when full, single entries are
/// evicted (the forgotten ones, else the least suspicious), never the whole map.
const MAX_TRACKED: usize = 10_000;

/// Logins that may wait for a hashing slot, per slot; more are refused at once.
const HASH_QUEUE_PER_SLOT: usize = 8;
/// The longest a login waits for a hashing slot.
const HASH_WAIT: Duration = Duration::from_secs(2);

/// One password hash per core.
fn hash_slot_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// The wait the throttle asks for after `count` attempts, if any.
fn throttle_wait(count: u32) -> Option<Duration> {
    (count >= FREE_FAILURES).then(|| FIRST_DELAY.saturating_mul(1 << (count - FREE_FAILURES).min(5)).min(MAX_DELAY))
}

/// Room for one more key: drop forgotten entries, then (still full) the entry with the fewest
/// attempts, oldest first, so a spray of fresh names cannot reset a hot name's count.
fn make_room(map: &mut HashMap<AttemptKey, Attempts>) {
    if map.len() < MAX_TRACKED {
        return;
    }
    map.retain(|_, a| a.last.elapsed() <= FAILURE_MEMORY);
    while map.len() >= MAX_TRACKED {
        let Some(victim) = map.iter().min_by_key(|(_, a)| (a.count, a.last)).map(|(k, _)| k.clone()) else { break };
        map.remove(&victim);
    }
}

/// A client-supplied name as it may appear in a log line: quoted and escaped, so control
/// characters (a newline) cannot forge a line.
pub fn loggable(name: &str) -> String {
    let mut shown: String = name.chars().take(128).collect();
    if shown.len() < name.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn is_super_role(state: &State, role_id: &str) -> bool {
    state.roles.get(role_id).is_some_and(|r| r.parsed.super_user)
}

/// Whether an active super_user other than `except` exists.
fn other_active_super_user(state: &State, except: &str) -> bool {
    state.users.values().any(|u| u.username != except && u.active && is_super_role(state, &u.role_id))
}

fn stamp() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

fn hash_password(password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

fn internal(e: ServiceError) -> anyhow::Error {
    e.into_anyhow()
}

impl UserService {
    /// Opens the user and role tables (creating them and the built-in roles on first start),
    /// and imports a `users.json` left by an earlier version.
    pub fn open(root: &Path, storage: Arc<dyn StorageBackend>) -> anyhow::Result<Arc<Self>> {
        for (table, key) in [(USERS, "username"), (ROLES, "id")] {
            if storage.describe_table(SYSTEM_DATABASE, table).is_err() {
                storage.create_table(SYSTEM_DATABASE, table, key).map_err(internal).with_context(|| format!("creating system.{table}"))?;
            }
        }
        let service = Arc::new(Self { storage, state: RwLock::new(State::default()), generation: AtomicU64::new(0), changes: Default::default(), failures: Default::default(), hash_slots: Arc::new(tokio::sync::Semaphore::new(hash_slot_count())), hash_waiters: Default::default() });
        service.load().map_err(internal)?;
        for (id, permission) in [("super_user", json!({"super_user": true})), ("cluster_user", json!({"cluster_user": true}))] {
            if !service.state.read().roles.contains_key(id) {
                service.add_role(id, permission, Some(id.to_string())).map_err(internal)?;
            }
        }
        service.import_legacy(&root.join("users.json"))?;
        Ok(service)
    }

    /// Another node's change to users or roles was applied to the tables (clustering): the
    /// in-memory state is read again and cached logins are re-checked.
    pub fn reload_replicated(&self) {
        let _changes = self.changes.lock();
        match self.load() {
            Ok(()) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => tracing::error!("reloading users and roles after a replicated change failed: {e}"),
        }
    }

    fn load(&self) -> Result<(), ServiceError> {
        let mut state = State::default();
        for row in self.scan(ROLES)? {
            let (Some(id), Some(name)) = (row["id"].as_str(), row["role"].as_str()) else { continue };
            let permission = row.get("permission").cloned().unwrap_or(json!({}));
            let parsed = Arc::new(Permissions::parse(&permission).unwrap_or_default());
            let (created, updated) = times(&row);
            state.roles.insert(id.to_string(), Role { id: id.into(), name: name.into(), permission, parsed, created, updated });
        }
        for row in self.scan(USERS)? {
            let (Some(username), Some(hash), Some(role)) = (row["username"].as_str(), row["password_hash"].as_str(), row["role"].as_str()) else {
                continue;
            };
            let (created, updated) = times(&row);
            state.users.insert(
                username.to_string(),
                StoredUser {
                    username: username.into(),
                    password_hash: hash.into(),
                    role_id: role.into(),
                    active: row["active"].as_bool().unwrap_or(true),
                    token_generation: row["token_generation"].as_u64().unwrap_or(0),
                    created,
                    updated,
                },
            );
        }
        *self.state.write() = state;
        Ok(())
    }

    fn scan(&self, table: &str) -> Result<Vec<Value>, ServiceError> {
        self.storage.search(SYSTEM_DATABASE, table, Default::default())?.collect_all()
    }

    /// The users file of earlier versions becomes records; the file is kept renamed.
    fn import_legacy(&self, path: &Path) -> anyhow::Result<()> {
        let Ok(bytes) = std::fs::read(path) else { return Ok(()) };
        let file: Value = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        for u in file["users"].as_array().into_iter().flatten() {
            let (Some(name), Some(hash)) = (u["username"].as_str(), u["password_hash"].as_str()) else { continue };
            if self.state.read().users.contains_key(name) {
                continue;
            }
            let role = if u["super_user"].as_bool() == Some(true) { "super_user".to_string() } else { self.ensure_role(u["role"].as_str().unwrap_or("user")).map_err(internal)? };
            let now = stamp();
            let user = StoredUser { username: name.into(), password_hash: hash.into(), role_id: role, active: u["active"].as_bool().unwrap_or(true), token_generation: 0, created: now, updated: now };
            self.put_user(user).map_err(internal)?;
        }
        std::fs::rename(path, path.with_extension("json.imported"))?;
        Ok(())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn put_user(&self, user: StoredUser) -> Result<(), ServiceError> {
        self.storage.write(SYSTEM_DATABASE, USERS, WriteMode::Upsert, vec![user.record()])?;
        self.state.write().users.insert(user.username.clone(), user);
        self.changed();
        Ok(())
    }

    fn put_role(&self, role: Role) -> Result<(), ServiceError> {
        self.storage.write(SYSTEM_DATABASE, ROLES, WriteMode::Upsert, vec![role.record()])?;
        self.state.write().roles.insert(role.id.clone(), role);
        self.changed();
        Ok(())
    }

    /// Whether any active super_user exists (first start creates one when none does).
    pub fn has_super_user(&self) -> bool {
        let state = self.state.read();
        state.users.values().any(|u| u.active && state.roles.get(&u.role_id).is_some_and(|r| r.parsed.super_user))
    }

    /// Start-up with no active super_user (an older version let the last one be dropped,
    /// deactivated or demoted): gives the built-in `super_user` role super_user again and makes
    /// `username` an active super_user, with `password` when given (else the password stays).
    /// Returns false when `username` does not exist (the caller creates it).
    pub fn repair_super_user(&self, username: &str, password: Option<&str>) -> Result<bool, ServiceError> {
        let new_hash = password.map(hash_password).transpose()?;
        let _change = self.changes.lock();
        let builtin = self.state.read().roles.get("super_user").cloned();
        match builtin {
            Some(role) if role.parsed.super_user => {}
            Some(mut role) => {
                role.permission = json!({"super_user": true});
                role.parsed = Arc::new(Permissions::parse(&role.permission)?);
                role.updated = stamp();
                self.put_role(role)?;
            }
            None => {
                let now = stamp();
                let permission = json!({"super_user": true});
                let parsed = Arc::new(Permissions::parse(&permission)?);
                self.put_role(Role { id: "super_user".into(), name: "super_user".into(), permission, parsed, created: now, updated: now })?;
            }
        }
        let Some(mut user) = self.state.read().users.get(username).cloned() else { return Ok(false) };
        user.role_id = "super_user".into();
        user.active = true;
        if let Some(hash) = new_hash {
            user.password_hash = hash;
        }
        user.token_generation = user.token_generation.wrapping_add(1);
        user.updated = stamp();
        self.put_user(user)?;
        Ok(true)
    }

    fn role_by_name(&self, name: &str) -> Option<Role> {
        let state = self.state.read();
        state.roles.values().find(|r| r.name == name).or_else(|| state.roles.get(name)).cloned()
    }

    /// The role named `name`, created with no permissions when missing (the command line's
    /// `user add --role`).
    pub fn ensure_role(&self, name: &str) -> Result<String, ServiceError> {
        match self.role_by_name(name) {
            Some(role) => Ok(role.id),
            None => Ok(self.add_role(name, json!({}), None)?.id),
        }
    }

    pub fn add_role(&self, name: &str, permission: Value, id: Option<String>) -> Result<Role, ServiceError> {
        let _change = self.changes.lock();
        if name.trim().is_empty() {
            return Err(ServiceError::RolePermissions(vec!["Role can't be blank".into()]));
        }
        let parsed = Arc::new(Permissions::parse(&permission)?);
        if self.role_by_name(name).is_some_and(|r| r.name == name) {
            return Err(ServiceError::Conflict(format!("A role with name '{name}' already exists")));
        }
        // HarperDB 4.7's role id is the role's name (drop_role and alter_role take it).
        let id = id.filter(|i| !i.is_empty()).unwrap_or_else(|| name.to_string());
        if self.state.read().roles.contains_key(&id) {
            return Err(ServiceError::Conflict(format!("A role with id '{id}' already exists")));
        }
        let now = stamp();
        let role = Role { id, name: name.to_string(), permission, parsed, created: now, updated: now };
        self.put_role(role.clone())?;
        Ok(role)
    }

    pub fn alter_role(&self, id: &str, name: Option<String>, permission: Value) -> Result<Role, ServiceError> {
        let _change = self.changes.lock();
        let mut role = self.state.read().roles.get(id).cloned().ok_or_else(|| ServiceError::NotFound("Role not found".into()))?;
        if let Some(name) = name.filter(|n| *n != role.name) {
            if self.role_by_name(&name).is_some_and(|r| r.name == name) {
                return Err(ServiceError::Conflict(format!("A role with name '{name}' already exists")));
            }
            role.name = name;
        }
        let parsed = Arc::new(Permissions::parse(&permission)?);
        if role.parsed.super_user && !parsed.super_user {
            // Without a super_user nobody can grant one back through the API.
            if role.id == "super_user" {
                return Err(ServiceError::Conflict("The super_user role cannot be altered to lose super_user".into()));
            }
            let state = self.state.read();
            if !state.users.values().any(|u| u.role_id != role.id && u.active && is_super_role(&state, &u.role_id)) {
                return Err(ServiceError::Conflict(format!("Cannot alter role {}: it would leave no active super_user", role.name)));
            }
        }
        role.parsed = parsed;
        role.permission = permission;
        role.updated = stamp();
        self.put_role(role.clone())?;
        Ok(role)
    }

    /// Drops a role no user has; returns its name.
    pub fn drop_role(&self, id: &str) -> Result<String, ServiceError> {
        let _change = self.changes.lock();
        let role = self.state.read().roles.get(id).cloned().ok_or_else(|| ServiceError::NotFound("Role not found".into()))?;
        if self.state.read().users.values().any(|u| u.role_id == role.id) {
            return Err(ServiceError::Conflict(format!("Cannot drop role {} as it has active user(s) tied to this role", role.name)));
        }
        self.storage.delete(SYSTEM_DATABASE, ROLES, vec![Value::String(role.id.clone())])?;
        self.state.write().roles.remove(&role.id);
        self.changed();
        Ok(role.name)
    }

    pub fn list_roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.state.read().roles.values().cloned().collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles
    }

    /// Adds a user (hashing the password: slow, call off the async workers).
    pub fn add_user(&self, username: &str, password: &str, role: &str, active: bool) -> Result<(), ServiceError> {
        if username.trim().is_empty() {
            return Err(ServiceError::BadRequest("Username can't be blank".into()));
        }
        if password.is_empty() {
            return Err(ServiceError::BadRequest("Password can't be blank".into()));
        }
        if role.is_empty() {
            return Err(ServiceError::BadRequest("Role can't be blank".into()));
        }
        let hash = hash_password(password)?;
        let _change = self.changes.lock();
        let role = self.role_by_name(role).ok_or_else(|| ServiceError::NotFound(format!("{role} role not found")))?;
        if self.state.read().users.contains_key(username) {
            return Err(ServiceError::Conflict(format!("User {username} already exists")));
        }
        let now = stamp();
        // A random first generation: tokens of an earlier user of the same name (dropped, then
        // added again) never match it.
        let token_generation = rand::random::<u64>() >> 1;
        self.put_user(StoredUser { username: username.into(), password_hash: hash, role_id: role.id, active, token_generation, created: now, updated: now })
    }

    /// Changes a user. A new password or deactivation ends the user's tokens.
    pub fn alter_user(&self, username: &str, password: Option<&str>, role: Option<&str>, active: Option<bool>) -> Result<(), ServiceError> {
        let new_hash = match password {
            Some("") => return Err(ServiceError::BadRequest("Password can't be blank".into())),
            Some(p) => Some(hash_password(p)?),
            None => None,
        };
        let _change = self.changes.lock();
        let mut user = self.state.read().users.get(username).cloned().ok_or_else(|| ServiceError::NotFound(format!("User {username} does not exist")))?;
        if let Some(hash) = new_hash {
            user.password_hash = hash;
            user.token_generation = user.token_generation.wrapping_add(1);
        }
        if let Some(role) = role {
            user.role_id = self.role_by_name(role).ok_or_else(|| ServiceError::NotFound(format!("{role} role not found")))?.id;
        }
        if let Some(active) = active {
            if !active && user.active {
                user.token_generation = user.token_generation.wrapping_add(1);
            }
            user.active = active;
        }
        {
            let state = self.state.read();
            let was_super = state.users.get(username).is_some_and(|u| u.active && is_super_role(&state, &u.role_id));
            if was_super && !(user.active && is_super_role(&state, &user.role_id)) && !other_active_super_user(&state, username) {
                return Err(ServiceError::Conflict(format!(
                    "Cannot deactivate or demote {username}: it is the last active super_user"
                )));
            }
        }
        user.updated = stamp();
        self.put_user(user)
    }

    pub fn drop_user(&self, username: &str) -> Result<(), ServiceError> {
        let _change = self.changes.lock();
        {
            let state = self.state.read();
            let Some(user) = state.users.get(username) else {
                return Err(ServiceError::NotFound(format!("User {username} does not exist")));
            };
            if user.active && is_super_role(&state, &user.role_id) && !other_active_super_user(&state, username) {
                return Err(ServiceError::Conflict(format!("Cannot drop {username}: it is the last active super_user")));
            }
        }
        self.storage.delete(SYSTEM_DATABASE, USERS, vec![Value::String(username.to_string())])?;
        self.state.write().users.remove(username);
        self.changed();
        Ok(())
    }

    /// A user as `user_info` / `list_users` show them: no password, the role record inlined.
    pub fn user_json(&self, username: &str) -> Option<Value> {
        let state = self.state.read();
        let u = state.users.get(username)?;
        let mut m = Map::new();
        m.insert("username".into(), json!(u.username));
        m.insert("active".into(), json!(u.active));
        m.insert("role".into(), state.roles.get(&u.role_id).map(Role::to_json).unwrap_or(Value::Null));
        m.insert("__createdtime__".into(), json!(u.created));
        m.insert("__updatedtime__".into(), json!(u.updated));
        Some(Value::Object(m))
    }

    pub fn usernames(&self) -> Vec<String> {
        self.state.read().users.keys().cloned().collect()
    }

    /// The user as authenticated, if they exist and are active.
    pub fn user(&self, username: &str) -> Option<User> {
        let state = self.state.read();
        let u = state.users.get(username).filter(|u| u.active)?;
        let role = state.roles.get(&u.role_id)?;
        Some(User {
            username: u.username.clone(),
            role: role.name.clone(),
            super_user: role.parsed.super_user,
            cluster_user: role.parsed.cluster_user,
            permissions: role.parsed.clone(),
            token_generation: u.token_generation,
        })
    }

    /// Checks a password off the async workers, throttled per client address and user name:
    /// after [`FREE_FAILURES`] attempts without a success, each further attempt must come at
    /// least 250 ms (doubling, up to 5 s) after the previous one or is refused at once. An
    /// attempt counts when it starts, so parallel guesses cannot all slip through. Hashing takes
    /// one of a fixed number of slots (a short bounded queue in front); past it the login is
    /// refused at once.
    pub async fn login(self: &Arc<Self>, client: Option<std::net::IpAddr>, username: &str, password: &str, log_failed: bool) -> Result<User, LoginRefused> {
        let key: AttemptKey = (client, username.to_string());
        {
            let mut failures = self.failures.lock();
            let now = Instant::now();
            if failures.get(&key).is_some_and(|a| now.saturating_duration_since(a.last) > FAILURE_MEMORY) {
                failures.remove(&key);
            }
            if let Some(a) = failures.get(&key) {
                if let Some(wait) = throttle_wait(a.count) {
                    let until = a.last + wait;
                    if now < until {
                        let left = until.saturating_duration_since(now);
                        return Err(LoginRefused::Throttled { retry_after: left.as_secs() + u64::from(left.subsec_nanos() > 0) });
                    }
                }
            }
            if !failures.contains_key(&key) {
                make_room(&mut failures);
            }
            let entry = failures.entry(key.clone()).or_insert(Attempts { count: 0, last: now });
            *entry = Attempts { count: entry.count.saturating_add(1), last: now };
        };
        let permit = self.hash_slot().await.ok_or(LoginRefused::Busy)?;
        let (users, name, pass) = (self.clone(), username.to_string(), password.to_string());
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            users.verify(&name, &pass)
        })
        .await
        .map_err(|_| LoginRefused::Failed)?;
        match verified {
            Ok(user) => {
                self.failures.lock().remove(&key);
                Ok(user)
            }
            Err(reason) => {
                let count = self.failures.lock().get(&key).map(|a| a.count).unwrap_or(1);
                let (who, from) = (loggable(username), client.map(|c| c.to_string()).unwrap_or_else(|| "-".into()));
                if log_failed {
                    tracing::warn!(target: "opshost::audit", "login failed for user {who} from {from} ({reason:?}, {count} attempts)");
                } else {
                    tracing::debug!("login failed for user {who} from {from}: {reason:?}");
                }
                Err(LoginRefused::Failed)
            }
        }
    }

    /// A password-hashing slot: at once when one is free, else after a short wait in a small
    /// queue (clients logging in together after a restart emptied the login cache); `None`
    /// when the queue is full or the wait runs out, so a flood is refused, never queued.
    async fn hash_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = self.hash_slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        let limit = HASH_QUEUE_PER_SLOT * hash_slot_count();
        if self.hash_waiters.fetch_add(1, Ordering::AcqRel) >= limit {
            self.hash_waiters.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let waited = tokio::time::timeout(HASH_WAIT, self.hash_slots.clone().acquire_owned()).await;
        self.hash_waiters.fetch_sub(1, Ordering::AcqRel);
        waited.ok()?.ok()
    }

    /// Checks a password. Slow on purpose (argon2): callers cache successful logins.
    pub fn verify(&self, username: &str, password: &str) -> Result<User, LoginError> {
        let stored = self.state.read().users.get(username).cloned();
        let Some(stored) = stored else {
            // Spend the same time as a real check so user names cannot be probed by timing.
            let _ = Argon2::default().hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng));
            return Err(LoginError::UnknownUser);
        };
        let parsed = PasswordHash::new(&stored.password_hash).map_err(|_| LoginError::WrongPassword)?;
        Argon2::default().verify_password(password.as_bytes(), &parsed).map_err(|_| LoginError::WrongPassword)?;
        self.user(username).ok_or(LoginError::Inactive)
    }
}

fn times(row: &Value) -> (f64, f64) {
    let t = |k: &str| row.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    (t("__createdtime__"), t("__updatedtime__"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::storage::Storage;

    fn service() -> (Arc<UserService>, Arc<Storage>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("opshost-users-{}", uuid::Uuid::new_v4().simple()));
        let storage = Arc::new(Storage::open(&dir.join("db"), false).expect("storage"));
        (UserService::open(&dir, storage.clone()).expect("open"), storage, dir)
    }

    #[test]
    fn users_and_roles_persist_with_hashed_passwords() {
        let (users, storage, dir) = service();
        let role = users.add_role("reader", json!({"dev": {"tables": {"dog": {"read": true}}}}), None).expect("role");
        users.add_user("ann", "s3cret", "reader", true).expect("add");
        assert!(matches!(users.add_user("ann", "x", "reader", true), Err(ServiceError::Conflict(_))));
        assert!(matches!(users.add_user("bob", "x", "nosuch", true), Err(ServiceError::NotFound(m)) if m == "nosuch role not found"));
        assert!(matches!(users.drop_role(&role.id), Err(ServiceError::Conflict(_))));
        drop(users);
        let users = UserService::open(&dir, storage).expect("reopen");
        let ann = users.verify("ann", "s3cret").expect("login");
        assert!(!ann.super_user && ann.permissions.table("dev", "dog").is_some_and(|t| t.read && !t.insert));
        assert_eq!(users.verify("ann", "wrong").err(), Some(LoginError::WrongPassword));
        assert!(!users.user_json("ann").expect("json").to_string().contains("s3cret"));
        users.alter_user("ann", None, None, Some(false)).expect("deactivate");
        assert_eq!(users.verify("ann", "s3cret").err(), Some(LoginError::Inactive));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn permission_json_is_checked() {
        assert!(Permissions::parse(&json!({"super_user": "yes"})).is_err());
        assert!(Permissions::parse(&json!({"dev": {"tables": {"dog": {"read": 1}}}})).is_err());
        assert!(Permissions::parse(&json!({"dev": {}})).is_err());
        let p = Permissions::parse(&json!({"structure_user": ["dev"], "dev": {"tables": {"dog": {"read": true, "attribute_permissions": [{"attribute_name": "name", "read": true}]}}}})).expect("ok");
        assert!(p.structure("dev") && !p.structure("prod"));
        assert_eq!(p.table("dev", "dog").expect("t").attributes, vec![("name".to_string(), true)]);
    }

    #[test]
    fn the_last_super_user_stays_and_a_start_without_one_is_repaired() {
        let (users, storage, dir) = service();
        users.add_user("root", "pw", "super_user", true).expect("add");
        assert!(matches!(users.alter_user("root", None, None, Some(false)), Err(ServiceError::Conflict(_))));
        assert!(matches!(users.alter_user("root", None, Some("cluster_user"), None), Err(ServiceError::Conflict(_))));
        assert!(matches!(users.drop_user("root"), Err(ServiceError::Conflict(_))));
        assert!(matches!(users.alter_role("super_user", None, json!({})), Err(ServiceError::Conflict(_))));
        assert!(users.has_super_user());
        // A store an older version left without a super_user (written around the checks).
        let mut root = users.state.read().users.get("root").cloned().expect("root");
        root.active = false;
        users.put_user(root).expect("put");
        drop(users);
        let users = UserService::open(&dir, storage).expect("reopen");
        assert!(!users.has_super_user());
        assert!(!users.repair_super_user("nobody", None).expect("repair"));
        assert!(users.repair_super_user("root", Some("new-pw")).expect("repair"));
        assert!(users.has_super_user());
        assert!(users.verify("root", "new-pw").expect("login").super_user);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn parallel_guesses_count_as_they_start_and_are_refused_not_delayed() {
        let (users, _storage, dir) = service();
        users.add_user("ann", "pw", "cluster_user", true).expect("add");
        let client = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        for _ in 0..FREE_FAILURES {
            assert_eq!(users.login(client, "ann", "wrong", false).await.err(), Some(LoginRefused::Failed));
        }
        // As if the next guesses came at once (a slow hash must not make this test flaky).
        users.failures.lock().get_mut(&(client, "ann".to_string())).expect("counted").last = Instant::now();
        for _ in 0..3 {
            assert!(matches!(users.login(client, "ann", "pw", false).await, Err(LoginRefused::Throttled { retry_after: 1.. })));
        }
        // Another client, or another name, is not held back.
        assert!(users.login(Some(std::net::IpAddr::from([10, 0, 0, 2])), "ann", "pw", false).await.is_ok());
        // The failure map never forgets a hot entry for a spray of fresh ones.
        {
            let mut map = users.failures.lock();
            for i in 0..MAX_TRACKED + 10 {
                make_room(&mut map);
                map.insert((None, format!("spray{i}")), Attempts { count: 1, last: Instant::now() });
            }
            assert!(map.len() <= MAX_TRACKED);
            assert!(map.contains_key(&(client, "ann".to_string())));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn names_in_log_lines_are_escaped() {
        assert_eq!(loggable("x\n2099 INFO forged"), r#""x\n2099 INFO forged""#);
    }
}
