//! The on-disk record format: headers, checksums and the byte layout of every payload.
//!
//! Owns bytes only: it neither opens files nor knows about segments, the index or the writer.
//! Everything here is a pure function, so the format can be tested (and fuzzed) in isolation.
//!
//! # Record
//!
//! ```text
//! offset size
//!  0     4    magic  "EMBR"
//!  4     1    format version (1)
//!  5     1    kind: 1 segment start, 2 message, 3 state changes
//!  6     2    reserved, zero
//!  8     4    payload length (u32 LE)
//! 12     4    crc32c of the payload
//! 16     4    crc32c of bytes 0..16 (the header itself)
//! 20     ..   payload
//! ```
//!
//! The header has its own checksum so that a record whose *length* field is damaged is recognised
//! as such: recovery then knows it cannot trust the length and searches for the next valid header
//! instead of jumping to a random offset.
//!
//! # Checksum: CRC-32C
//!
//! CRC-32C (Castagnoli) is the checksum of ext4 metadata, iSCSI, LevelDB and RocksDB logs: its
//! polynomial detects more error patterns than CRC-32 (IEEE) at record sizes like ours, and x86-64
//! computes it with the SSE 4.2 `crc32` instruction at several GB/s, so verifying a whole spool at
//! start costs a fraction of reading it. The `crc32c` crate is small, has a safe API, detects the
//! CPU feature at run time (software fallback elsewhere), needs no C toolchain and has been
//! maintained since 2017; `crc-fast` is faster still with AVX-512 but a much larger dependency for
//! a checksum that is never our bottleneck (fdatasync is).
//!
//! # Payloads (all integers little endian)
//!
//! * **segment start** — `u64 segment sequence, u64 next message id`. First record of every
//!   segment: the id high-water mark, so ids stay monotonic even after every message that carried
//!   a high id is gone.
//! * **message** — `u32 meta length, meta, body`. The body is the raw message, untouched.
//! * **state changes** — `u32 count`, then per change `u64 id, u32 recipient index, state`.
//!
//! *meta* is `u64 id, u32 recipient count, count × state`, then the rest of the envelope:
//! sender, vmta, job id, envid, RET, flags, arrival time, origin, and per recipient address, ORCPT
//! and NOTIFY, then the optional fields. A *state* is 13 bytes: tag (0 pending, 1 delivered,
//! 2 bounced, 3 deleted), `u64 not_before`, `u32 attempts`. Strings are a LEB128 length and UTF-8
//! bytes; an optional string is a presence byte then the string; an IP address is a tag (0 none,
//! 4, 6) and its octets.
//!
//! The *optional fields* are written only when set, each as a tag byte and its value:
//! `1` recipient priority (`u8`, 0 to 100); `2` the named sources the message was injected
//! through (a LEB128 count, then that many strings); `3` the `X-DKIM-Options` value (a string).
//! An envelope with none of them is byte for byte the
//! layout written before they existed, so older records read back unchanged (every optional
//! field `None`); a tag this code does not know is reported as damage, never skipped.
//!
//! The states sit at fixed offsets at the front of *meta* so the index can keep *meta* verbatim in
//! memory and update a recipient's state in place, without decoding the rest.
//!
//! # Why a hand-written envelope encoding
//!
//! postcard or bincode would encode the serde-derived [`Envelope`] in one line, but neither is
//! self-describing: adding a field to `Envelope` would silently make every record already in a
//! production spool undecodable (quarantined at the next start). Here [`encode_meta`] destructures
//! `Envelope` exhaustively, so adding a field fails to compile until someone decides how the spool
//! stores it — and the version byte in the header leaves room to read the old layout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::message::{Envelope, MessageId, Notify, Origin, Recipient, RecipientState, Ret};

pub const MAGIC: [u8; 4] = *b"EMBR";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 20;
/// Bytes of one encoded [`RecipientState`].
pub const STATE_LEN: usize = 13;
/// Bytes of one entry in a state-change payload.
pub const CHANGE_LEN: usize = 8 + 4 + STATE_LEN;
/// Where the states start inside *meta*.
const META_STATES: usize = 12;
/// The largest payload a record may carry (the length field is a u32; keep clear of its end).
pub const MAX_PAYLOAD: usize = (u32::MAX - (1 << 20)) as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SegmentStart = 1,
    Message = 2,
    States = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub len: u32,
    pub crc: u32,
}

