//! The management HTTP API on `http-mgmt-port` (docs/operations.md): JSON views and commands for
//! the CLI and the dashboard, `/metrics` for Prometheus, the OpenAPI description. Access follows
//! `http-access` (ordered CIDR → level; unlisted clients get nothing) and `http-api-key`.
//!
//! `api` holds the shared state, the access guard and the router; `routes` the route tables the
//! routers are built from; `openapi` the document derived from the handlers; each other module
//! is one resource. Knows nothing of queue internals beyond the handle's read and command API.

pub mod access;
pub mod admin;
pub mod api;
pub mod cluster;
pub mod domains;
pub mod drain;
pub mod events;
pub mod hygiene;
pub mod jobs;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod queues;
pub mod reqlog;
pub mod routes;
pub mod settings;
pub mod sources;
pub mod status;
pub mod tls;
pub mod tlsrpt;
pub mod transmissions;
pub mod ui;
pub mod vmtas;
