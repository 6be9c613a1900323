//! `GET /api/v1/events`: a recipient's, a message's or a job's history (reception, every
//! attempt with the reply and the MX, the outcome, complaints, suppression), answered from the
//! event log's index; and the log's and sinks' status for `show status`.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{Envelope, Shared, envelope, refuse};
use super::openapi::ReadRefusals;
use crate::events::Event;
use crate::events::history::{self, Query as HistoryQuery, QueryError};

/// What to look up: at least one of `rcpt`, `message_id`, `job`, `since`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// A recipient address (without regard to case)
    rcpt: Option<String>,
    /// A message's spool id (16 hex digits, as in the 250 reply)
    message_id: Option<String>,
    /// A job id
    job: Option<String>,
    /// Only events at or after this time: Unix seconds or RFC 3339
    since: Option<String>,
    /// At most this many events, the newest ones (default 1000, at most 100000)
    limit: Option<usize>,
}

/// The matching events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct History {
    /// How many events are listed.
    count: usize,
    events: Vec<Event>,
}

/// A recipient's, a message's or a job's events
///
/// Access level: monitor (or an X-API-Key). Answered from the retained event log (`event-log`,
/// `event-log-retain`); 404 when no event log runs.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "events_history", tag = "events", params(EventFilter),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the events, oldest first", body = Envelope<History>), ReadRefusals))]
pub async fn history(_state: Shared, Query(f): Query<EventFilter>) -> Response {
    let Some(log) = crate::events::current() else {
        return refuse(StatusCode::NOT_FOUND, "no event log runs (event-log, <event-sink>)");
    };
    let query = match HistoryQuery::new(f.rcpt, f.message_id, f.job, f.since.as_deref(), f.limit) {
        Ok(q) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match tokio::task::spawn_blocking(move || history::run(&log, &query)).await {
        Ok(Ok(events)) => envelope(History { count: events.len(), events }),
        Ok(Err(QueryError::Log(e))) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Ok(Err(e)) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