impl Header {
    /// Total bytes of the record (header + payload).
    pub fn total(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Builds a record header for `payload_len` bytes whose checksum is `crc`.
pub fn header(kind: Kind, payload_len: usize, crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = VERSION;
    h[5] = kind as u8;
    h[8..12].copy_from_slice(&(payload_len as u32).to_le_bytes());
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32c::crc32c(&h[0..16]);
    h[16..20].copy_from_slice(&hcrc.to_le_bytes());
    h
}

/// Parses and checks a header; the error says what is wrong, for the recovery log.
pub fn parse_header(h: &[u8]) -> Result<Header, &'static str> {
    if h.len() < HEADER_LEN {
        return Err("truncated record header");
    }
    if h[0..4] != MAGIC {
        return Err("bad magic");
    }
    if crc32c::crc32c(&h[0..16]) != u32_at(h, 16) {
        return Err("header checksum mismatch");
    }
    if h[4] != VERSION {
        return Err("unknown record format version");
    }
    let kind = match h[5] {
        1 => Kind::SegmentStart,
        2 => Kind::Message,
        3 => Kind::States,
        _ => return Err("unknown record kind"),
    };
    Ok(Header { kind, len: u32_at(h, 8), crc: u32_at(h, 12) })
}

/// A complete record around `payload`.
pub fn record(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER_LEN + payload.len());
    r.extend_from_slice(&header(kind, payload.len(), crc32c::crc32c(payload)));
    r.extend_from_slice(payload);
    r
}

pub fn segment_start(seq: u64, next_id: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&next_id.to_le_bytes());
    record(Kind::SegmentStart, &p)
}

pub fn parse_segment_start(p: &[u8]) -> Result<(u64, u64), &'static str> {
    if p.len() != 16 {
        return Err("segment start record has the wrong length");
    }
    Ok((u64_at(p, 0), u64_at(p, 8)))
}

/// The part of a message record that precedes the body: header, meta length, meta. The header's
/// payload checksum covers `body` too, so the caller writes `head` then `body` unchanged.
pub fn message_head(meta: &[u8], body: &[u8]) -> Vec<u8> {
    let payload_len = 4 + meta.len() + body.len();
    let mut head = Vec::with_capacity(HEADER_LEN + 4 + meta.len());
    head.extend_from_slice(&[0u8; HEADER_LEN]);
    head.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    head.extend_from_slice(meta);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[HEADER_LEN..]), body);
    head[..HEADER_LEN].copy_from_slice(&header(Kind::Message, payload_len, crc));
    head
}

/// Splits a message payload into (meta, body).
pub fn split_message(p: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if p.len() < 4 {
        return Err("message record too short");
    }
    let meta_len = u32_at(p, 0) as usize;
    if meta_len > p.len() - 4 {
        return Err("message meta length exceeds the record");
    }
    Ok(p[4..].split_at(meta_len))
}

/// Offset of the body inside a message record, counted from the record's first byte.
pub fn body_offset(meta_len: usize) -> usize {
    HEADER_LEN + 4 + meta_len
}

// ---- state changes -------------------------------------------------------------------------

pub fn states_record(changes: &[(u64, u32, RecipientState)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + changes.len() * CHANGE_LEN);
    p.extend_from_slice(&(changes.len() as u32).to_le_bytes());
    for &(id, rcpt, state) in changes {
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&rcpt.to_le_bytes());
        p.extend_from_slice(&encode_state(state));
    }
    record(Kind::States, &p)
}

pub fn parse_states(p: &[u8]) -> Result<Vec<(u64, u32, RecipientState)>, &'static str> {
    if p.len() < 4 {
        return Err("state record too short");
    }
    let n = u32_at(p, 0) as usize;
    if p.len() != 4 + n.checked_mul(CHANGE_LEN).ok_or("state record count overflows")? {
        return Err("state record length does not match its count");
    }
    p[4..].chunks_exact(CHANGE_LEN).map(|c| Ok((u64_at(c, 0), u32_at(c, 8), decode_state(&c[12..])?))).collect()
}

