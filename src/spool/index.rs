//! The in-memory index: where every live message is, its recipient states, and how much of each
//! segment is still live.
//!
//! Owns no file and does no I/O: recovery fills it, the writer changes it (only after the records
//! that justify a change are durable), and readers look things up under a read lock.
//!
//! # Memory
//!
//! A live message costs one [`Entry`] (40 bytes) in a `HashMap` slot (plus ~1/8 free slots and a
//! control byte), and one heap block holding its *meta*: the envelope exactly as encoded on disk
//! (id, 13 bytes of state per recipient, sender, addresses, origin). For a one-recipient message
//! with short addresses that is about 170–250 bytes all told; bodies are never kept in memory.
//! Keeping *meta* encoded rather than as an `Envelope` (~280 bytes of struct plus one allocation
//! per string) roughly halves the footprint; decoding on demand costs well under a microsecond.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use super::record;
use crate::message::{Envelope, RecipientState};

/// One live message.
pub struct Entry {
    /// Sequence number of the segment holding its current record.
    pub seg: u64,
    /// Offset of the record (its header) in that segment.
    pub offset: u64,
    /// Total record length, header included.
    pub len: u32,
    /// Recipients not yet in a final state (> 0 while the message is in the index).
    pub pending: u32,
    /// The encoded envelope with current recipient states (see `record`).
    pub meta: Box<[u8]>,
}

/// One segment file.
pub struct Segment {
    /// Index into the spool's directory list.
    pub dir: usize,
    pub path: PathBuf,
    /// Shared with readers, who `pread` bodies; a reader holding it keeps a deleted file readable.
    pub file: Arc<File>,
    /// Bytes written and durable.
    pub size: u64,
    /// Live messages whose current record is here, and the bytes of those records.
    pub live_msgs: u64,
    pub live_bytes: u64,
}

/// What applying one recipient state change did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// No live message with this id.
    Unknown,
    /// The message has fewer recipients.
    NoRecipient,
    /// The recipient was already final; final states are never left.
    Unchanged,
    Changed,
    /// That was the last pending recipient: the message is dead and left the index.
    Died,
}

#[derive(Default)]
pub struct Index {
    pub messages: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    pub segments: BTreeMap<u64, Segment>,
    /// Pending recipients over all live messages.
    pub pending: u64,
    /// Bytes of all live messages' *meta*.
    pub meta_bytes: u64,
}

impl Index {
    /// Indexes a message record. A record for an id already present is a compaction copy, written
    /// later with the then-current states embedded, so it replaces the earlier one.
    pub fn insert(&mut self, id: u64, entry: Entry) {
        if let Some(old) = self.messages.remove(&id) {
            self.forget(&old);
        }
        if entry.pending == 0 {
            return;
        }
        if let Some(s) = self.segments.get_mut(&entry.seg) {
            s.live_msgs += 1;
            s.live_bytes += u64::from(entry.len);
        }
        self.pending += u64::from(entry.pending);
        self.meta_bytes += entry.meta.len() as u64;
        self.messages.insert(id, entry);
    }

    fn forget(&mut self, e: &Entry) {
        if let Some(s) = self.segments.get_mut(&e.seg) {
            s.live_msgs -= 1;
            s.live_bytes -= u64::from(e.len);
        }
        self.pending -= u64::from(e.pending);
        self.meta_bytes -= e.meta.len() as u64;
    }

    /// Would `apply` accept this change? (Used by the writer to validate a request before
    /// writing it; `Unchanged` counts as acceptable.)
    pub fn check(&self, id: u64, rcpt: u32) -> Applied {
        match self.messages.get(&id) {
            None => Applied::Unknown,
            Some(e) if rcpt as usize >= record::meta_recipients(&e.meta) => Applied::NoRecipient,
            Some(_) => Applied::Changed,
        }
    }

    /// The current state of a recipient of a live message.
    pub fn state(&self, id: u64, rcpt: u32) -> Option<RecipientState> {
        let e = self.messages.get(&id)?;
        ((rcpt as usize) < record::meta_recipients(&e.meta)).then(|| record::meta_state(&e.meta, rcpt as usize))
    }

    pub fn apply(&mut self, id: u64, rcpt: u32, state: RecipientState) -> Applied {
        let Some(e) = self.messages.get_mut(&id) else { return Applied::Unknown };
        let i = rcpt as usize;
        if i >= record::meta_recipients(&e.meta) {
            return Applied::NoRecipient;
        }
        if record::meta_state(&e.meta, i).is_final() {
            return Applied::Unchanged;
        }
        record::set_meta_state(&mut e.meta, i, state);
        if !state.is_final() {
            return Applied::Changed;
        }
        e.pending -= 1;
        self.pending -= 1;
        if e.pending > 0 {
            return Applied::Changed;
        }
        if let Some(old) = self.messages.remove(&id) {
            self.forget(&old);
        }
        Applied::Died
    }

    /// Removes a live message whatever its states (its record was found damaged).
    pub fn drop_message(&mut self, id: u64) {
        if let Some(old) = self.messages.remove(&id) {
            self.forget(&old);
        }
    }

    /// Points a live message at its new record (after compaction copied it).
    pub fn relocate(&mut self, id: u64, seg: u64, offset: u64, len: u32) {
        let Some(e) = self.messages.get_mut(&id) else { return };
        let (old_seg, old_len) = (e.seg, e.len);
        e.seg = seg;
        e.offset = offset;
        e.len = len;
        if let Some(s) = self.segments.get_mut(&old_seg) {
            s.live_msgs -= 1;
            s.live_bytes -= u64::from(old_len);
        }
        if let Some(s) = self.segments.get_mut(&seg) {
            s.live_msgs += 1;
            s.live_bytes += u64::from(len);
        }
    }

    pub fn envelope(&self, id: u64) -> Option<Envelope> {
        let e = self.messages.get(&id)?;
        match record::decode_meta(&e.meta) {
            Ok(env) => Some(env),
            Err(why) => {
                // The bytes were checked when they entered the index; this is a bug, not disk rot.
                tracing::error!(id = %crate::message::MessageId(id), "spool index holds an undecodable envelope: {why}");
                None
            }
        }
    }

    /// Heap used by the index, estimated: hash table slots (with their control bytes) plus each
    /// *meta* block with a typical allocator overhead of 16 bytes.
    pub fn heap_bytes(&self) -> u64 {
        let slot = std::mem::size_of::<(u64, Entry)>() as u64 + 1;
        self.messages.capacity() as u64 * slot + self.meta_bytes + 16 * self.messages.len() as u64
    }

    pub fn bytes_on_disk(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }
}

/// Hasher for message ids: ids are dense and sequential, so one multiply (Fibonacci hashing, as
/// in FxHash) spreads them perfectly; SipHash would cost more than the rest of a lookup.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
