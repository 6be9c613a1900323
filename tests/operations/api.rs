//! The JSON API: access levels, refusals, and each endpoint against a running daemon.
