//! The in-memory index over the retained log: where each event is (segment and offset, found
//! from its id alone because ids are dense within a segment) and which events name a recipient,
//! a message id or a job. Built by the scan at start, extended by the writer after each batch,
//! trimmed when retention deletes a segment.
//!
//! Keys are kept as 64-bit hashes, not strings: ten million events with three keys each would
//! otherwise hold gigabytes of text. A hash collision only adds a candidate; the query reads
//! each candidate and keeps those whose field really matches.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use super::event::KeyKind;

/// One segment file and the offset of each of its events (event `first_id + i` at `offsets[i]`).
#[derive(Debug)]
pub struct SegmentIndex {
    pub first_id: u64,
    pub path: PathBuf,
    pub offsets: Vec<u32>,
    /// Where the last event ends (the file's good length).
    pub end: u64,
    /// The time of its newest event (Unix ms), for retention.
    pub last_ms: u64,
    /// The time of its first event (Unix ms), for `since` queries.
    pub first_ms: u64,
}

impl SegmentIndex {
    pub fn new(first_id: u64, path: PathBuf) -> SegmentIndex {
        SegmentIndex { first_id, path, offsets: Vec::new(), end: 0, last_ms: 0, first_ms: 0 }
    }

    /// The id after its last event.
    pub fn next_id(&self) -> u64 {
        self.first_id + self.offsets.len() as u64
    }
}

/// A stretch of consecutive events inside one segment, to read with one `pread`.
#[derive(Debug, Clone)]
pub struct Span {
    pub path: PathBuf,
    pub first_id: u64,
    pub count: u64,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Default)]
pub struct Index {
    segments: VecDeque<SegmentIndex>,
    keys: HashMap<u64, Vec<u64>, std::hash::BuildHasherDefault<KeyHashPassThrough>>,
}

/// The hash a key is filed under: its kind and its text (a recipient in lower case).
pub fn key_hash(kind: KeyKind, text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (kind as u8).hash(&mut h);
    if kind == KeyKind::Rcpt && text.bytes().any(|b| b.is_ascii_uppercase()) {
        // The writer hashes every event's keys: one write of the whole text, not one per byte.
        h.write(text.to_ascii_lowercase().as_bytes());
    } else {
        h.write(text.as_bytes());
    }
    h.finish()
}

/// The key map's hasher: its keys are [`key_hash`]es already, evenly spread, so hashing them
/// again (SipHash, the default) would only cost time on every event the writer files.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHashPassThrough(u64);

impl Hasher for KeyHashPassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; any other input still folds in, just slower.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Index {
    /// Starts a segment (the writer's new active one, or one found at start).
    pub fn push_segment(&mut self, segment: SegmentIndex) {
        self.segments.push_back(segment);
    }

    /// Files one event of the newest segment.
    pub fn add(&mut self, id: u64, offset: u64, end: u64, time_ms: u64, keys: impl Iterator<Item = u64>) {
        let Some(seg) = self.segments.back_mut() else { return };
        debug_assert_eq!(seg.next_id(), id, "ids are dense within a segment");
        if seg.offsets.is_empty() {
            seg.first_ms = time_ms;
        }
        // Segments stay below 4 GiB (the writer rolls long before).
        seg.offsets.push(u32::try_from(offset).unwrap_or(u32::MAX));
        seg.end = end;
        seg.last_ms = seg.last_ms.max(time_ms);
        for k in keys {
            self.keys.entry(k).or_default().push(id);
        }
    }

    /// The oldest id still retained.
    pub fn oldest_id(&self) -> u64 {
        self.segments.front().map_or(1, |s| s.first_id)
    }

    /// The id the next event gets.
    pub fn next_id(&self) -> u64 {
        self.segments.back().map_or(1, SegmentIndex::next_id)
    }

