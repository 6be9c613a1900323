//! Start-up recovery: scans every segment in log order, checks every record, rebuilds the index.
//!
//! Runs once, before the writer exists, so it may repair the last segment (truncate a torn tail)
//! and copy damaged bytes to quarantine; in read-only mode it only reports what it would do.
//!
//! # Damage
//!
//! # Zeros
//!
//! A segment made from a blank (`blank`) is full of zeros after its last record until it is
//! left. Zeros, and only zeros, from some offset to the end of any segment are unused space: the
//! scan ends there, nothing is reported, and the zeros are cut off.
//!
//! A record is damaged when its header fails its own checks (magic, version, header checksum),
//! when it runs past the end of the file, or when its payload checksum fails. Then:
//!
//! * if a valid record follows somewhere later in the same segment, the bytes in between are a
//!   damaged region in the middle of the log: they are copied to `DIR/quarantine/`, reported
//!   (`warn!`, [`Recovery::quarantined`](super::Recovery)) and skipped, and the scan resumes at
//!   that record. A header that passed its own checksum is trusted for the record's length, so
//!   the search starts at the record's end instead of inside its body;
//! * otherwise, in the **last** segment, it is a torn tail — the write that a crash interrupted,
//!   never acknowledged — and the file is truncated there (a `warn!` says how many bytes went);
//! * otherwise (an earlier segment, sealed by an fdatasync before the next one was created) it is
//!   damage, not a torn write: the rest of the file is quarantined.
//!
//! A record whose checksum is right but whose content does not decode (a bug, or a newer
//! format) is quarantined alone and the scan goes on after it.
//!
//! # Log order
//!
//! Segments are read in sequence order, so a message record is read before any state record of
//! that message, except when compaction copied the message to a newer segment and the original
//! segment is gone. Then the state records written between the original and the copy are met
//! first, for an id not yet known. They are dropped — the copy embeds the states current when it
//! was made, which already include them — and state records after the copy apply normally. Since
//! nothing else can name an unknown id (the writer refuses updates for ids it does not hold), "stash
//! until the copy appears, then drop" is the same as "ignore", which is what [`apply`] does. A
//! message record for an id already indexed is such a copy (the original survived because a crash
//! came before its segment was deleted) and replaces it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::index::{Entry, Index, Segment};
use super::record::{self, HEADER_LEN, Header, Kind};
use super::segment;
use super::{Recovery, SpoolDir, SpoolError};

pub struct Recovered {
    pub index: Index,
    pub next_id: u64,
    pub next_seq: u64,
    pub report: Recovery,
    /// The last segment, if it begins with its start record: the writer may append to it when
    /// no new segment can be created (a full disk must not keep the daemon from starting).
    pub resumable: Option<u64>,
}

/// Rebuilds the index from every segment of `dirs`.
pub fn recover(dirs: &[SpoolDir], read_only: bool, delete_corrupted: bool) -> Result<Recovered, SpoolError> {
    let started = Instant::now();
    let mut segs: Vec<(u64, usize, PathBuf)> = Vec::new();
    for (d, dir) in dirs.iter().enumerate() {
        segs.extend(segment::list_segments(&dir.path)?.into_iter().map(|(seq, path)| (seq, d, path)));
    }
    segs.sort_unstable_by_key(|s| s.0);
    if let Some(w) = segs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SpoolError::Corrupt {
            path: w[1].2.clone(),
            offset: 0,
            reason: format!(
                "segment {} also exists as {}: two spools cannot be merged by copying files",
                segment::segment_name(w[0].0),
                w[0].2.display()
            ),
        });
    }
    let mut state = State { index: Index::default(), next_id: 1, report: Recovery::default(), started: None };
    let mut buf = Vec::new();
    // A big spool takes seconds to read: say how far recovery is, about once a second.
    let mut last_progress = started;
    for (k, (seq, d, path)) in segs.iter().enumerate() {
        if last_progress.elapsed() >= std::time::Duration::from_secs(1) {
            last_progress = Instant::now();
            tracing::info!(
                "spool recovery: {k} of {} segments read, {} live messages so far ({:.1}s)",
                segs.len(),
                state.index.messages.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let file = match OpenOptions::new().read(true).write(!read_only).open(path) {
            Ok(f) => f,
            // A read-only inspection races the daemon, which may just have deleted a dead or
            // compacted segment: its live messages, if any, are in a newer one.
            Err(e) if read_only && e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SpoolError::Io { path: path.clone(), source }),
        };
        let len = file.metadata().map_err(|source| SpoolError::Io { path: path.clone(), source })?.len();
        let file = Arc::new(file);
        state.index.segments.insert(
            *seq,
            Segment { dir: *d, path: path.clone(), file: file.clone(), size: len, live_msgs: 0, live_bytes: 0 },
        );
        let scan = Scan {
            seq: *seq,
            path,
            dir: &dirs[*d].path,
            file: &file,
            len,
            last: k + 1 == segs.len(),
            read_only,
            delete_corrupted,
        };
        let size = scan.run(&mut state, &mut buf)?;
        if let Some(s) = state.index.segments.get_mut(seq) {
            s.size = size;
        }
    }
    let mut report = state.report;
    report.messages = state.index.messages.len();
    report.recipients = state.index.pending as usize;
    report.segments = segs.len();
    report.elapsed = started.elapsed();
    let last = segs.last().map(|s| s.0);
    Ok(Recovered {
        index: state.index,
        next_id: state.next_id,
        next_seq: last.map_or(1, |l| l + 1),
        report,
        resumable: last.filter(|&l| state.started == Some(l)),
    })
}

