//! The Studio web console: `GET /` and its assets, embedded in the binary (no CDN, no separate
//! server), off when `localStudio.enabled` is false. Static files only, served without a login;
//! every action the page takes is an ordinary operations-API `POST /`, authorized as any client's.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};

/// One embedded file: its bytes, its content type and a strong ETag (hash of the bytes).
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset = Asset { body: include_bytes!("../../studio/index.html"), content_type: "text/html; charset=utf-8" };

/// The assets under `/studio/`, by file name. Anything else is a 404: no path is ever joined to a
/// folder, so there is nothing to traverse.
fn asset(name: &str) -> Option<Asset> {
    match name {
        "app.js" => Some(Asset { body: include_bytes!("../../studio/app.js"), content_type: "text/javascript; charset=utf-8" }),
        "style.css" => Some(Asset { body: include_bytes!("../../studio/style.css"), content_type: "text/css; charset=utf-8" }),
        "favicon.svg" => Some(Asset { body: include_bytes!("../../studio/favicon.svg"), content_type: "image/svg+xml" }),
        _ => None,
    }
}

/// Scripts and styles from this origin only (no inline script, so an injected record value
/// cannot run), requests to this origin only, never framed (clickjacking of the console).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the console's page.
pub async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    serve(&state, &headers, &INDEX)
}

/// `GET /studio/{file}`: its script, style sheet and icon.
pub async fn file(State(state): State<Arc<AppState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match asset(&name) {
        Some(asset) => serve(&state, &headers, &asset),
        None => super::error::ApiError::NotFound(format!("no Studio file '{name}'")).into_response(),
    }
}

fn serve(state: &AppState, headers: &HeaderMap, asset: &Asset) -> Response {
    if !state.settings.load().studio_enabled {
        return super::error::ApiError::NotFound("the Studio is disabled (localStudio.enabled is false)".to_string()).into_response();
    }
    let etag = etag(asset.body);
    // Revalidated on every load (no-cache), so a new binary's page is never mixed with old
    // cached assets, yet an unchanged file costs only a 304.
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

/// `"<sha256 prefix>"` of the bytes, computed once per file.
fn etag(body: &'static [u8]) -> String {
    use sha2::{Digest, Sha256};
    static TAGS: OnceLock<parking_lot::Mutex<Vec<(usize, String)>>> = OnceLock::new();
    let key = body.as_ptr() as usize;
    let tags = TAGS.get_or_init(Default::default);
    let mut tags = tags.lock();
    if let Some((_, tag)) = tags.iter().find(|(k, _)| *k == key) {
        return tag.clone();
    }
    let tag = format!("\"{}\"", hex::encode(&Sha256::digest(body)[..12]));
    tags.push((key, tag.clone()));
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_files_exist() {
        assert!(asset("app.js").is_some());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }

    #[test]
    fn the_page_has_no_inline_script() {
        let page = std::str::from_utf8(INDEX.body).unwrap_or_default();
        assert!(!page.contains("<script>"), "the CSP forbids inline script");
        // No inline event handlers (` onclick=` and the like): the CSP would block them.
        let handler = page.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler in index.html");
    }
}
