//! Segment maintenance, on the writer thread: deleting dead segments and compacting sparse ones.
//!
//! Only the **oldest** segment is ever removed, and never the active one. A state record always
//! lies in the same segment as its message record or a newer one, so deleting oldest-first can
//! never drop the state record of a message whose record survives — a delivered message cannot
//! come back. The oldest segment goes:
//!
//! * when it holds no live message: unlinked, then the directory fsync'd before anything newer
//!   may go (else a crash could resurrect this file without the newer state records);
//! * when it is mostly garbage (live bytes below `compact_live_ratio` of it), or the spool as a
//!   whole is (the oldest segment then pins every dead segment behind it): compacted — its live
//!   messages are re-appended to the active segment with their *current* states in the copy,
//!   fdatasync'd, the index pointed at the copies, and the old file deleted as above. Automatic
//!   compaction copies at most `COMPACT_CHUNK` (4 MiB) between two batches, so a batch waits at
//!   most a few milliseconds behind it; it resumes after the next batch. It leaves a segment
//!   alone for `compact_grace` (2 s by default) after the writer sealed it: right after a roll
//!   the old segment is almost all garbage, but what is live in it is mostly mail being
//!   delivered at that moment, which would be copied only to die a few milliseconds later
//!   (under relay load, 25 messages copied while every waiting `250` waited).

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Writer, check_record};
use crate::message::MessageId;
use crate::spool::{Compaction, SpoolError, record, segment};

/// Pause after a failed maintenance step before trying again.
const MAINTENANCE_RETRY: Duration = Duration::from_secs(60);
/// Automatic compaction copies at most this many bytes between two batches.
const COMPACT_CHUNK: u64 = 4 << 20;

impl Writer {
    /// Forced compaction (`Spool::compact`): seals the active segment, then compacts or deletes
    /// every older one, oldest first.
    pub(super) fn compact_all(&mut self) -> Result<Compaction, SpoolError> {
        if let Some(why) = &self.failed {
            return Err(SpoolError::Failed(why.clone()));
        }
        if self.maintenance_stopped {
            return Err(SpoolError::Failed("a spool directory fsync failed after a segment deletion".into()));
        }
        if self.active.as_ref().is_some_and(|a| a.size > a.empty_size) {
            self.roll()?;
        }
        // Copies all go to this one segment (it may grow past `segment_size`; the next batch
        // rolls), so the loop ends: nothing older than it is left.
        let mut report = Compaction::default();
        while let Some(step) = self.maintain_step(true)? {
            report.add(&step);
        }
        Ok(report)
    }