pub fn encode_state(s: RecipientState) -> [u8; STATE_LEN] {
    let mut b = [0u8; STATE_LEN];
    match s {
        RecipientState::Pending { not_before, attempts } => {
            b[1..9].copy_from_slice(&not_before.to_le_bytes());
            b[9..13].copy_from_slice(&attempts.to_le_bytes());
        }
        RecipientState::Delivered => b[0] = 1,
        RecipientState::Bounced => b[0] = 2,
        RecipientState::Deleted => b[0] = 3,
    }
    b
}

pub fn decode_state(b: &[u8]) -> Result<RecipientState, &'static str> {
    if b.len() < STATE_LEN {
        return Err("truncated recipient state");
    }
    Ok(match b[0] {
        0 => RecipientState::Pending { not_before: u64_at(b, 1), attempts: u32_at(b, 9) },
        1 => RecipientState::Delivered,
        2 => RecipientState::Bounced,
        3 => RecipientState::Deleted,
        _ => return Err("unknown recipient state"),
    })
}

// ---- meta: the envelope --------------------------------------------------------------------

/// Encodes `env` under `id` (the envelope's own `id` field is ignored).
pub fn encode_meta(env: &Envelope, id: MessageId) -> Vec<u8> {
    // Exhaustive on purpose: a new Envelope field must be given a place in the format.
    let Envelope {
        id: _,
        sender,
        recipients,
        vmta,
        job_id,
        env_id,
        ret,
        eight_bit,
        smtputf8,
        arrival_ms,
        priority,
        dkim_options,
        origin: Origin { kind, helo, client_ip, local_ip, auth_user, sources },
    } = env;
    let mut m = Vec::with_capacity(64 + recipients.len() * (STATE_LEN + 32) + sender.len() + helo.len());
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&(recipients.len() as u32).to_le_bytes());
    for r in recipients {
        m.extend_from_slice(&encode_state(r.state));
    }
    put_str(&mut m, sender);
    put_opt_str(&mut m, vmta.as_deref());
    put_opt_str(&mut m, job_id.as_deref());
    put_opt_str(&mut m, env_id.as_deref());
    m.push(match ret {
        None => 0,
        Some(Ret::Full) => 1,
        Some(Ret::Headers) => 2,
    });
    m.push(u8::from(*eight_bit) | (u8::from(*smtputf8) << 1));
    m.extend_from_slice(&arrival_ms.to_le_bytes());
    put_str(&mut m, kind);
    put_str(&mut m, helo);
    put_ip(&mut m, *client_ip);
    put_ip(&mut m, *local_ip);
    put_opt_str(&mut m, auth_user.as_deref());
    for r in recipients {
        let Recipient { address, orcpt, notify: Notify { success, failure, delay, never }, state: _ } = r;
        put_str(&mut m, address);
        put_opt_str(&mut m, orcpt.as_deref());
        m.push(u8::from(*success) | (u8::from(*failure) << 1) | (u8::from(*delay) << 2) | (u8::from(*never) << 3));
    }
    if let Some(p) = priority {
        m.extend_from_slice(&[OPT_PRIORITY, *p]);
    }
    if !sources.is_empty() {
        m.push(OPT_SOURCES);
        put_len(&mut m, sources.len());
        for s in sources {
            put_str(&mut m, s);
        }
    }
    if let Some(o) = dkim_options {
        m.push(OPT_DKIM_OPTIONS);
        put_str(&mut m, o);
    }
    m
}

/// Tags of the optional fields (see the module documentation).
const OPT_PRIORITY: u8 = 1;
const OPT_SOURCES: u8 = 2;
const OPT_DKIM_OPTIONS: u8 = 3;

/// The optional fields after the recipients, up to the end of *meta*.
#[derive(Default)]
struct Optional {
    priority: Option<u8>,
    sources: Option<Vec<String>>,
    dkim_options: Option<String>,
}

impl Reader<'_> {
    fn optional_fields(&mut self) -> Result<Optional, &'static str> {
        let mut o = Optional::default();
        while self.pos < self.b.len() {
            match self.bytes(1)?[0] {
                OPT_PRIORITY if o.priority.is_none() => o.priority = Some(self.bytes(1)?[0]),
                OPT_PRIORITY => return Err("envelope priority given twice"),
                OPT_SOURCES if o.sources.is_none() => {
                    let n = self.len()?;
                    // Each name takes at least one byte: a count past what is left is damage.
                    if n > self.b.len() - self.pos {
                        return Err("envelope source count exceeds the envelope");
                    }
                    let mut names = Vec::with_capacity(n);
                    for _ in 0..n {
                        names.push(self.str()?.to_owned());
                    }
                    o.sources = Some(names);
                }
                OPT_SOURCES => return Err("envelope sources given twice"),
                OPT_DKIM_OPTIONS if o.dkim_options.is_none() => o.dkim_options = Some(self.str()?.to_owned()),
                OPT_DKIM_OPTIONS => return Err("envelope X-DKIM-Options given twice"),
                _ => return Err("unknown optional envelope field"),
            }
        }
        Ok(o)
    }
}

