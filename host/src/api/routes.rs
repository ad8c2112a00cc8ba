//! The `POST /` handler: HarperDB's pipeline order (body parse, `operation` present,
//! authentication, lookup, super_user check, then the operation's own validation and work).

use super::error::{json_response, ApiError};
use crate::bindings::{CallContext, OpError};
use crate::answers::{Answers, Question};
use crate::capabilities::Caller;
use crate::runtime::{CallLimits, CallOutcome, Failure, LoadedOperation};
use crate::services::jobs::CreateError;
use crate::{AppState, Restart};
use super::auth::REFRESH_OPERATION;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use std::net::SocketAddr;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// Nothing costly happens before authentication: the Authorization header is checked before
/// the body is read. A request without one may only log in (`create_authentication_tokens`
/// with a username and password in the body), so its body is read up to
/// [`ANONYMOUS_BODY_LIMIT`] within [`ANONYMOUS_BODY_TIMEOUT`]; an authenticated caller's up to
/// `operationsApi.network.maxBodySize`. Body credentials are checked here, throttled, before
/// any call slot is taken.
pub async fn operation(State(app): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // The peer address, set by the server's accept loop (absent when the app is driven
    // without one, e.g. in unit tests).
    let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let settings = app.settings.load_full();
    let (name, body, who) = if headers.contains_key(header::AUTHORIZATION) {
        // The operation is not known yet: a refresh token is accepted here and refused below
        // for any operation but refresh_operation_token.
        let who = app.auth.authenticate(&headers, REFRESH_OPERATION, settings.auth_cache_ttl, settings.log_failed_logins, client).await?;
        let body = read_body(&headers, body, settings.max_body_size, None).await?;
        let name = operation_name(&headers, &body)?;
        if who.refresh_token.is_some() && name != REFRESH_OPERATION {
            return Err(ApiError::Unauthorized("invalid token".into()));
        }
        (name, body, Some(who))
    } else {
        let body = read_body(&headers, body, ANONYMOUS_BODY_LIMIT, Some(ANONYMOUS_BODY_TIMEOUT)).await?;
        let name = operation_name(&headers, &body)?;
        if name != TOKEN_LOGIN {
            return Err(ApiError::Unauthorized("Must login".into()));
        }
        // create_authentication_tokens with username and password in the body: checked here
        // (throttled, no call slot held); the call then runs as that user. Without both, the
        // operation answers (400 for half of them, 401 for neither).
        let who = match serde_json::from_slice::<Credentials>(&body) {
            Ok(Credentials { username: Some(Value::String(u)), password: Some(Value::String(p)) }) if !u.is_empty() && !p.is_empty() => {
                Some(app.auth.login(client, &u, &p, settings.log_failed_logins).await?)
            }
            _ => None,
        };
        (name, body, who)
    };

    let registry = app.registry.load_full();
    let op = registry
        .get(&name)
        .cloned()
        .ok_or_else(|| ApiError::BadRequest(format!("Operation '{name}' not found")))?;
    let super_user = who.as_ref().is_some_and(|w| w.user.super_user);
    if op.info.super_user_only && !super_user {
        return Err(ApiError::SuperUserOnly { operation: name });
    }

    let request_id = next_request_id();
    let caller = match &who {
        Some(w) => Caller {
            username: w.user.username.clone(),
            super_user,
            permissions: (!super_user).then(|| w.user.permissions.clone()),
            refresh_token: w.refresh_token.clone(),
        },
        // Anonymous: no table may be touched; the operation must log in itself.
        None => Caller { permissions: Some(Default::default()), ..Caller::default() },
    };
    let context = CallContext {
        username: caller.username.clone(),
        role: who.as_ref().map(|w| w.user.role.clone()).unwrap_or_default(),
        super_user,
        request_id: request_id.clone(),
        job_id: None,
    };
    // Already checked as JSON (so UTF-8); borrowing avoids copying a bulk body.
    let request = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("Request body must be UTF-8".into()))?;
    // A request answered before by a call that only read, while all it read still holds, gets
    // that answer without a call (answers.rs).
    let question = (settings.answer_cache && Answers::may_keep(&op, request))
        .then(|| Question { operation: &op, caller: &caller, role: &context.role, request });
    if let Some(q) = &question {
        let started = std::time::Instant::now();
        if let Some(answer) = app.answers.get(q, &app.services) {
            op.stats.record(started.elapsed(), false);
            let mut response = json_response(StatusCode::OK, answer);
            response.headers_mut().insert(KEPT_HEADER, header::HeaderValue::from_static("hit"));
            return Ok(response);
        }
    }
    let mut outcome = call(&app, &op, &context, caller.clone(), request, app.call_limits()).await?;
    let trace = match &mut outcome {
        CallOutcome::Answered(Ok(_), effects, trace) if effects.is_empty() => Some(std::mem::take(trace)),
        _ => None,
    };
    let answer = answered(&app, &name, &request_id, outcome)?;
    if !op.info.job {
        let answer = Bytes::from(answer);
        if let (Some(q), Some(trace)) = (&question, trace) {
            app.answers.keep(q, &trace, &answer, &app.services);
        }
        return Ok(json_response(StatusCode::OK, answer));
    }
    start_job(&app, op, context, caller, body, &answer).await
}

