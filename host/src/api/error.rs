//! The one error type of the HTTP layer and its one mapping to status codes and bodies
//! (HarperDB's texts, one `{"error": ...}` shape; deviations.md).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

// Clone: one verification's outcome is shared by the requests that waited for it (auth.rs).
#[derive(Debug, Clone)]
pub enum ApiError {
    BadRequest(String),
    UnsupportedMediaType(String),
    Unauthorized(String),
    /// A non-super_user called a super_user-only operation.
    SuperUserOnly { operation: String },
    Forbidden(String),
    /// Table or attribute permissions the caller's role lacks (HarperDB's entries).
    TableDenied(Vec<serde_json::Value>),
    /// A role's permission JSON was refused; HarperDB lists each problem.
    RolePermissions(Vec<String>),
    NotFound(String),
    Conflict(String),
    /// The server refuses more of this kind of work right now (login hashing, the job queue);
    /// the client may retry after `retry_after` seconds.
    TooManyRequests { message: String, retry_after: u64 },
    /// The body is larger than the caller may send.
    PayloadTooLarge(String),
    /// A dependency (NATS, for clustering) did not answer in time; the client may retry.
    Unavailable(String),
    /// The operation failed on the server side; the detail is in the log under `id`.
    Internal { message: String, id: String },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "error": m })),
            ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!({ "error": m })),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, json!({ "error": m })),
            ApiError::SuperUserOnly { operation } => (
                StatusCode::FORBIDDEN,
                json!({
                    "error": "This operation is not authorized due to role restrictions and/or invalid database items",
                    "unauthorized_access": [format!("Operation '{operation}' is restricted to 'super_user' roles")],
                    "invalid_schema_items": [],
                }),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, json!({ "error": m })),
            ApiError::TableDenied(entries) => (
                StatusCode::FORBIDDEN,
                json!({
                    "error": "This operation is not authorized due to role restrictions and/or invalid database items",
                    "unauthorized_access": entries,
                    "invalid_schema_items": [],
                }),
            ),
            ApiError::RolePermissions(problems) => (
                StatusCode::BAD_REQUEST,
                json!({
                    "error": ROLE_PERMISSIONS,
                    "main_permissions": problems,
                    "schema_permissions": {},
                }),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": m })),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, json!({ "error": m })),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": m })),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": m })),
            ApiError::TooManyRequests { message, retry_after } => {
                let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, json!({ "error": message }).to_string());
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return response;
            }
            ApiError::Internal { message, id } => {
                (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": format!("{message} (request id {id})") }))
            }
        };
        json_response(status, body.to_string())
    }
}

impl ApiError {
    /// The text a job records when its run ends in this error.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::Unavailable(m)
            | ApiError::TooManyRequests { message: m, .. } => m.clone(),
            ApiError::SuperUserOnly { operation } => format!("Operation '{operation}' is restricted to 'super_user' roles"),
            ApiError::TableDenied(entries) => format!("not authorized: {}", serde_json::Value::from(entries.clone())),
            ApiError::RolePermissions(problems) => format!("{ROLE_PERMISSIONS}: {}", problems.join(", ")),
            ApiError::Internal { message, id } => format!("{message} (request id {id})"),
        }
    }
}

const ROLE_PERMISSIONS: &str = "Errors in the role permissions JSON provided";

/// A JSON body with HarperDB's plain `application/json` content type.
pub fn json_response(status: StatusCode, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl From<crate::bindings::OpError> for ApiError {
    fn from(e: crate::bindings::OpError) -> Self {
        use crate::bindings::OpError;
        match e {
            OpError::BadRequest(m) => ApiError::BadRequest(m),
            OpError::Unauthorized(m) => ApiError::Unauthorized(m),
            OpError::Forbidden(m) => ApiError::Forbidden(m),
            OpError::NotFound(m) => ApiError::NotFound(m),
            OpError::Conflict(m) => ApiError::Conflict(m),
            OpError::Other(m) if m.starts_with(crate::services::UNAVAILABLE_TAG) => {
                ApiError::Unavailable(m[crate::services::UNAVAILABLE_TAG.len()..].to_string())
            }
            OpError::Internal(m) | OpError::Other(m) => {
                let id = super::routes::next_request_id();
                tracing::error!(request_id = %id, "operation reported an internal error: {m}");
                ApiError::Internal { message: m, id }
            }
        }
    }
}
