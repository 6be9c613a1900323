//! The web dashboard at `/ui`: three files compiled into the binary (`ui/index.html`, `ui/app.js`,
//! `ui/app.css`), served by exact name — there is no file system behind this route, so no path
//! can reach outside it. The page talks only to this server (its Content-Security-Policy says
//! so), polls the JSON API, and draws its charts itself.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::api::{Failure, refuse};
use super::openapi::ReadRefusals;
use super::routes::Route;

const INDEX: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Only this server; inline styles for the SVG bars; no inline scripts.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Redirects to /ui
///
/// Access level: monitor.
#[utoipa::path(get, path = "/", tag = "dashboard", security((), ("api_key" = [])),
    responses((status = 303, description = "to /ui"), ReadRefusals))]
async fn root() -> Redirect {
    Redirect::to("/ui")
}

/// The dashboard (HTML)
///
/// Access level: monitor.
#[utoipa::path(get, path = "/ui", tag = "dashboard", security((), ("api_key" = [])),
    responses((status = 200, description = "the page", content_type = "text/html", body = String), ReadRefusals))]
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// The dashboard (HTML)
///
/// Access level: monitor.
#[utoipa::path(get, path = "/ui/", tag = "dashboard", security((), ("api_key" = [])),
    responses((status = 200, description = "the page", content_type = "text/html", body = String), ReadRefusals))]
async fn index_slash() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// Dashboard files: app.js, app.css
///
/// Access level: monitor.
#[utoipa::path(get, path = "/ui/{name}", tag = "dashboard", security((), ("api_key" = [])),
    params(("name" = String, Path, description = "app.js, app.css or index.html")),
    responses((status = 200, description = "the file", body = String),
        (status = 404, description = "no such file", body = Failure), ReadRefusals))]
async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "" | "index.html" => asset("text/html; charset=utf-8", INDEX),
        "app.js" => asset("text/javascript; charset=utf-8", APP_JS),
        "app.css" => asset("text/css; charset=utf-8", APP_CSS),
        _ => refuse(StatusCode::NOT_FOUND, &format!("no dashboard file {name:?}")),
    }
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Vec<Route<S>> {
    vec![
        Route::get("/", root),
        Route::get("/ui", index),
        Route::get("/ui/", index_slash),
        Route::get("/ui/{name}", file),
    ]
}
