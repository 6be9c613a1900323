//! The management HTTP API on `http-mgmt-port` (REFERENCE.md §6.2): JSON views of the running
//! daemon for the CLI, and later the dashboard and `/metrics`. Access follows `http-access`
//! (ordered CIDR → level; unlisted clients get nothing) and `http-api-key`.
//!
//! Knows nothing of queue internals beyond the read API it is given.

pub mod access;
pub mod api;
