//! Ember's integration tests, one module per part of the product, linked into one test binary.
//!
//! One binary instead of one per file: each extra binary links the whole `ember` library again
//! (several seconds of a release build apiece), and cargo runs test binaries one after another,
//! so a file with one slow test used to hold the whole suite while the other thread sat idle.
//! In one binary every test shares the same pool of test threads. Tests never depend on running
//! alone: each starts its own daemon, peers and temporary directory on ports the kernel picks, and
//! a peer that needs a fixed port (the MTA-STS policy hosts, on 443) listens on a 127.x address of
//! its test's own.

mod support;

mod adaptive;
mod cluster;
mod config_corpus;
mod config_never_panics;
mod crash;
mod crash_relay;
mod dane;
mod delivery;
mod delivery_directives;
mod delivery_mx;
mod disk_full;
mod dkim;
mod dns_mx;
mod drain;
mod events;
mod fuzz_smoke;
mod hostile;
mod hygiene;
mod ingress;
mod ingress_policy;
mod limits;
mod module_graph;
mod mta_sts;
mod mx_rollup;
mod operations;
mod pattern_lists;
mod reroute;
mod run_daemon;
mod shaping;
mod suppression;
mod unsubscribe;
mod warmup;
