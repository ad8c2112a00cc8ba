//! The answer cache: a built-in operation's answer kept and given again, while everything it
//! read still holds, to the same request from the same caller (issue 18).
//!
//! Why a kept answer is the answer a fresh call would give: every call runs in a fresh
//! instance, so what it answers depends only on what it is given (the request text, the
//! caller's name, role and permissions) and on what it reads from the host. The host counts
//! every host function a call enters (`runtime::granted_linker`), and a call's answer is kept
//! only when each of them was a read that can tell later whether it still holds: the
//! configuration text and the certificate list by the identity of the text the host serves
//! (a new text on any change), a storage read by the store's change count (`Storage::
//! settled_version`). Anything else (a write, a log line, a clock, a job, WASI, an error
//! converted on the way out) leaves the call unkept. Before a kept answer is given, each of its
//! reads is checked again. Only built-in operations are kept (their source is known not to put
//! the request id into an answer) and never a job's.

use crate::capabilities::Caller;
use crate::runtime::LoadedOperation;
use crate::services::Services;
use axum::body::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Weak};

/// The largest answer kept: bigger ones cost more to keep than to make again.
const MAX_ANSWER: usize = 256 << 10;
/// The largest request looked up or kept: a bulk body is never a repeated read, and hashing
/// it would cost every write.
pub const MAX_REQUEST: usize = 16 << 10;
/// The most answers and bytes (answers and requests) kept; past either, the cache starts over.
const MAX_ENTRIES: usize = 4096;
const MAX_BYTES: usize = 32 << 20;

/// One read a call made, and how to tell whether it still holds.
#[derive(Clone, Debug)]
pub enum Read {
    /// `config.get`: the configuration text the service served.
    Config(Arc<str>),
    /// `certs.list-json`: the certificate list's text the service served.
    Certs(Arc<str>),
    /// `storage.get`: the store's change count before the read.
    Storage(u64),
}

impl Read {
    fn holds(&self, services: &Services) -> bool {
        match self {
            Read::Config(text) => services.config.file_json().is_ok_and(|now| Arc::ptr_eq(text, &now)),
            Read::Certs(text) => services.certs.list_json().is_ok_and(|now| Arc::ptr_eq(text, &now)),
            Read::Storage(version) => services.storage.clone().local().unchanged_since(*version),
        }
    }
}

/// What one call entered of the host: kept in its store, looked at when it answers.
#[derive(Default, Debug)]
pub struct Trace {
    /// Host functions entered (counted by the linker, whatever they are).
    pub calls: u32,
    /// The reads among them, each recorded by the function itself when it succeeded.
    pub reads: Vec<Read>,
}

impl Trace {
    /// Counts one host function entered.
    pub fn entered(&mut self) {
        self.calls = self.calls.saturating_add(1);
    }

    /// Every host function the call entered was a read recorded here.
    fn only_reads(&self) -> bool {
        self.calls as usize == self.reads.len()
    }
}

/// A kept answer and what it was given.
struct Kept {
    operation: Weak<LoadedOperation>,
    username: String,
    role: String,
    super_user: bool,
    /// Kept (not just compared by address) so the address cannot be reused by other permissions.
    permissions: Option<Arc<crate::services::users::Permissions>>,
    request: Box<str>,
    reads: Vec<Read>,
    answer: Bytes,
}

impl Kept {
    /// What the entry holds (the texts its reads keep alive included).
    fn size(&self) -> usize {
        let texts: usize = self
            .reads
            .iter()
            .map(|r| match r {
                Read::Config(t) | Read::Certs(t) => t.len(),
                Read::Storage(_) => 0,
            })
            .sum();
        self.answer.len() + self.request.len() + self.username.len() + self.role.len() + texts + 128
    }

    fn is_for(&self, q: &Question<'_>) -> bool {
        std::ptr::eq(self.operation.as_ptr(), Arc::as_ptr(q.operation))
            && self.super_user == q.caller.super_user
            && self.username == q.caller.username
            && self.role == q.role
            && match (&self.permissions, &q.caller.permissions) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
            && *self.request == *q.request
    }
}

