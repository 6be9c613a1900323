//! Request logging of the management API: `http-log-requests` (one log line per request: client,
//! method, path and query, status, time taken), `http-log-data` (also the request body, up to
//! `MAX_LOGGED_BODY` bytes shown; only the management routes, whose bodies are small), and `log-requests` of `<transmissions-api>` (the same line for
//! HTTP injection). Read from the running configuration on every request, so a reload turns it
//! on or off. Headers are never logged: they carry API keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use axum::http::StatusCode;

use super::api::{ApiState, MAX_JSON_BODY, refuse};
use crate::config::{Config, Dir};

/// The most of a request body `http-log-data` writes (the rest is counted, not shown).
pub const MAX_LOGGED_BODY: usize = 2048;

/// Which requests a route group logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The management API (`http-log-requests`, `http-log-data`).
    Management,
    /// Suppression list and unsubscribe routes (`http-log-requests`; bodies, which may be
    /// whole suppression lists, are not logged).
    Lists,
    /// `POST /api/v1/transmissions` (`log-requests` of any `<transmissions-api>`).
    Transmissions,
}

/// What to log for a request under this configuration: (the line, the body).
pub fn wanted(config: &Config, scope: Scope) -> (bool, bool) {
    match scope {
        Scope::Management => (config.global.flag(Dir::HttpLogRequests), config.global.flag(Dir::HttpLogData)),
        Scope::Lists => (config.global.flag(Dir::HttpLogRequests), false),
        Scope::Transmissions => {
            (config.blocks_of("transmissions-api").any(|b| b.settings.flag(Dir::LogRequests)), false)
        }
    }
}

/// The body as a log shows it: UTF-8 (lossy), control characters escaped, cut at
/// `MAX_LOGGED_BODY` bytes.
pub fn shown_body(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_LOGGED_BODY)];
    let mut text: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if bytes.len() > MAX_LOGGED_BODY {
        text.push_str(&format!("… ({} more bytes)", bytes.len() - MAX_LOGGED_BODY));
    }
    text
}

/// The middleware: logs after the response is made, so the line carries its status.
pub async fn log(State((state, scope)): State<(Arc<ApiState>, Scope)>, request: Request, next: Next) -> Response {
    let (line, data) = wanted(&state.config(), scope);
    if !line && !data {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let method = request.method().clone();
    let target = request.uri().path_and_query().map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let started = Instant::now();
    let (request, body) = if data {
        let (parts, body) = request.into_parts();
        // Read at most what the command endpoints take; the handler would refuse more anyway.
        match axum::body::to_bytes(body, MAX_JSON_BODY).await {
            Ok(bytes) => {
                let shown = shown_body(&bytes);
                (Request::from_parts(parts, Body::from(bytes)), Some(shown))
            }
            Err(e) => {
                tracing::info!("http: {peer} {method} {target} -> 413: cannot read the request body: {e}");
                let limit = format!("request body too large (at most {MAX_JSON_BODY} bytes)");
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, &limit);
            }
        }
    } else {
        (request, None)
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis();
    let what = if scope == Scope::Transmissions { "transmissions-api" } else { "http" };
    match body {
        Some(b) if !b.is_empty() => tracing::info!("{what}: {peer} {method} {target} -> {status} ({ms} ms) body: {b}"),
        _ => tracing::info!("{what}: {peer} {method} {target} -> {status} ({ms} ms)"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_escaped_and_cut() {
        assert_eq!(shown_body(b"{\"queue\": \"a\"}\r\n"), "{\\\"queue\\\": \\\"a\\\"}\\r\\n");
        let long = vec![b'x'; MAX_LOGGED_BODY + 5];
        let shown = shown_body(&long);
        assert!(shown.ends_with("… (5 more bytes)"), "{shown}");
        assert_eq!(shown.matches('x').count(), MAX_LOGGED_BODY);
    }

    #[test]
    fn flags_come_from_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let load =
            |text: &str| crate::config::load_str("l.conf", text, dir.path(), crate::config::FileCheck::Warn).config;
        let off = load("");
        assert_eq!(wanted(&off, Scope::Management), (false, false));
        assert_eq!(wanted(&off, Scope::Transmissions), (false, false));
        let on = load(
            "http-log-requests yes\nhttp-log-data yes\n<transmissions-api>\n log-requests yes\n</transmissions-api>\n",
        );
        assert_eq!(wanted(&on, Scope::Management), (true, true));
        assert_eq!(wanted(&on, Scope::Lists), (true, false));
        assert_eq!(wanted(&on, Scope::Transmissions), (true, false));
    }
}
