//! `POST /api/v1/transmissions`: PowerMTA's HTTP injection (SparkPost-compatible subset; the
//! work is in `ingress::transmissions`). Authorised by `Authorization: <api-key>` of
//! `<transmissions-api>`, or by the management API's own rules (an `X-API-Key`, or an
//! `http-access` level of operator or more). Answers use SparkPost's shapes: 200
//! `{"results": …}` once every message is durable; errors `{"errors": [{message,
//! description}]}` with 400, 401, 403, 413, 415 or 503.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::access::Level;
use super::api::Shared;
use crate::ingress::transmissions::{Accepted, Transmission, TxError, inject};

/// Largest request taken (the message is checked against the source's max-message-size too).
pub const MAX_REQUEST: usize = 64 << 20;

/// SparkPost's answer to an accepted transmission.
#[derive(Serialize, ToSchema)]
pub struct Results {
    results: Accepted,
}

/// SparkPost's error shape.
#[derive(Serialize, ToSchema)]
pub struct Errors {
    errors: Vec<ErrorItem>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorItem {
    message: String,
    description: String,
}

fn error(status: StatusCode, message: &str, description: &str) -> Response {
    let item = ErrorItem { message: message.to_string(), description: description.to_string() };
    (status, Json(Errors { errors: vec![item] })).into_response()
}

/// `None` when the client may inject, else the refusal.
fn refusal(state: &super::api::ApiState, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    let config = state.config();
    let keys: Vec<String> = config
        .blocks_of("transmissions-api")
        .flat_map(|b| {
            b.settings.all(crate::config::Dir::ApiKey).iter().map(|e| e.value.to_string()).collect::<Vec<_>>()
        })
        .collect();
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::trim);
    if given.is_some_and(|g| keys.iter().any(|k| k == g)) {
        return None;
    }
    let x_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if state.access.load().level(peer.ip(), x_key) >= Level::Operator {
        return None;
    }
    Some(match given {
        Some(_) => error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized.",
            "the Authorization key matches no transmissions-api api-key",
        ),
        None => {
            error(StatusCode::FORBIDDEN, "Forbidden.", "send Authorization: <api-key> (a <transmissions-api> api-key)")
        }
    })
}

/// HTTP injection (SparkPost-compatible subset): return_path, campaign_id (job id), options.smtputf8, recipients, content.email_rfc822. 200 only once the messages are durable.
///
/// Authorization: <api-key> of <transmissions-api>, or X-API-Key / an http-access level of
/// operator. Governed by <source {transmissions-api}>. Errors are {errors:[{message,description}]}.
#[utoipa::path(post, path = "/api/v1/transmissions", tag = "transmissions", request_body = Transmission,
    security(("transmissions_key" = []), ("api_key" = []), ()),
    responses(
        (status = 200, description = "every message is durable", body = Results),
        (status = 400, description = "invalid or unsupported", body = Errors),
        (status = 401, description = "wrong key", body = Errors),
        (status = 403, description = "no key, no access", body = Errors),
        (status = 413, description = "too large", body = Errors),
        (status = 415, description = "not JSON", body = Errors),
        (status = 503, description = "spool full", body = Errors)))]
pub async fn transmit(state: Shared, ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request) -> Response {
    if let Some(r) = refusal(&state, peer, request.headers()) {
        return r;
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type.",
            "send Content-Type: application/json",
        );
    }
    let bytes = match Bytes::from_request(request, &()).await {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "Request too large.", &format!("at most {MAX_REQUEST} bytes"));
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "Cannot read the request.", &e.to_string()),
    };
    // log-data of <transmissions-api>: the request as posted (the message is in it).
    if state.config().blocks_of("transmissions-api").any(|b| b.settings.flag(crate::config::Dir::LogData)) {
        crate::smtp::datalog::log(&format!("transmissions API from {peer}"), &bytes);
    }
    let tx: Transmission = match serde_json::from_slice(&bytes) {
        Ok(t) => t,
        // Unknown fields are SparkPost features Ember does not have: say which.
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid request.",
                &format!("unsupported or malformed transmission: {e}"),
            );
        }
    };
    let ctx = state.contexts.load_full();
    match inject(&ctx, tx, peer.ip()).await {
        Ok(accepted) => Json(Results { results: accepted }).into_response(),
        Err(TxError::Invalid(d)) => error(StatusCode::BAD_REQUEST, "Invalid request.", &d),
        Err(TxError::TooLarge(d)) => error(StatusCode::PAYLOAD_TOO_LARGE, "Message too large.", &d),
        Err(TxError::Unavailable(d)) => {
            tracing::warn!("transmissions: refusing a request: {d}");
            error(StatusCode::SERVICE_UNAVAILABLE, "Try again later.", "insufficient system storage")
        }
    }
}
