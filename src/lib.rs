//! Ember: a PowerMTA-compatible outbound mail transfer agent.
//!
//! The crate is laid out along the flow of a message (see `docs/architecture.md`); this first layer
//! holds the configuration engine and the command line.

pub mod answer;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod dkim;
pub mod dummy_smtp;
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
