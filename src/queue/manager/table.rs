//! The manager's queues and their agenda: which queues the next tick must look at.
//!
//! A tick used to visit (and sort) every queue, so a spool with 100,000 deferred domains cost
//! 100,000 visits four times a second to find the few with work due. The table instead visits:
//!
//! - queues **touched** since the last tick: every mutable access marks its queue, so a change an
//!   event made (new mail, an outcome, an operator command) is looked at without each call site
//!   having to remember to schedule it;
//! - **busy** queues, which need a look every tick while they are busy: ready mail that waits for
//!   a connection slot or a rate token, connections idling toward their timeout, notices to send;
//! - queues whose **timer** is due: the earliest of their retry times, the end of a connection
//!   retry wait and the end of backoff.
//!
//! A queue that is none of these is dormant and costs nothing per tick. Timers are a `BTreeSet`
//! ordered by due time (a ready-heap that can also forget a queue when it is re-armed).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::queue::QueueKey;
use crate::queue::state::Queue;

#[derive(Default)]
pub(super) struct QueueTable {
    map: HashMap<QueueKey, Queue>,
    /// Queues to look at on the next tick.
    touched: HashSet<QueueKey>,
    /// (Unix second, queue): when a dormant queue next needs a look.
    timers: BTreeSet<(u64, QueueKey)>,
    /// The time each armed queue's timer is at, to disarm it.
    armed: HashMap<QueueKey, u64>,
}

impl QueueTable {
    pub(super) fn get(&self, key: &QueueKey) -> Option<&Queue> {
        self.map.get(key)
    }

    /// The queue, marked to be looked at on the next tick (whatever the caller changes).
    pub(super) fn get_mut(&mut self, key: &QueueKey) -> Option<&mut Queue> {
        let queue = self.map.get_mut(key)?;
        if !self.touched.contains(key) {
            self.touched.insert(key.clone());
        }
        Some(queue)
    }

    /// The queue, created by `new` when there is none; marked like `get_mut`.
    pub(super) fn get_or_insert_with(&mut self, key: &QueueKey, new: impl FnOnce() -> Queue) -> &mut Queue {
        if !self.touched.contains(key) {
            self.touched.insert(key.clone());
        }
        self.map.entry(key.clone()).or_insert_with(new)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &QueueKey> {
        self.map.keys()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&QueueKey, &Queue)> {
        self.map.iter()
    }

    /// Every queue, mutably: all are marked (operator actions over all queues are rare).
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&QueueKey, &mut Queue)> {
        self.touched.extend(self.map.keys().cloned());
        self.map.iter_mut()
    }

    /// The queues the tick at `now` must look at: the touched ones and those whose timer is due.
    /// The caller hands each back to `settle` once it has looked.
    pub(super) fn due(&mut self, now: u64) -> Vec<QueueKey> {
        while let Some(first) = self.timers.first()
            && first.0 <= now
        {
            let (_, key) = self.timers.pop_first().expect("first exists");
            self.armed.remove(&key);
            self.touched.insert(key);
        }
        let mut due: Vec<QueueKey> = self.touched.drain().collect();
        due.retain(|k| self.map.contains_key(k));
        due
    }

    /// After a tick looked at queue `key`: drops it when it holds nothing worth keeping, keeps it
    /// for the next tick while busy, else arms its timer (or leaves it dormant).
    pub(super) fn settle(&mut self, key: &QueueKey) {
        self.disarm(key);
        let Some(q) = self.map.get(key) else {
            self.touched.remove(key);
            return;
        };
        if disposable(q) {
            self.map.remove(key);
            self.touched.remove(key);
        } else if busy(q) {
            if !self.touched.contains(key) {
                self.touched.insert(key.clone());
            }
        } else {
            self.touched.remove(key);
            if let Some(at) = next_due(q) {
                self.timers.insert((at, key.clone()));
                self.armed.insert(key.clone(), at);
            }
        }
    }

    fn disarm(&mut self, key: &QueueKey) {
        if let Some(at) = self.armed.remove(key) {
            self.timers.remove(&(at, key.clone()));
        }
    }

    /// How many queues the next tick will look at without a new event (busy, touched or due by
    /// then), for tests and status.
    #[cfg(test)]
    pub(super) fn scheduled(&self) -> (usize, usize) {
        (self.touched.len(), self.timers.len())
    }
}

impl<'a> IntoIterator for &'a mut QueueTable {
    type Item = (&'a QueueKey, &'a mut Queue);
    type IntoIter = std::collections::hash_map::IterMut<'a, QueueKey, Queue>;

    /// Like `iter_mut`: every queue is marked.
    fn into_iter(self) -> Self::IntoIter {
        self.touched.extend(self.map.keys().cloned());
        self.map.iter_mut()
    }
}

/// Nothing queued, nothing open, no operator state and no counts to show: the queue can go.
fn disposable(q: &Queue) -> bool {
    q.connections == 0
        && q.ready.is_empty()
        && q.waiting.is_empty()
        && q.held.is_empty()
        && !q.paused
        && q.retry_until.is_none()
        // A mode another node of a cluster entered holds here until it ends, mail or not.
        && q.backoff.is_none()
        && q.delivered + q.bounced + q.deferred == 0
}

/// Needs a look every tick: ready mail that may start a connection as soon as a slot, a rate
/// token or the ramp-up interval allows, idle connections timing out, notices to send.
fn busy(q: &Queue) -> bool {
    !q.idle.is_empty() || !q.notices.is_empty() || (!q.ready.is_empty() && !q.paused && q.retry_until.is_none())
}

/// When a queue that is not busy next needs a look: its earliest waiting work, the end of its
/// retry wait, the end of its backoff.
fn next_due(q: &Queue) -> Option<u64> {
    [q.waiting.keys().next().copied(), q.retry_until, q.backoff.as_ref().and_then(|b| b.until)]
        .into_iter()
        .flatten()
        .min()
}