/// Marks an answer given from the answer cache (answers.rs).
pub const KEPT_HEADER: &str = "x-opshost-cache";

/// The operation that may log in with credentials in its body.
const TOKEN_LOGIN: &str = "create_authentication_tokens";

/// The most a client that has not authenticated may send: a login body is a few hundred bytes.
pub const ANONYMOUS_BODY_LIMIT: usize = 64 << 10;
/// How long a client that has not authenticated may take to send its (small) body.
const ANONYMOUS_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The login fields of a `create_authentication_tokens` body.
#[derive(serde::Deserialize)]
struct Credentials {
    username: Option<Value>,
    password: Option<Value>,
}

/// Reads a request body of at most `limit` bytes (413 past it: a declared Content-Length is
/// refused before reading anything, a streamed body as soon as it passes the limit), within
/// `deadline` when given.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize, deadline: Option<std::time::Duration>) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::PayloadTooLarge(if limit == ANONYMOUS_BODY_LIMIT {
            format!("Request body too large: at most {limit} bytes before logging in")
        } else {
            format!("Request body larger than operationsApi.network.maxBodySize ({limit} bytes)")
        })
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = http_body_util::Limited::new(body, limit).collect();
    let collected = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, read)
            .await
            .map_err(|_| ApiError::BadRequest("Timed out reading the request body".into()))?,
        None => read.await,
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::BadRequest(format!("Could not read the request body: {e}"))),
    }
}

/// One guest call, waiting for a free instance slot (bursts above the pool size queue rather
/// than fail). The epoch deadline stops a guest only while wasm runs; a guest waiting on a host
/// future (an S3 server that never answers, npm, a slow disk) is stopped here, a little after
/// its time limit: dropping the call's future drops its store and every host future with it.
async fn call(
    app: &AppState,
    op: &LoadedOperation,
    context: &CallContext,
    caller: Caller,
    request: &str,
    limits: CallLimits,
) -> Result<CallOutcome, ApiError> {
    let _slot = app.call_slots.clone().acquire_owned().await.map_err(|_| ApiError::Internal {
        message: "the server is shutting down".into(),
        id: context.request_id.clone(),
    })?;
    let bound = limits.timeout.saturating_add(HOST_AWAIT_GRACE);
    match tokio::time::timeout(bound, app.runtime.call(op, &app.services, context, caller, request, limits)).await {
        Ok(outcome) => Ok(outcome),
        Err(_) => Ok(CallOutcome::Failed(
            Failure::Timeout,
            anyhow::anyhow!("still waiting on the host {bound:?} after the call started; stopped"),
        )),
    }
}

