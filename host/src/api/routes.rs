//! The `POST /` handler: HarperDB's pipeline order (body parse, `operation` present,
//! authentication, lookup, super_user check, then the operation's own validation and work).

use super::error::{json_response, ApiError};
use crate::bindings::CallContext;
use crate::runtime::{CallOutcome, Failure};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

pub async fn operation(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let name = operation_name(&headers, &body)?;
    let settings = app.settings.load_full();
    let user = app.auth.authenticate(&headers, settings.auth_cache_ttl).await?;

    let registry = app.registry.load_full();
    let op = registry
        .get(&name)
        .cloned()
        .ok_or_else(|| ApiError::BadRequest(format!("Operation '{name}' not found")))?;
    if op.info.super_user_only && !user.super_user {
        return Err(ApiError::SuperUserOnly { operation: name });
    }

    let request_id = next_request_id();
    let context = CallContext {
        username: user.username,
        role: user.role,
        super_user: user.super_user,
        request_id: request_id.clone(),
    };
    // Waiting for a slot instead of failing keeps bursts above the pool size answerable.
    let _slot = app.call_slots.clone().acquire_owned().await.map_err(|_| ApiError::Internal {
        message: "the server is shutting down".into(),
        id: request_id.clone(),
    })?;
    // Already checked as JSON (so UTF-8); borrowing avoids copying a bulk body.
    let request = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("Request body must be UTF-8".into()))?;
    let limits = app.call_limits();
    let outcome = app.runtime.call(&op, &app.services, &context, request, limits).await;

    match outcome {
        CallOutcome::Answered(Ok(body), effects) => {
            if effects.restart {
                let _ = app.restart.send(());
            }
            Ok(json_response(StatusCode::OK, body))
        }
        CallOutcome::Answered(Err(error), _) => Err(ApiError::from(error)),
        CallOutcome::Failed(failure, error) => {
            tracing::error!(request_id = %request_id, operation = %name, "operation failed ({failure:?}): {error:?}");
            let what = match failure {
                Failure::Timeout => "ran past its time limit",
                Failure::Memory => "ran out of memory",
                Failure::Trap => "failed",
            };
            Err(ApiError::Internal { message: format!("Operation '{name}' {what}"), id: request_id })
        }
    }
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
