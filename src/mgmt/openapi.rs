//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of this API, derived from the handlers'
//! `#[utoipa::path]` annotations and the request and response types (built once, on first
//! request). The unit tests below check it against the route tables (`routes.rs`): every route
//! served is described, and nothing else is.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::api::Failure;
use super::{
    admin, cluster, domains, drain, events, hygiene, jobs, messages, metrics, queues, settings, sources, status,
    tlsrpt, transmissions,
};
use super::{ui, vmtas};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ember management API",
        version = "1",
        description = "JSON envelope {data, status, message} as PowerMTA's. Reads are GET (monitor level), \
                       changes are POST with Content-Type: application/json (operator level). X-API-Key with \
                       an http-api-key value grants admin; without one, the client's address gets the level \
                       of the first http-access rule that lists it (none: 403 for everything).",
    ),
    paths(
        status::status,
        queues::list, queues::detail, queues::set_mode, queues::pause, queues::resume, queues::schedule,
        domains::list, domains::route,
        vmtas::list,
        cluster::show,
        drain::start, drain::show,
        tlsrpt::send,
        jobs::list, jobs::pause, jobs::resume,
        settings::show,
        messages::list, messages::delete,
        events::history,
        sources::disable, sources::enable,
        admin::reload, admin::rotate_acct, admin::rotate_log,
        document,
        metrics::scrape,
        transmissions::transmit,
        hygiene::check, hygiene::add, hygiene::remove, hygiene::import, hygiene::export,
        hygiene::unsubscribe_page, hygiene::unsubscribe,
        ui::root, ui::index, ui::index_slash, ui::file,
    ),
    components(schemas(Failure)),
    modifiers(&KeySchemes),
    tags(
        (name = "status", description = "The daemon's status (`show status`)"),
        (name = "queues", description = "Queues and the operator's queue commands"),
        (name = "domains", description = "Queues summed per destination"),
        (name = "vmtas", description = "Virtual MTAs"),
        (name = "cluster", description = "The nodes of a cluster (cluster-redis)"),
        (name = "drain", description = "Retiring a node: hand its queue over (ember drain)"),
        (name = "tlsrpt", description = "TLS-RPT (RFC 8460) reports of outbound TLS sessions"),
        (name = "jobs", description = "Jobs and pausing them"),
        (name = "messages", description = "Queued recipients"),
        (name = "events", description = "Message history from the event log"),
        (name = "sources", description = "Disabling and enabling source IPs"),
        (name = "settings", description = "Effective configuration"),
        (name = "admin", description = "Reload and log rotation"),
        (name = "suppression", description = "The global suppression list"),
        (name = "unsubscribe", description = "One-click unsubscribe (RFC 8058)"),
        (name = "transmissions", description = "HTTP injection (SparkPost-compatible)"),
        (name = "dashboard", description = "The web dashboard"),
        (name = "meta", description = "This document and the Prometheus metrics"),
    ),
)]
pub struct ApiDoc;

/// The two keys: `X-API-Key` (an `http-api-key`: admin everywhere) and, for injection only,
/// `Authorization` (an `api-key` of `<transmissions-api>`).
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "an http-api-key value: admin level",
            ))),
        );
        components.add_security_scheme(
            "transmissions_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "an api-key of <transmissions-api>",
            ))),
        );
    }
}

/// The refusals of the access guard every read passes.
#[derive(IntoResponses)]
pub enum ReadRefusals {
    /// A malformed parameter: the message says which.
    #[response(status = 400)]
    BadRequest(Failure),
    /// The X-API-Key matches no http-api-key.
    #[response(status = 401)]
    BadKey(Failure),
    /// No http-access level for this client, or one too low.
    #[response(status = 403)]
    Denied(Failure),
}

/// The refusals of the access guard and the JSON body reader every command passes.
#[derive(IntoResponses)]
pub enum WriteRefusals {
    /// Malformed JSON, an unknown field or an invalid value: the message says which.
    #[response(status = 400)]
    BadRequest(Failure),
    /// The X-API-Key matches no http-api-key.
    #[response(status = 401)]
    BadKey(Failure),
    /// No http-access level for this client, one too low, or a cross-site Origin.
    #[response(status = 403)]
    Denied(Failure),
    /// The body is larger than 64 KiB.
    #[response(status = 413)]
    TooLarge(Failure),
    /// Not Content-Type: application/json (while http-csrf-protection is on).
    #[response(status = 415)]
    NotJson(Failure),
}

/// The refusals of the suppression list's commands.
#[derive(IntoResponses)]
pub enum ListRefusals {
    /// An invalid entry or a malformed body: nothing changed.
    #[response(status = 400)]
    BadRequest(Failure),
    /// No http-access level for this client, one too low, or a cross-site Origin.
    #[response(status = 403)]
    Denied(Failure),
    /// The list cannot be written now.
    #[response(status = 503)]
    Unavailable(Failure),
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serialises"));

/// This document
///
/// Access level: monitor (or an X-API-Key).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security((), ("api_key" = [])),
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json", body = Object),
        ReadRefusals))]
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

#[cfg(test)]
mod tests;