    pub fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.offsets.len() as u64).sum()
    }

    /// The segment being written (the newest).
    pub fn newest(&self) -> Option<&SegmentIndex> {
        self.segments.back()
    }

    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Up to `max` events from `from`, all in `from`'s segment.
    pub fn span(&self, from: u64, max: u64) -> Option<Span> {
        let seg = self.segment_of(from)?;
        let i = (from - seg.first_id) as usize;
        let count = (seg.offsets.len() - i).min(usize::try_from(max).unwrap_or(usize::MAX));
        let end = seg.offsets.get(i + count).map_or(seg.end, |o| u64::from(*o));
        Some(Span {
            path: seg.path.clone(),
            first_id: from,
            count: count as u64,
            start: u64::from(seg.offsets[i]),
            end,
        })
    }

    /// The first retained id at or after `id` (ids may have a gap where a damaged segment was
    /// skipped at start).
    pub fn next_present(&self, id: u64) -> Option<u64> {
        self.segments.iter().find(|s| s.next_id() > id && !s.offsets.is_empty()).map(|s| s.first_id.max(id))
    }

    fn segment_of(&self, id: u64) -> Option<&SegmentIndex> {
        let at = self.segments.partition_point(|s| s.first_id <= id).checked_sub(1)?;
        let seg = &self.segments[at];
        (id < seg.next_id()).then_some(seg)
    }

    /// The ids filed under a key hash, oldest first, that are still retained.
    pub fn lookup(&self, hash: u64) -> Vec<u64> {
        let oldest = self.oldest_id();
        self.keys.get(&hash).map(|ids| ids.iter().copied().filter(|id| *id >= oldest).collect()).unwrap_or_default()
    }

    /// The first id whose segment may hold events at or after `since_ms`.
    pub fn first_id_since(&self, since_ms: u64) -> u64 {
        self.segments.iter().find(|s| s.last_ms >= since_ms).map_or_else(|| self.next_id(), |s| s.first_id)
    }

    /// Removes the segments (never the newest) whose every event is older than `before_ms`;
    /// returns their paths for the caller to delete, after readers can no longer find them.
    pub fn expire(&mut self, before_ms: u64) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.last_ms < before_ms) {
            if let Some(s) = self.segments.pop_front() {
                gone.push(s.path);
            }
        }
        if !gone.is_empty() {
            let oldest = self.oldest_id();
            self.keys.retain(|_, ids| {
                ids.retain(|id| *id >= oldest);
                !ids.is_empty()
            });
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let mut ix = Index::default();
        ix.push_segment(SegmentIndex::new(1, "a".into()));
        for id in 1..=3 {
            ix.add(id, (id - 1) * 10, id * 10, id * 1000, [key_hash(KeyKind::Rcpt, "A@x")].into_iter());
        }
        ix.push_segment(SegmentIndex::new(4, "b".into()));
        for id in 4..=5 {
            ix.add(id, (id - 4) * 10, (id - 3) * 10, id * 1000, [key_hash(KeyKind::Rcpt, "b@x")].into_iter());
        }
        ix
    }

    #[test]
    fn spans_stay_inside_one_segment() {
        let ix = index();
        let s = ix.span(2, 10).unwrap();
        assert_eq!((s.path.to_str(), s.first_id, s.count, s.start, s.end), (Some("a"), 2, 2, 10, 30));
        let s = ix.span(4, 1).unwrap();
        assert_eq!((s.path.to_str(), s.count, s.start, s.end), (Some("b"), 1, 0, 10));
        assert!(ix.span(6, 1).is_none());
        assert_eq!(ix.next_id(), 6);
        assert_eq!((ix.next_present(2), ix.next_present(4), ix.next_present(6)), (Some(2), Some(4), None));
    }

    #[test]
    fn recipients_are_found_without_regard_to_case_and_expire_with_their_segment() {
        let mut ix = index();
        assert_eq!(ix.lookup(key_hash(KeyKind::Rcpt, "a@X")), [1, 2, 3]);
        assert!(ix.lookup(key_hash(KeyKind::Job, "a@x")).is_empty());
        assert_eq!(ix.first_id_since(3500), 4);
        assert_eq!(ix.expire(4000), [PathBuf::from("a")]);
        assert!(ix.lookup(key_hash(KeyKind::Rcpt, "a@x")).is_empty());
        assert_eq!(ix.oldest_id(), 4);
        assert!(ix.expire(u64::MAX).is_empty(), "the newest segment is never expired");
    }
}