struct State {
    index: Index,
    next_id: u64,
    report: Recovery,
    /// The last segment seen to begin with a valid start record.
    started: Option<u64>,
}

/// Applies one checked record to the index. An error means the record's content is invalid.
fn apply(st: &mut State, seq: u64, offset: u64, h: &Header, p: &[u8]) -> Result<(), &'static str> {
    match h.kind {
        Kind::SegmentStart => {
            let (_, next_id) = record::parse_segment_start(p)?;
            st.next_id = st.next_id.max(next_id);
            if offset == 0 {
                st.started = Some(seq);
            }
        }
        Kind::Message => {
            let (meta, _body) = record::split_message(p)?;
            let (id, n, pending) = record::check_meta(meta)?;
            if n == 0 {
                return Err("message without recipients");
            }
            let len = u32::try_from(h.total()).map_err(|_| "message record too long")?;
            st.next_id = st.next_id.max(id.saturating_add(1));
            st.index.insert(id, Entry { seg: seq, offset, len, pending, meta: meta.into() });
        }
        Kind::States => {
            for (id, rcpt, state) in record::parse_states(p)? {
                st.next_id = st.next_id.max(id.saturating_add(1));
                st.index.apply(id, rcpt, state);
            }
        }
    }
    Ok(())
}

/// Why a record could not be used.
enum Bad {
    /// Header or checksum failure; `end` is where the record ends if its header can be trusted.
    Damaged { end: Option<u64>, why: &'static str },
    /// Checksums right, content invalid: exactly the record's bytes are bad.
    Invalid { end: u64, why: &'static str },
}

struct Scan<'a> {
    seq: u64,
    path: &'a Path,
    dir: &'a Path,
    file: &'a File,
    len: u64,
    last: bool,
    read_only: bool,
    /// `spool-delete-corrupted`: no quarantine copy.
    delete_corrupted: bool,
}

impl Scan<'_> {
    /// Scans the segment into `st`; returns its usable length.
    fn run(&self, st: &mut State, buf: &mut Vec<u8>) -> Result<u64, SpoolError> {
        let io_err = |source| SpoolError::Io { path: self.path.to_path_buf(), source };
        let mut reader = BufReader::with_capacity(1 << 20, self.file);
        let mut pos = 0u64;
        while pos < self.len {
            let bad = match self.read_one(&mut reader, pos, buf).map_err(io_err)? {
                Ok(h) => match apply(st, self.seq, pos, &h, buf) {
                    Ok(()) => {
                        pos += h.total();
                        continue;
                    }
                    Err(why) => Bad::Invalid { end: pos + h.total(), why },
                },
                Err(bad) => bad,
            };
            let resume = match bad {
                Bad::Invalid { end, why } => {
                    self.quarantine(st, pos, end, why)?;
                    Some(end)
                }
                Bad::Damaged { end, why } => {
                    let mut tail = vec![0u8; (self.len - pos) as usize];
                    self.file.read_exact_at(&mut tail, pos).map_err(io_err)?;
                    if tail.iter().all(|&b| b == 0) {
                        return self.cut_blank_zeros(pos);
                    }
                    let from = end.map_or(1, |e| (e - pos) as usize);
                    match next_valid(&tail, from) {
                        Some(q) => {
                            self.quarantine_bytes(st, pos, &tail[..q], why)?;
                            Some(pos + q as u64)
                        }
                        None if self.last => {
                            self.truncate(st, pos, why)?;
                            return Ok(if self.read_only { self.len } else { pos });
                        }
                        None => {
                            self.quarantine_bytes(st, pos, &tail, why)?;
                            None
                        }
                    }
                }
            };
            match resume {
                Some(q) => {
                    pos = q;
                    reader.seek(SeekFrom::Start(pos)).map_err(io_err)?;
                }
                None => break,
            }
        }
        Ok(self.len)
    }

