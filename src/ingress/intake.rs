//! Whether this node takes new mail. `ember drain` closes the intake: new SMTP sessions are
//! greeted with `421 4.3.2` and sessions already open get the same answer at their next MAIL, so
//! a load balancer or an injector moves on to another node while this one empties its queue.
//! One intake lives for the whole process (every configuration generation shares it).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::smtp::Reply;

#[derive(Debug, Default)]
pub struct Intake {
    closed: AtomicBool,
}

impl Intake {
    /// From now on no new mail is accepted.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// What a client is told while the node drains.
    pub fn refusal(host: &str) -> Reply {
        Reply::new(421, "4.3.2", format!("{host} draining: this node takes no new mail, try another"))
    }
}
