//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of this API, kept beside the code in
//! `openapi.json` (a test checks that every route the router serves is described).

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}