/// How long past its time limit a call may still wait on a host future before it is dropped
/// (the epoch deadline normally ends a busy guest first, with its own error).
const HOST_AWAIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The response body of a call that answered, after acting on its effects; otherwise the
/// error, in HarperDB's shape.
fn answered(app: &AppState, name: &str, request_id: &str, outcome: CallOutcome) -> Result<String, ApiError> {
    match outcome {
        CallOutcome::Answered(Ok(body), effects, _) => {
            if effects.restart {
                let _ = app.restart.send(Restart::Full);
            }
            if effects.restart_service.as_deref().is_some_and(|s| s == "http_workers" || s == "http") {
                let _ = app.restart.send(Restart::Listeners);
            }
            if effects.restart_service.as_deref().is_some_and(|s| s == "clustering" || s == "clustering_config") {
                app.services.cluster.reload(&app.services.config, &app.settings.load().node_name);
            }
            Ok(body)
        }
        CallOutcome::Answered(Err(OpError::Forbidden(_)), effects, _) if !effects.denied.is_empty() => {
            Err(ApiError::TableDenied(effects.denied))
        }
        CallOutcome::Answered(Err(OpError::BadRequest(_)), effects, _) if !effects.role_problems.is_empty() => {
            Err(ApiError::RolePermissions(effects.role_problems))
        }
        CallOutcome::Answered(Err(error), _, _) => Err(ApiError::from(error)),
        CallOutcome::Failed(failure, error) => {
            tracing::error!(request_id = %request_id, operation = %name, "operation failed ({failure:?}): {error:?}");
            let what = match failure {
                Failure::Timeout => "ran past its time limit",
                Failure::Memory => "ran out of memory",
                Failure::Trap => "failed",
            };
            Err(ApiError::Internal { message: format!("Operation '{name}' {what}"), id: request_id.to_string() })
        }
    }
}

/// A job operation accepted the request (`check` is its answer to the check call): record
/// the job, answer with its id, and run the operation again in the background as that job.
/// The queue is bounded (429 past it, before any record is written); when its turn comes the
/// job re-authorizes its user, so a dropped, deactivated or demoted user's queued job does not
/// run with the permissions it was queued with.
async fn start_job(
    app: &Arc<AppState>,
    op: Arc<LoadedOperation>,
    mut context: CallContext,
    caller: Caller,
    body: Bytes,
    check: &str,
) -> Result<Response, ApiError> {
    let jobs = app.services.jobs.clone();
    let (job_type, user) = (op.info.name.clone(), context.username.clone());
    // Writes the record with fsync: on a blocking thread, not on an async worker.
    let created = tokio::task::spawn_blocking(move || jobs.create(&job_type, &user)).await.map_err(|e| {
        tracing::error!(request_id = %context.request_id, "recording a job: {e}");
        ApiError::Internal { message: "could not record the job".into(), id: context.request_id.clone() }
    })?;
    let job = match created {
        Ok(job) => job,
        Err(CreateError::Busy(message)) => return Err(ApiError::TooManyRequests { message, retry_after: JOB_RETRY_AFTER_SECS }),
        Err(CreateError::Failed(e)) => return Err(ApiError::from(OpError::from(e))),
    };
    if app.services.jobs.purge_due() {
        let jobs = app.services.jobs.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = jobs.purge(crate::services::jobs::now_ms()) {
                tracing::warn!("could not purge old job records: {e}");
            }
        });
    }
    let message = serde_json::from_str::<Value>(check)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("Starting job with id {}", job.id));
    context.job_id = Some(job.id.clone());
    let (runner, id) = (app.clone(), job.id.clone());
    let task = tokio::spawn(async move {
        let jobs = runner.services.jobs.clone();
        // Bounded concurrency: a job waits (IN_PROGRESS) for a slot; requests keep flowing.
        let _slot = jobs.slots.clone().acquire_owned().await;
        // Interrupted (by a restart) before it could start: it must not run after all.
        if !jobs.is_running(&id) {
            return;
        }
        let name = op.info.name.clone();
        let result = match reauthorize(&runner, &op, &mut context, caller) {
            Err(refused) => Err(refused),
            Ok(caller) => {
                let request = std::str::from_utf8(&body).unwrap_or_default();
                match call(&runner, &op, &context, caller, request, runner.job_limits()).await {
                    Ok(outcome) => answered(&runner, &name, &context.request_id, outcome).map_err(|e| e.message()),
                    Err(e) => Err(e.message()),
                }
            }
        };
        let outcome = result.map(|body| {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let message = v.get("message").and_then(Value::as_str).map(str::to_string);
            (message.unwrap_or_else(|| format!("Successfully completed job: {id}")), v.get("result").cloned())
        });
        let recorded = tokio::task::spawn_blocking({
            let id = id.clone();
            move || jobs.finish(&id, outcome)
        })
        .await;
        match recorded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(job = %id, "could not record the end of a job: {e}"),
            Err(e) => tracing::error!(job = %id, "could not record the end of a job: {e}"),
        }
    });
    app.services.jobs.attach(&job.id, task.abort_handle());
    Ok(json_response(StatusCode::OK, serde_json::json!({ "message": message, "job_id": job.id }).to_string()))
}

