//! The client against real peers: `receiver.py` for scripted replies and misbehaviour, Postfix's
//! `smtp-sink` for a real implementation. Each test tells one operator story.

mod session;
mod sink;
mod support;
mod tls;
mod transaction;