/// What the index needs from *meta*, found without allocating: id, recipient count, pending
/// recipients. Walks (and so validates) the whole encoding.
pub fn check_meta(m: &[u8]) -> Result<(u64, u32, u32), &'static str> {
    let (id, n) = meta_counts(m)?;
    let mut pending = 0;
    for i in 0..n as usize {
        if !decode_state(&m[META_STATES + i * STATE_LEN..])?.is_final() {
            pending += 1;
        }
    }
    let mut r = Reader { b: m, pos: META_STATES + n as usize * STATE_LEN };
    r.str()?;
    for _ in 0..3 {
        r.opt_str()?;
    }
    // RET is checked here as decode_meta checks it: a meta the index accepts but delivery cannot
    // decode would stay queued forever, neither sent nor quarantined (found by fuzzing).
    decode_ret(r.bytes(1)?[0])?;
    r.bytes(1 + 8)?;
    r.str()?;
    r.str()?;
    r.ip()?;
    r.ip()?;
    r.opt_str()?;
    for _ in 0..n {
        r.str()?;
        r.opt_str()?;
        r.bytes(1)?;
    }
    r.optional_fields()?;
    Ok((id, n, pending))
}

/// Decodes the whole envelope, recipient states included.
pub fn decode_meta(m: &[u8]) -> Result<Envelope, &'static str> {
    let (id, n) = meta_counts(m)?;
    let mut r = Reader { b: m, pos: META_STATES + n as usize * STATE_LEN };
    let sender = r.str()?.to_owned();
    let vmta = r.opt_str()?.map(str::to_owned);
    let job_id = r.opt_str()?.map(str::to_owned);
    let env_id = r.opt_str()?.map(str::to_owned);
    let ret = decode_ret(r.bytes(1)?[0])?;
    let flags = r.bytes(1)?[0];
    let arrival_ms = u64_at(r.bytes(8)?, 0);
    let kind = r.str()?.to_owned();
    let helo = r.str()?.to_owned();
    let client_ip = r.ip()?;
    let local_ip = r.ip()?;
    let auth_user = r.opt_str()?.map(str::to_owned);
    let mut recipients = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let address = r.str()?.to_owned();
        let orcpt = r.opt_str()?.map(str::to_owned);
        let f = r.bytes(1)?[0];
        let notify = Notify { success: f & 1 != 0, failure: f & 2 != 0, delay: f & 4 != 0, never: f & 8 != 0 };
        let state = decode_state(&m[META_STATES + i * STATE_LEN..])?;
        recipients.push(Recipient { address, orcpt, notify, state });
    }
    let Optional { priority, sources, dkim_options } = r.optional_fields()?;
    Ok(Envelope {
        id: MessageId(id),
        sender,
        recipients,
        vmta,
        job_id,
        env_id,
        ret,
        eight_bit: flags & 1 != 0,
        smtputf8: flags & 2 != 0,
        arrival_ms,
        priority,
        dkim_options,
        origin: Origin { kind, helo, client_ip, local_ip, auth_user, sources: sources.unwrap_or_default() },
    })
}

fn decode_ret(b: u8) -> Result<Option<Ret>, &'static str> {
    match b {
        0 => Ok(None),
        1 => Ok(Some(Ret::Full)),
        2 => Ok(Some(Ret::Headers)),
        _ => Err("unknown RET value"),
    }
}

/// The state of recipient `i` in a checked *meta*.
pub fn meta_state(m: &[u8], i: usize) -> RecipientState {
    decode_state(&m[META_STATES + i * STATE_LEN..]).unwrap_or(RecipientState::Deleted)
}

/// Overwrites the state of recipient `i` in a checked *meta*.
pub fn set_meta_state(m: &mut [u8], i: usize, s: RecipientState) {
    m[META_STATES + i * STATE_LEN..META_STATES + (i + 1) * STATE_LEN].copy_from_slice(&encode_state(s));
}