/// Seconds a client is told to wait when the job queue is full.
const JOB_RETRY_AFTER_SECS: u64 = 30;

/// The caller of a queued job as they are now: the user must still exist and be active, and
/// gets their current role and permissions; a super_user-only operation needs a super_user
/// still. `Err` is the job's error message.
fn reauthorize(app: &AppState, op: &LoadedOperation, context: &mut CallContext, caller: Caller) -> Result<Caller, String> {
    let Some(user) = app.services.users.user(&caller.username) else {
        return Err(format!("User '{}' no longer exists or is not active; the job did not run", caller.username));
    };
    if op.info.super_user_only && !user.super_user {
        return Err(format!(
            "Operation '{}' is restricted to 'super_user' roles and '{}' no longer has one; the job did not run",
            op.info.name, user.username
        ));
    }
    context.super_user = user.super_user;
    context.role = user.role.clone();
    Ok(Caller {
        username: user.username,
        super_user: user.super_user,
        permissions: (!user.super_user).then_some(user.permissions),
        refresh_token: caller.refresh_token,
    })
}

/// Steps 1 and 2 of the pipeline: the body must be JSON with a string `operation`.
fn operation_name(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase());
    let missing = || ApiError::BadRequest("Request body must include an 'operation' property.".into());
    match content_type.as_deref() {
        Some(ct) if ct == "application/json" || ct.ends_with("+json") => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::BadRequest(
                    "Body cannot be empty when content-type is set to 'application/json'".into(),
                ));
            }
            // Only `operation` is decoded here; the rest is checked for syntax and skipped
            // (a bulk insert body is megabytes the operation decodes itself).
            match serde_json::from_slice::<Head>(body) {
                Ok(Head { operation: Some(Value::String(name)) }) => Ok(name),
                Ok(_) => Err(missing()),
                Err(e) if e.is_data() => Err(missing()),
                Err(e) => Err(ApiError::BadRequest(e.to_string())),
            }
        }
        // HarperDB does not parse text/plain: it reports the missing operation.
        Some("text/plain") => Err(missing()),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!("Unsupported Media Type: {other}"))),
        None => Err(ApiError::UnsupportedMediaType("Unsupported Media Type: undefined".into())),
    }
}

/// The part of a request body the pipeline itself needs.
#[derive(serde::Deserialize)]
struct Head {
    operation: Option<Value>,
}

/// A request id unique across restarts of this host: a random per-process prefix and a
/// counter (cheaper than a random UUID per request, and still unguessable across processes).
pub fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}