    /// Reads the record at `pos` (the reader is positioned there) into `buf`. The outer error is
    /// a real I/O failure, which aborts recovery; the inner one is damage.
    fn read_one(&self, r: &mut BufReader<&File>, pos: u64, buf: &mut Vec<u8>) -> io::Result<Result<Header, Bad>> {
        let left = self.len - pos;
        if left < HEADER_LEN as u64 {
            return Ok(Err(Bad::Damaged { end: None, why: "truncated record header" }));
        }
        let mut h = [0u8; HEADER_LEN];
        r.read_exact(&mut h)?;
        let h = match record::parse_header(&h) {
            Ok(h) => h,
            Err(why) => return Ok(Err(Bad::Damaged { end: None, why })),
        };
        if h.total() > left {
            return Ok(Err(Bad::Damaged { end: None, why: "record runs past the end of the segment" }));
        }
        buf.resize(h.len as usize, 0);
        r.read_exact(buf)?;
        if crc32c::crc32c(buf) != h.crc {
            return Ok(Err(Bad::Damaged { end: Some(pos + h.total()), why: "payload checksum mismatch" }));
        }
        Ok(Ok(h))
    }

    fn quarantine(&self, st: &mut State, from: u64, to: u64, why: &str) -> Result<(), SpoolError> {
        let mut bytes = vec![0u8; (to - from) as usize];
        self.file
            .read_exact_at(&mut bytes, from)
            .map_err(|source| SpoolError::Io { path: self.path.into(), source })?;
        self.quarantine_bytes(st, from, &bytes, why)
    }

    fn quarantine_bytes(&self, st: &mut State, offset: u64, bytes: &[u8], why: &str) -> Result<(), SpoolError> {
        st.report.quarantined += 1;
        if self.read_only {
            tracing::warn!(
                segment = %self.path.display(), offset, bytes = bytes.len(),
                "spool: corrupt record ({why}); read-only, so not copied to quarantine"
            );
            return Ok(());
        }
        if self.delete_corrupted {
            tracing::warn!(
                segment = %self.path.display(), offset, bytes = bytes.len(),
                "spool: corrupt record ({why}) deleted (spool-delete-corrupted yes); any message or state change in it is lost"
            );
            return Ok(());
        }
        let q = segment::quarantine(self.dir, self.seq, offset, bytes)?;
        tracing::warn!(
            segment = %self.path.display(), offset, bytes = bytes.len(), copy = %q.display(),
            "spool: corrupt record ({why}) quarantined; any message or state change in it is lost"
        );
        Ok(())
    }

    /// Nothing but zeros from `at` on: the unused end of a segment made from a blank (see
    /// `blank`), left by a crash or a kill. Not damage and not a torn write: nothing was written
    /// there. Cut off (when writable) so that the file holds only records; returns `at`.
    fn cut_blank_zeros(&self, at: u64) -> Result<u64, SpoolError> {
        if !self.read_only {
            self.file.set_len(at).map_err(|source| SpoolError::Io { path: self.path.to_path_buf(), source })?;
        }
        tracing::debug!(segment = %self.path.display(), offset = at, bytes = self.len - at, "spool: blank zeros after the last record");
        Ok(at)
    }

    fn truncate(&self, st: &mut State, at: u64, why: &str) -> Result<(), SpoolError> {
        let dropped = self.len - at;
        st.report.torn_tail_truncated = Some((self.path.to_path_buf(), dropped));
        if self.read_only {
            // Beside a running daemon this is usually a batch being written right now.
            tracing::info!(
                segment = %self.path.display(), offset = at, bytes = dropped,
                "spool: incomplete record at the end ({why}): being written, or torn by a crash; read-only, left as it is"
            );
            return Ok(());
        }
        let io_err = |source| SpoolError::Io { path: self.path.to_path_buf(), source };
        self.file.set_len(at).map_err(io_err)?;
        self.file.sync_all().map_err(io_err)?;
        tracing::warn!(
            segment = %self.path.display(), offset = at, bytes = dropped,
            "spool: torn tail ({why}) truncated: an interrupted, never acknowledged write"
        );
        Ok(())
    }
}

/// The offset of the first complete, checksum-valid record in `b` at or after `from`.
fn next_valid(b: &[u8], from: usize) -> Option<usize> {
    let valid = |i: usize| {
        let Ok(h) = record::parse_header(&b[i..]) else { return false };
        let end = i as u64 + h.total();
        end <= b.len() as u64 && crc32c::crc32c(&b[i + HEADER_LEN..end as usize]) == h.crc
    };
    (from..b.len().saturating_sub(HEADER_LEN - 1)).find(|&i| b[i..].starts_with(&record::MAGIC) && valid(i))
}
