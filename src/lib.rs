//! Ember: a PowerMTA-compatible outbound mail transfer agent.
//!
//! The crate is laid out along the flow of a message, and its top-level modules are layered: each
//! uses only the layers below it (`docs/architecture.md`, "Module layering";
//! `tests/module_graph.rs` keeps the graph free of cycles).

pub mod answer;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod dkim;
pub mod dummy_smtp;
pub mod events;
pub mod hygiene;
pub mod ingress;
pub mod logfile;
pub mod message;
pub mod mgmt;
pub mod outcome;
pub mod privileges;
pub mod queue;
pub mod smtp;
pub mod spool;
pub mod telemetry;
pub mod time;