/// Recipient count of a checked *meta*.
pub fn meta_recipients(m: &[u8]) -> usize {
    u32_at(m, 8) as usize
}

fn meta_counts(m: &[u8]) -> Result<(u64, u32), &'static str> {
    if m.len() < META_STATES {
        return Err("envelope too short");
    }
    let n = u32_at(m, 8);
    if (m.len() - META_STATES) / STATE_LEN < n as usize {
        return Err("recipient count exceeds the envelope");
    }
    Ok((u64_at(m, 0), n))
}

// ---- primitives ------------------------------------------------------------------------------

fn put_len(m: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        m.push((n as u8) | 0x80);
        n >>= 7;
    }
    m.push(n as u8);
}

fn put_str(m: &mut Vec<u8>, s: &str) {
    put_len(m, s.len());
    m.extend_from_slice(s.as_bytes());
}

fn put_opt_str(m: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => m.push(0),
        Some(s) => {
            m.push(1);
            put_str(m, s);
        }
    }
}

fn put_ip(m: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        None => m.push(0),
        Some(IpAddr::V4(a)) => {
            m.push(4);
            m.extend_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            m.push(6);
            m.extend_from_slice(&a.octets());
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("envelope field runs past its end")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn len(&mut self) -> Result<usize, &'static str> {
        let mut n = 0usize;
        for shift in (0..35).step_by(7) {
            let b = self.bytes(1)?[0];
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err("string length too long")
    }

    fn str(&mut self) -> Result<&'a str, &'static str> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| "envelope string is not UTF-8")
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, &'static str> {
        match self.bytes(1)?[0] {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err("bad optional-string tag"),
        }
    }

    fn ip(&mut self) -> Result<Option<IpAddr>, &'static str> {
        Ok(match self.bytes(1)?[0] {
            0 => None,
            4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(self.bytes(4)?).unwrap_or_default()))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(self.bytes(16)?).unwrap_or_default()))),
            _ => return Err("bad IP address tag"),
        })
    }
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn sample() -> Envelope {
        let mut r2 = Recipient::new("b@example.net");
        r2.orcpt = Some("rfc822;B@example.net".into());
        r2.notify = Notify { success: true, failure: true, delay: false, never: false };
        r2.state = RecipientState::Pending { not_before: 1_700_000_000, attempts: 3 };
        Envelope {
            id: MessageId(0),
            sender: "bounce@sender.example".into(),
            recipients: vec![Recipient::new("a@example.com"), r2],
            vmta: Some("vmta-1".into()),
            job_id: Some("job 42".into()),
            env_id: None,
            ret: Some(Ret::Headers),
            eight_bit: true,
            smtputf8: false,
            arrival_ms: 1_700_000_000_123,
            priority: None,
            dkim_options: None,
            origin: Origin {
                kind: "smtp".into(),
                helo: "feeder.example".into(),
                client_ip: Some("192.0.2.7".parse().unwrap()),
                local_ip: Some("2001:db8::1".parse().unwrap()),
                auth_user: Some("feeder".into()),
                sources: Vec::new(),
            },
        }
    }

    #[test]
    fn envelope_round_trips_through_meta() {
        let env = sample();
        let meta = encode_meta(&env, MessageId(77));
        assert_eq!(check_meta(&meta), Ok((77, 2, 2)));
        let back = decode_meta(&meta).unwrap();
        assert_eq!(back, Envelope { id: MessageId(77), ..env });
    }

    #[test]
    fn priority_is_an_optional_field_after_the_recipients() {
        let old = sample();
        let old_meta = encode_meta(&old, MessageId(5));
        let env = Envelope { priority: Some(90), ..sample() };
        let meta = encode_meta(&env, MessageId(5));
        // Without a priority the layout is the one written before the field existed.
        assert_eq!(meta[..old_meta.len()], old_meta[..]);
        assert_eq!(meta[old_meta.len()..], [OPT_PRIORITY, 90]);
        assert_eq!(check_meta(&meta), Ok((5, 2, 2)));
        assert_eq!(decode_meta(&meta).unwrap(), Envelope { id: MessageId(5), ..env });
        assert_eq!(decode_meta(&old_meta).unwrap().priority, None);
        // States stay at their fixed offsets: updating one in place keeps the priority.
        let mut updated = meta.clone();
        set_meta_state(&mut updated, 0, RecipientState::Delivered);
        assert_eq!(decode_meta(&updated).unwrap().priority, Some(90));
        // An unknown tag, a repeated field or a missing value is damage, not something to skip.
        for bad in [&[9u8, 1][..], &[OPT_PRIORITY][..], &[OPT_PRIORITY, 1, OPT_PRIORITY, 2][..]] {
            let damaged = [old_meta.as_slice(), bad].concat();
            assert!(check_meta(&damaged).is_err(), "{bad:?}");
            assert!(decode_meta(&damaged).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sources_and_dkim_options_are_optional_fields_old_records_still_read() {
        let old_meta = encode_meta(&sample(), MessageId(6));
        let mut env = sample();
        env.origin.sources = vec!["feeder".into(), "{auth}".into()];
        env.dkim_options = Some("d=example.com; l=y".into());
        let meta = encode_meta(&env, MessageId(6));
        assert_eq!(meta[..old_meta.len()], old_meta[..]);
        assert_eq!(check_meta(&meta), Ok((6, 2, 2)));
        assert_eq!(decode_meta(&meta).unwrap(), Envelope { id: MessageId(6), ..env });
        // A record written before the fields existed reads back with neither.
        let old = decode_meta(&old_meta).unwrap();
        assert!(old.origin.sources.is_empty() && old.dkim_options.is_none());
        for bad in [&[OPT_SOURCES, 5, 1, b'a'][..], &[OPT_DKIM_OPTIONS, 1, b'x', OPT_DKIM_OPTIONS, 0][..]] {
            let damaged = [old_meta.as_slice(), bad].concat();
            assert!(check_meta(&damaged).is_err(), "{bad:?}");
            assert!(decode_meta(&damaged).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn check_and_decode_agree_on_an_unknown_ret() {
        // fuzz/regressions/spool_records/check-meta-accepts-bad-ret: check_meta used to skip the
        // RET byte, so recovery indexed a message that delivery could not decode.
        let mut meta = encode_meta(&sample(), MessageId(3));
        let without = encode_meta(&Envelope { ret: None, ..sample() }, MessageId(3));
        let at = meta.iter().zip(&without).position(|(a, b)| a != b).expect("RET is encoded");
        meta[at] = 7;
        assert_eq!(decode_meta(&meta), Err("unknown RET value"));
        assert_eq!(check_meta(&meta), Err("unknown RET value"));
    }

    #[test]
    fn states_are_updated_in_place() {
        let mut meta = encode_meta(&sample(), MessageId(1));
        set_meta_state(&mut meta, 1, RecipientState::Bounced);
        assert_eq!(meta_state(&meta, 1), RecipientState::Bounced);
        assert_eq!(check_meta(&meta), Ok((1, 2, 1)));
        assert_eq!(decode_meta(&meta).unwrap().recipients[1].state, RecipientState::Bounced);
    }

    #[test]
    fn header_detects_damage_to_any_byte() {
        let rec = record(Kind::States, b"abcd");
        assert!(parse_header(&rec).is_ok());
        for i in 0..HEADER_LEN {
            let mut bad = rec.clone();
            bad[i] ^= 0x10;
            assert!(parse_header(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn message_head_checksum_covers_the_body() {
        let meta = encode_meta(&sample(), MessageId(5));
        let head = message_head(&meta, b"Subject: x\r\n\r\nhello\r\n");
        let h = parse_header(&head).unwrap();
        let mut payload = head[HEADER_LEN..].to_vec();
        payload.extend_from_slice(b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(crc32c::crc32c(&payload), h.crc);
        let (m, body) = split_message(&payload).unwrap();
        assert_eq!(m, &meta[..]);
        assert_eq!(body, b"Subject: x\r\n\r\nhello\r\n");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = check_meta(&bytes);
            let _ = decode_meta(&bytes);
            let _ = parse_states(&bytes);
            let _ = parse_header(&bytes);
            let _ = split_message(&bytes);
        }

        #[test]
        fn truncated_meta_is_rejected(cut in 0usize..100) {
            let meta = encode_meta(&sample(), MessageId(9));
            let cut = cut.min(meta.len() - 1);
            prop_assert!(check_meta(&meta[..cut]).is_err());
            prop_assert!(decode_meta(&meta[..cut]).is_err());
        }
    }
}