    /// Automatic maintenance: deletes dead oldest segments, then takes one compaction step.
    pub(super) fn maintain(&mut self) {
        if self.maintenance_stopped || self.failed.is_some() {
            return;
        }
        if self.maintenance_paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        loop {
            match self.maintain_step(false) {
                Ok(Some(step)) if step.messages_moved == 0 => {}
                Ok(_) => return,
                Err(e) if self.maintenance_stopped => {
                    tracing::error!("spool: segment deletion stopped until restart: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!("spool: maintenance failed, retrying in {}s: {e}", MAINTENANCE_RETRY.as_secs());
                    self.maintenance_paused_until = Some(Instant::now() + MAINTENANCE_RETRY);
                    return;
                }
            }
        }
    }

    /// One step on the oldest segment: delete it if dead, compact it if worth it (or `force`).
    /// `None` when there is nothing (more) to do.
    fn maintain_step(&mut self, force: bool) -> Result<Option<Compaction>, SpoolError> {
        let Some(active) = self.active.as_ref().map(|a| a.seq) else { return Ok(None) };
        let (seq, live_msgs, live_bytes, size, all_live, all_size) = {
            let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
            let Some((&seq, s)) = index.segments.iter().next() else { return Ok(None) };
            let all_live: u64 = index.segments.values().map(|s| s.live_bytes).sum();
            (seq, s.live_msgs, s.live_bytes, s.size, all_live, index.bytes_on_disk())
        };
        if seq == active {
            return Ok(None);
        }
        if live_msgs == 0 {
            self.delete_segment(seq)?;
            return Ok(Some(Compaction { segments_deleted: 1, bytes_reclaimed: size, ..Compaction::default() }));
        }
        if !force && self.sealed_at.get(&seq).is_some_and(|t| t.elapsed() < self.compact_grace) {
            return Ok(None);
        }
        let ratio = self.compact_live_ratio;
        let sparse = (live_bytes as f64) < ratio * size as f64 || (all_live as f64) < ratio * all_size as f64;
        if !(force || sparse) {
            return Ok(None);
        }
        self.compact_segment(seq, !force).map(Some)
    }

    fn delete_segment(&mut self, seq: u64) -> Result<(), SpoolError> {
        let seg = self.shared.index.write().unwrap_or_else(|e| e.into_inner()).segments.remove(&seq);
        let Some(seg) = seg else { return Ok(()) };
        if let Err(source) = std::fs::remove_file(&seg.path)
            && source.kind() != io::ErrorKind::NotFound
        {
            let path = seg.path.clone();
            self.shared.index.write().unwrap_or_else(|e| e.into_inner()).segments.insert(seq, seg);
            return Err(SpoolError::Io { path, source });
        }
        let synced = segment::sync_dir(&self.dirs[seg.dir].path);
        self.closer.close(seg.file);
        self.sealed_at.remove(&seq);
        if let Err(e) = synced {
            self.maintenance_stopped = true;
            return Err(e);
        }
        self.shared.counters.segments_deleted.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(segment = %seg.path.display(), "spool: segment deleted");
        Ok(())
    }

    /// Copies live messages of segment `seq` to the active segment (rolling first if it is full
    /// and `may_roll`), at most [`COMPACT_CHUNK`] bytes per call so that a batch never waits
    /// long behind a compaction; the call that moves the last one deletes `seq`.
    fn compact_segment(&mut self, seq: u64, may_roll: bool) -> Result<Compaction, SpoolError> {
        if may_roll && self.active.as_ref().is_some_and(|a| a.size >= self.segment_size) {
            self.roll()?;
        }
        let (file, path, size, src_dir, mut victims) = {
            let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
            let Some(s) = index.segments.get(&seq) else { return Ok(Compaction::default()) };
            let victims: Vec<(u64, u64, u32)> =
                index.messages.iter().filter(|(_, e)| e.seg == seq).map(|(&id, e)| (id, e.offset, e.len)).collect();
            (s.file.clone(), s.path.clone(), s.size, s.dir, victims)
        };
        victims.sort_unstable_by_key(|v| v.1);
        let mut budget = 0u64;
        let take = victims
            .iter()
            .take_while(|v| {
                let more = budget < COMPACT_CHUNK;
                budget += u64::from(v.2);
                more
            })
            .count();
        let finished = take == victims.len();
        victims.truncate(take);
        let metas: Vec<Box<[u8]>> = {
            let index = self.shared.index.read().unwrap_or_else(|e| e.into_inner());
            victims.iter().map(|v| index.messages.get(&v.0).map(|e| e.meta.clone()).unwrap_or_default()).collect()
        };
        let Some(a) = &self.active else { return Err(SpoolError::Closed) };
        let (dst, base) = (a.seq, a.size);
        let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut at = base;
        let mut moved: Vec<(u64, u64, u32)> = Vec::with_capacity(victims.len());
        let mut lost: Vec<u64> = Vec::new();
        let mut rec = Vec::new();
        for (&(id, offset, len), meta) in victims.iter().zip(&metas) {
            rec.resize(len as usize, 0);
            file.read_exact_at(&mut rec, offset).map_err(|source| SpoolError::Io { path: path.clone(), source })?;
            let body = match check_record(&rec, meta.len()) {
                Ok(body) => body,
                Err(why) => {
                    if self.delete_corrupted {
                        tracing::error!(
                            id = %MessageId(id), segment = %path.display(), offset,
                            "spool: live message damaged on disk ({why}); deleted (spool-delete-corrupted yes)"
                        );
                    } else {
                        let q = segment::quarantine(&self.dirs[src_dir].path, seq, offset, &rec)?;
                        tracing::error!(
                            id = %MessageId(id), segment = %path.display(), offset, copy = %q.display(),
                            "spool: live message damaged on disk ({why}); quarantined and dropped from the queue"
                        );
                    }
                    self.shared.counters.quarantined.fetch_add(1, Ordering::Relaxed);
                    lost.push(id);
                    continue;
                }
            };
            let head = record::message_head(meta, body);
            out.extend_from_slice(&head);
            out.extend_from_slice(body);
            let new_len = (head.len() + body.len()) as u32;
            moved.push((id, at, new_len));
            at += u64::from(new_len);
            if out.len() >= 1 << 20 {
                self.append(&[&out], base)?;
                out.clear();
            }
        }
        // The segment's last reference must be the one `delete_segment` hands to the closer: its
        // close frees the blocks, which is too slow for this thread.
        drop(file);
        if !out.is_empty() {
            self.append(&[&out], base)?;
        }
        if at > base {
            self.sync()?;
        }
        {
            let mut index = self.shared.index.write().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = index.segments.get_mut(&dst) {
                s.size = at;
            }
            for &(id, offset, len) in &moved {
                index.relocate(id, dst, offset, len);
            }
            for id in &lost {
                index.drop_message(*id);
            }
        }
        if let Some(a) = self.active.as_mut() {
            a.size = at;
        }
        self.shared.counters.messages_compacted.fetch_add(moved.len() as u64, Ordering::Relaxed);
        let mut report = Compaction { messages_moved: moved.len(), bytes_moved: at - base, ..Compaction::default() };
        if finished {
            self.delete_segment(seq)?;
            report.segments_deleted = 1;
            report.bytes_reclaimed = size;
            tracing::info!(segment = %path.display(), "spool: segment compacted and deleted");
        }
        Ok(report)
    }
}