/// One request, as the cache looks it up.
pub struct Question<'a> {
    pub operation: &'a Arc<LoadedOperation>,
    pub caller: &'a Caller,
    pub role: &'a str,
    pub request: &'a str,
}

#[derive(Default)]
struct Entries {
    map: HashMap<u64, Arc<Kept>>,
    bytes: usize,
}

/// The kept answers, by a hash of the question (a collision only replaces an entry: every
/// lookup compares the whole question).
#[derive(Default)]
pub struct Answers {
    entries: Mutex<Entries>,
    hasher: std::collections::hash_map::RandomState,
}

impl Answers {
    /// Whether answers to this request may be kept at all.
    pub fn may_keep(operation: &LoadedOperation, request: &str) -> bool {
        operation.builtin && !operation.info.job && !operation.grants.has("wasi") && request.len() <= MAX_REQUEST
    }

    fn hash(&self, q: &Question<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        (Arc::as_ptr(q.operation) as usize).hash(&mut h);
        q.caller.username.hash(&mut h);
        q.role.hash(&mut h);
        q.caller.super_user.hash(&mut h);
        q.request.hash(&mut h);
        h.finish()
    }

    /// The kept answer to `q`, if there is one and everything it read still holds.
    pub fn get(&self, q: &Question<'_>, services: &Services) -> Option<Bytes> {
        let key = self.hash(q);
        let kept = self.entries.lock().map.get(&key).cloned()?;
        if !kept.is_for(q) || !kept.reads.iter().all(|r| r.holds(services)) {
            return None;
        }
        Some(kept.answer.clone())
    }

    /// Keeps `answer` when the call that made it only read what can be checked again, and
    /// every one of those reads still holds now (a change that started during the call would
    /// otherwise be kept as if it had not happened).
    pub fn keep(&self, q: &Question<'_>, trace: &Trace, answer: &Bytes, services: &Services) {
        if answer.len() > MAX_ANSWER || !trace.only_reads() || !trace.reads.iter().all(|r| r.holds(services)) {
            return;
        }
        let kept = Arc::new(Kept {
            operation: Arc::downgrade(q.operation),
            username: q.caller.username.clone(),
            role: q.role.to_string(),
            super_user: q.caller.super_user,
            permissions: q.caller.permissions.clone(),
            request: q.request.into(),
            reads: distinct(&trace.reads),
            answer: answer.clone(),
        });
        if kept.size() > MAX_BYTES / 8 {
            return;
        }
        let key = self.hash(q);
        let mut entries = self.entries.lock();
        if entries.map.len() >= MAX_ENTRIES || entries.bytes + kept.size() > MAX_BYTES {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += kept.size();
        if let Some(old) = entries.map.insert(key, kept) {
            entries.bytes -= old.size();
        }
    }

    /// Forgets every kept answer.
    pub fn clear(&self) {
        let mut entries = self.entries.lock();
        entries.map.clear();
        entries.bytes = 0;
    }
}

/// The reads to check again, each once: storage's by its earliest count (the answer holds
/// only while no change has started since its first read), texts by identity.
fn distinct(reads: &[Read]) -> Vec<Read> {
    let mut out: Vec<Read> = Vec::new();
    for read in reads {
        let seen = out.iter_mut().find_map(|r| match (r, read) {
            (Read::Storage(a), Read::Storage(b)) => {
                *a = (*a).min(*b);
                Some(())
            }
            (Read::Config(a), Read::Config(b)) | (Read::Certs(a), Read::Certs(b)) if Arc::ptr_eq(a, b) => Some(()),
            _ => None,
        });
        if seen.is_none() {
            out.push(read.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked_once_each() {
        let (a, b): (Arc<str>, Arc<str>) = ("{}".into(), "{}".into());
        let reads = [Read::Storage(9), Read::Config(a.clone()), Read::Storage(4), Read::Config(a.clone()), Read::Config(b), Read::Storage(7)];
        let out = distinct(&reads);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(matches!(out[0], Read::Storage(4)));
        assert!(matches!(&out[1], Read::Config(t) if Arc::ptr_eq(t, &a)));
    }
}
