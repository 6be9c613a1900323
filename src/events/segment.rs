//! The event log's on-disk record and the scan of one segment file.
//!
//! A segment is named after the id of its first event (`00000000000000000001.evlog`) and holds
//! records back to back:
//!
//! ```text
//! len u32 LE | crc32c u32 LE | id u64 LE | time_ms u64 LE | payload (len bytes of JSON)
//! ```
//!
//! The checksum covers the id, the time and the payload. Ids increase by one from record to
//! record. A scan stops at the first record that is short, fails its checksum, or breaks the id
//! sequence: everything before it is good.

use std::path::{Path, PathBuf};

pub const HEADER: usize = 24;
/// A record larger than this is damage, not an event (events are a few hundred bytes).
const MAX_PAYLOAD: u32 = 1 << 20;
pub const SUFFIX: &str = "evlog";

pub fn file_name(first_id: u64) -> String {
    format!("{first_id:020}.{SUFFIX}")
}

/// The first id a segment's name says, or `None` for other files.
pub fn first_id_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(&format!(".{SUFFIX}"))?;
    (stem.len() == 20).then(|| stem.parse().ok()).flatten()
}

/// The segments of a directory, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(id) = first_id_of(&path) {
            found.push((id, path));
        }
    }
    found.sort();
    Ok(found)
}

pub fn encode(buf: &mut Vec<u8>, id: u64, time_ms: u64, payload: &[u8]) {
    let mut crc = crc32c::crc32c(&id.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &time_ms.to_le_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    buf.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&time_ms.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// One record read back.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub id: u64,
    pub time_ms: u64,
    pub payload: &'a [u8],
    /// Bytes the record takes (header and payload).
    pub len: usize,
}

/// The record at the start of `bytes`, or `None` if it is short or damaged.
pub fn decode(bytes: &[u8]) -> Option<Decoded<'_>> {
    let header = bytes.get(..HEADER)?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or_default());
    let long = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or_default());
    let (len, crc, id, time_ms) = (word(0), word(4), long(8), long(16));
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = bytes.get(HEADER..HEADER + len as usize)?;
    let mut check = crc32c::crc32c(&header[8..16]);
    check = crc32c::crc32c_append(check, &header[16..24]);
    check = crc32c::crc32c_append(check, payload);
    (check == crc).then_some(Decoded { id, time_ms, payload, len: HEADER + len as usize })
}

/// What a scan found: the good records (by offset) and where the good part ends.
pub struct Scan {
    pub records: Vec<(u64, u64, u64)>,
    /// (id, offset, time) of each good record is in `records`; this is the good length.
    pub good_len: u64,
    /// The file's length: more than `good_len` when the end is damaged.
    pub file_len: u64,
}

/// Reads a segment whose first event should be `first_id`, calling `each` for every good
/// record (in order) with its id and payload.
pub fn scan(path: &Path, first_id: u64, mut each: impl FnMut(u64, u64, u64, &[u8])) -> std::io::Result<Scan> {
    let bytes = std::fs::read(path)?;
    let mut offset = 0usize;
    let mut expected = first_id;
    let mut records = Vec::new();
    while offset < bytes.len() {
        match decode(&bytes[offset..]) {
            Some(r) if r.id == expected => {
                each(r.id, offset as u64, r.time_ms, r.payload);
                records.push((r.id, offset as u64, r.time_ms));
                offset += r.len;
                expected += 1;
            }
            _ => break,
        }
    }
    Ok(Scan { records, good_len: offset as u64, file_len: bytes.len() as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let mut buf = Vec::new();
        encode(&mut buf, 5, 1000, b"{\"a\":1}");
        let r = decode(&buf).unwrap();
        assert_eq!((r.id, r.time_ms, r.payload, r.len), (5, 1000, &b"{\"a\":1}"[..], buf.len()));
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode(&bad).is_none());
        assert!(decode(&buf[..buf.len() - 1]).is_none());
    }

    #[test]
    fn a_scan_stops_at_the_first_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        let mut buf = Vec::new();
        for id in 1..=3 {
            encode(&mut buf, id, id, b"x");
        }
        let good = buf.len();
        buf.extend_from_slice(b"torn");
        std::fs::write(&path, &buf).unwrap();
        let mut seen = Vec::new();
        let scan = scan(&path, 1, |id, _, _, _| seen.push(id)).unwrap();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!((scan.good_len, scan.file_len), (good as u64, good as u64 + 4));
        assert_eq!(first_id_of(&path), Some(1));
        assert_eq!(first_id_of(Path::new("x.evlog")), None);
    }
}
