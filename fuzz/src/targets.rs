//! The bodies of Ember's fuzz targets, one function per target. Each feeds hostile bytes to one
//! parser the network or the disk reaches, and asserts what must hold for any input beyond "does
//! not panic": replies are well formed, a `250` means a stored message, DATA framing does not
//! depend on how the bytes are split, checksummed spool records decode the same way in the index
//! and in delivery.
//!
//! Shared by the libFuzzer binaries (`fuzz/fuzz_targets/`) and by the main crate's
//! `tests/fuzz_smoke.rs`, which replays the corpus and the regressions as an ordinary test, so it
//! may use only `ember`, `tokio` and `std`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use ember::config::{FileCheck, load_str};
use ember::delivery::client::ehlo::Extensions;
use ember::delivery::client::reply::{MAX_REPLY_BYTES, MAX_REPLY_LINES, ReplyParser};
use ember::hygiene::store::{Entry, SuppressionStore};
use ember::hygiene::{arf, dsn};
use ember::ingress::context::Context;
use ember::ingress::session::{Connection, serve};
use ember::ingress::{MessageSink, StoreError, StoreFuture};
use ember::message::{Envelope, MessageId};
use ember::outcome::acct::{Accounting, Record, RecordType};
use ember::outcome::category::Classifier;
use ember::outcome::status;
use ember::smtp::DataReceiver;
use ember::spool::record::{self, Kind};
use ember::spool::{Spool, SpoolDir, SpoolOptions};

// ---- smtp_session ----------------------------------------------------------------------------

/// Configurations the session target runs under (first input byte picks one): a relaying source
/// with small limits, so the oversize, too-many-recipients and BDAT paths are reachable; and a
/// peer no `<source>` names (PowerMTA's defaults: no relaying).
const SESSION_CONFIGS: [(&str, [u8; 4]); 2] = [
    (
        "host-name fuzz.ember.test\n<source 127.0.0.1>\n    always-allow-relaying yes\n    max-message-size 2K\n    \
         max-rcpt-per-message 3\n    process-x-virtual-mta yes\n</source>\n<virtual-mta v1>\n</virtual-mta>\n",
        [127, 0, 0, 1],
    ),
    ("host-name fuzz.ember.test\n", [127, 0, 0, 2]),
];

/// Counts what a session stored; every fourth store fails as a full spool would.
#[derive(Default)]
struct CountingSink {
    calls: AtomicU64,
    stored: AtomicU64,
}

impl MessageSink for CountingSink {
    fn store(&self, envelope: Envelope, body: Vec<u8>) -> StoreFuture<'_> {
        Box::pin(async move {
            assert!(!envelope.recipients.is_empty(), "a message without recipients reached the spool");
            assert!(!body.is_empty(), "an empty message (not even a Received header) reached the spool");
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            if n % 4 == 3 {
                return Err(StoreError::Full("fuzz: below min-free-space".into()));
            }
            self.stored.fetch_add(1, Ordering::Relaxed);
            Ok(MessageId(n + 1))
        })
    }
}

struct SessionWorld {
    runtime: tokio::runtime::Runtime,
    contexts: Vec<(Arc<Context>, Arc<CountingSink>, [u8; 4])>,
}

fn session_world() -> &'static SessionWorld {
    static WORLD: OnceLock<SessionWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // The global suppression list and processor state live beside the scratch spool.
        let state = spool_dir().with_extension("state");
        let (suppression, _) = SuppressionStore::open(&state.join("suppression.journal")).unwrap();
        let suppression = Arc::new(suppression);
        let contexts = SESSION_CONFIGS
            .iter()
            .map(|(text, ip)| {
                let loaded = load_str("fuzz.conf", text, Path::new("/nonexistent"), FileCheck::Warn);
                assert!(!loaded.diagnostics.has_errors(), "session config: {:?}", loaded.diagnostics);
                let sink = Arc::new(CountingSink::default());
                let ctx = Context::new(
                    Arc::new(loaded.config),
                    Arc::clone(&sink) as Arc<dyn MessageSink>,
                    Accounting::default(),
                    None,
                    Arc::clone(&suppression),
                    &state,
                )
                .unwrap();
                (Arc::new(ctx), sink, *ip)
            })
            .collect();
        SessionWorld { runtime, contexts }
    })
}

/// Input: one byte choosing the configuration, one byte choosing how the client's bytes are cut
/// into writes (0: all at once), then everything the client sends. The session runs to the end
/// of the input (EOF) over an in-memory pipe.
pub fn smtp_session(data: &[u8]) {
    let [pick, cut, input @ ..] = data else { return };
    let world = session_world();
    let (ctx, sink, ip) = &world.contexts[*pick as usize % world.contexts.len()];
    let stored_before = sink.stored.load(Ordering::Relaxed);
    let output = world.runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(1 << 16);
        let conn = Connection {
            peer: SocketAddr::from((*ip, 40000)),
            local: SocketAddr::from(([127, 0, 0, 1], 25)),
            listener_source: None,
            tls: None,
            encrypted: false,
            client_names: Vec::new(),
        };
        let (mut rx, mut tx) = tokio::io::split(client);
        let writer = async move {
            let size = if *cut == 0 { input.len().max(1) } else { *cut as usize };
            for chunk in input.chunks(size) {
                if tx.write_all(chunk).await.is_err() {
                    break; // the server closed (QUIT, too many errors)
                }
            }
            let _ = tx.shutdown().await;
        };
        let reader = async move {
            let mut out = Vec::new();
            let _ = rx.read_to_end(&mut out).await;
            out
        };
        let ((), (), out) = tokio::join!(serve(Arc::clone(ctx), conn, Box::new(server)), writer, reader);
        out
    });
    let accepted = check_replies(&output);
    let stored = sink.stored.load(Ordering::Relaxed) - stored_before;
    assert_eq!(accepted, stored, "250 replies for messages vs messages stored");
}

/// Every line the server wrote is `DDD[ -]text` CRLF with a 2xx–5xx code. Returns how many
/// message acceptances (`250 2.6.0`) there were.
fn check_replies(output: &[u8]) -> u64 {
    assert!(output.is_empty() || output.ends_with(b"\r\n"), "output ends mid-line: {output:?}");
    let mut accepted = 0;
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("reply line without CR");
        let ok = line.len() >= 4
            && line[..3].iter().all(u8::is_ascii_digit)
            && (b'2'..=b'5').contains(&line[0])
            && matches!(line[3], b' ' | b'-')
            && !line.contains(&b'\r');
        assert!(ok, "malformed reply line {:?}", String::from_utf8_lossy(line));
        if line.starts_with(b"250 2.6.0 ") {
            accepted += 1;
        }
    }
    accepted
}

// ---- data_bdat -------------------------------------------------------------------------------

/// What RFC 5321 §4.5.2 says the DATA input means: CRLF-terminated lines, the first one starting
/// right after the DATA command; a line that is exactly `.` ends the data; a leading dot is
/// removed from any other line. Returns the message and the bytes consumed, or None when the end
/// has not arrived.
pub fn reference_data(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut start = 0;
    loop {
        let end = start + input[start..].windows(2).position(|w| w == b"\r\n")?;
        let line = &input[start..end];
        if line == b"." {
            return Some((body, end + 2));
        }
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        body.extend_from_slice(b"\r\n");
        start = end + 2;
    }
}

/// Runs Ember's DATA receiver over `input` cut at `cuts`; returns the message and the bytes
/// consumed when it saw the end.
fn ember_data(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<usize>) {
    let mut r = DataReceiver::new();
    let mut body = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        let to = to.clamp(from, input.len());
        let (used, done) = r.ingest(&input[from..to], &mut body);
        if done {
            return (body, Some(from + used));
        }
        assert_eq!(used, to - from, "the receiver left bytes unread before the end of data");
        from = to;
    }
    (body, None)
}

/// Input: one byte N, N cut points (one byte each, as gaps), then the DATA stream. Ember's
/// receiver must agree with the RFC reference however the stream is cut into reads. The same
/// bytes then go through a BDAT chunk of the first cut's size, which must take exactly that many.
pub fn data_bdat(data: &[u8]) {
    let [n, rest @ ..] = data else { return };
    let n = (*n as usize % 16).min(rest.len());
    let (gaps, input) = rest.split_at(n);
    let mut cuts = Vec::with_capacity(n);
    let mut at = 0;
    for g in gaps {
        at += *g as usize;
        cuts.push(at);
    }
    let whole = ember_data(input, &[]);
    let split = ember_data(input, &cuts);
    assert_eq!(whole, split, "DATA result depends on how the input was split ({cuts:?})");
    match reference_data(input) {
        Some((body, used)) => {
            assert_eq!(whole.1, Some(used), "end of data at a different place than RFC 5321's");
            assert_eq!(whole.0, body, "message differs from RFC 5321 unstuffing");
        }
        None => assert_eq!(whole.1, None, "end of data where RFC 5321 sees none"),
    }

    let size = cuts.first().copied().unwrap_or(input.len()).min(input.len());
    let mut bdat = smtp_proto::request::receiver::BdatReceiver::new(size, false);
    let mut chunk = Vec::new();
    let mut done = size == 0;
    let mut from = 0;
    for &to in cuts.iter().skip(1).chain(std::iter::once(&input.len())) {
        let to = to.clamp(from, input.len());
        let mut iter = input[from..to].iter();
        done = bdat.ingest(&mut iter, &mut chunk) || done;
        from = to - iter.as_slice().len();
        if done {
            break;
        }
    }
    assert!(done, "BDAT chunk of {size} bytes not complete after {} bytes", input.len());
    assert_eq!(chunk, &input[..size], "BDAT chunk is not the bytes that followed the command");
}

// ---- config ----------------------------------------------------------------------------------

/// Input: configuration text (lossily decoded from UTF-8, as a file with a bad byte is refused
/// before parsing anyway). Runs lexer, tree, model and validation; a config without errors is
/// then resolved for a few queues, as `ember run` does.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // `include` reads other files: /dev/zero or a FIFO would turn the target into a test of
    // the file system. Include handling has its own unit tests.
    if text.to_ascii_lowercase().contains("include") {
        return;
    }
    let loaded = load_str("fuzz.conf", &text, Path::new("/nonexistent-ember-fuzz"), FileCheck::Warn);
    for d in loaded.diagnostics.iter() {
        // Every diagnostic points into the input: FILE:LINE:COL must be real.
        let loc = &d.location;
        assert!(loc.line as usize <= text.lines().count() + 1, "diagnostic past the end: {d:?}");
    }
    if loaded.diagnostics.has_errors() {
        return;
    }
    let config = loaded.config;
    let _ = config.summary();
    let _ = config.not_yet_enforced();
    for domain in ["example.com", "gmail.com", "a.b.example.net"] {
        let _ = config.queue_settings(domain, None);
    }
}

// ---- reply_ehlo ------------------------------------------------------------------------------

/// Input: what a remote server sends. Split into lines at LF (a trailing CR dropped, as the
/// client's wire does), fed to the reply parser; each complete reply is read as an EHLO reply.
pub fn reply_ehlo(data: &[u8]) {
    let mut parser = ReplyParser::default();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parser.push(line) {
            Ok(None) => assert!(parser.pending_bytes() <= MAX_REPLY_BYTES, "reply grew past its bound"),
            Ok(Some(reply)) => {
                assert!((200..600).contains(&reply.code), "code {} accepted", reply.code);
                assert!(reply.text.len() <= MAX_REPLY_BYTES, "reply text past its bound");
                assert!(reply.text.split('\n').count() <= MAX_REPLY_LINES, "reply lines past their bound");
                let ext = Extensions::parse(&reply);
                assert!(ext.keywords.iter().all(|k| k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
                let mut wire = Vec::new();
                reply.write_to(&mut wire);
            }
            // A protocol error ends the session; a new one starts with a fresh parser.
            Err(_) => parser = ReplyParser::default(),
        }
    }
}

// ---- arf_report / dsn_report ----------------------------------------------------------------

/// A boundary no fuzz input is expected to contain; an input that does is skipped in the
/// wrapped modes, since it would legitimately change the MIME structure around it.
const BOUNDARY: &str = "ember-fuzz-7f3a9c1e";

/// Wraps `part` as the body of one part of a `multipart/report` after a human-readable part,
/// followed by an included original message whose `To:` is `original_to`.
fn report(report_type: &str, part_type: &str, part: &[u8], original_to: &str) -> Option<Vec<u8>> {
    let marker = format!("--{BOUNDARY}");
    if part.windows(marker.len()).any(|w| w == marker.as_bytes()) {
        return None;
    }
    let mut out = format!(
        "From: <reports@isp.example>\r\nTo: <fbl@ember.test>\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type={report_type}; boundary=\"{BOUNDARY}\"\r\n\r\n\
         --{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nA report.\r\n--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(part);
    out.extend_from_slice(
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Type: message/rfc822\r\n\r\nFrom: <news@news.example>\r\n\
             To: <{original_to}>\r\nSubject: offer\r\nX-Job: fuzz\r\n\r\nbody\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    Some(out)
}

/// The two input modes of the report targets: bit 0 of the first byte clear, the rest is the
/// whole message; set, the rest is wrapped as one part of a `report_type` report (`None` when it
/// contains the boundary). Whether it was wrapped, the fuzzer's bytes, and the message.
fn report_input<'a>(
    data: &'a [u8],
    report_type: &str,
    part_type: &str,
    original_to: &str,
) -> Option<(bool, &'a [u8], Vec<u8>)> {
    let [mode, rest @ ..] = data else { return None };
    let wrapped = mode & 1 == 1;
    let message = if wrapped { report(report_type, part_type, rest, original_to)? } else { rest.to_vec() };
    Some((wrapped, rest, message))
}

/// What the accounting file wants from a report's original headers in these targets.
fn wanted_headers() -> &'static [String] {
    static WANTED: OnceLock<Vec<String>> = OnceLock::new();
    WANTED.get_or_init(|| vec!["x-job".to_string(), "subject".to_string()])
}

/// An address a parser hands on must be one: a non-empty local part and domain, no whitespace
/// (it becomes a suppression entry and a CSV field).
fn assert_address(what: &str, address: &str) {
    let (local, domain) = address.rsplit_once('@').unwrap_or_else(|| panic!("{what} {address:?} has no @"));
    assert!(!local.is_empty() && !domain.is_empty(), "{what} {address:?} is not an address");
    assert!(!address.contains(char::is_whitespace), "{what} {address:?} contains whitespace");
}

/// Input: first byte bit 0 clear = the rest is a whole message given to the feedback-loop
/// processor's parser (`hygiene::arf`: ARF multipart/report or a JMRP forward); set = the rest is
/// the body of the `message/feedback-report` part of an otherwise well-formed ARF report, so the
/// fuzzer works on the field parser instead of rediscovering MIME.
///
/// A parsed complaint names a usable address, a lower-case feedback type and a header block
/// ending in an empty line; a wrapped report always parses (its original message has a `To:`),
/// and its recipient is the report's own `Original-Rcpt-To` or else that `To:`. The complaint is
/// then carried through what the processor does with it: a suppression entry and an `f` record.
pub fn arf_report(data: &[u8]) {
    let Some((wrapped, rest, message)) =
        report_input(data, "feedback-report", "message/feedback-report", "victim@isp.example")
    else {
        return;
    };
    let complaint = match arf::parse(&message) {
        Ok(c) => c,
        Err(e) => {
            assert!(!wrapped, "a well-formed ARF report around {:?} was refused: {e}", String::from_utf8_lossy(rest));
            return;
        }
    };
    assert!(complaint.format == "arf" || complaint.format == "jmrp", "format {}", complaint.format);
    assert_address("complaint recipient", &complaint.rcpt);
    if !complaint.orig.is_empty() {
        assert_address("complaint sender", &complaint.orig);
    }
    assert_eq!(complaint.feedback_type, complaint.feedback_type.to_lowercase(), "feedback type not lower case");
    assert!(
        complaint.headers.is_empty() || complaint.headers.ends_with(b"\r\n"),
        "original header block without its end: {:?}",
        String::from_utf8_lossy(&complaint.headers)
    );
    if wrapped {
        assert_eq!(complaint.format, "arf");
        assert!(String::from_utf8_lossy(&complaint.headers).contains("X-Job: fuzz"), "included headers lost");
        if complaint.rcpt != "victim@isp.example" {
            let given = String::from_utf8_lossy(rest).to_lowercase();
            assert!(given.contains("original-rcpt-to"), "recipient {:?} came from nowhere", complaint.rcpt);
        }
    }
    let _ = Entry::parse(&complaint.rcpt);
    let record = Record::new(RecordType::FeedbackLoop)
        .set("feedbackType", complaint.feedback_type.clone())
        .set("rcpt", complaint.rcpt.clone())
        .set("reportedDomain", complaint.reported_domain.clone())
        .headers_from(&complaint.headers, wanted_headers());
    assert_eq!(record.get("rcpt"), complaint.rcpt);
}

/// Input: like `arf_report`, for the bounce processor's parser (`hygiene::dsn`, RFC 3464): bit 0
/// of the first byte clear = a whole message; set = the body of the `message/delivery-status`
/// part of an otherwise well-formed DSN.
///
/// A parsed DSN has at least one recipient, each with a usable address, a lower-case action
/// (derived from the status when the report gives none) and a status with no whitespace; a
/// wrapped DSN is refused only for naming no recipient. Each recipient is then classified into a
/// bounce category and its status described, as the processor does before writing `rb`/`rs`.
pub fn dsn_report(data: &[u8]) {
    let Some((wrapped, rest, message)) =
        report_input(data, "delivery-status", "message/delivery-status", "gone@remote.example")
    else {
        return;
    };
    let parsed = match dsn::parse(&message) {
        Ok(d) => d,
        Err(e) => {
            assert!(
                !wrapped || e == dsn::DsnError::NoRecipient,
                "a well-formed DSN around {:?} was refused: {e}",
                String::from_utf8_lossy(rest)
            );
            return;
        }
    };
    assert!(!parsed.recipients.is_empty(), "a DSN without recipients was accepted");
    let classifier = default_classifier();
    for r in &parsed.recipients {
        assert_address("bounced recipient", &r.rcpt);
        if !r.orcpt.is_empty() {
            assert_address("original recipient", &r.orcpt);
        }
        assert!(!r.action.is_empty() && r.action == r.action.to_lowercase(), "action {:?}", r.action);
        assert!(!r.status.contains(char::is_whitespace), "status {:?}", r.status);
        let category = classifier.classify(&r.status, &r.diag);
        assert!(!category.is_empty(), "no bounce category for {:?} {:?}", r.status, r.diag);
        let _ = status::status_text(&r.status);
        let _ = Entry::parse(&r.rcpt);
    }
    if wrapped {
        assert!(String::from_utf8_lossy(&parsed.headers).contains("X-Job: fuzz"), "included headers lost");
    }
}

fn default_classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| Classifier::new(&[]))
}

// ---- spool_records ---------------------------------------------------------------------------

/// A scratch spool directory per process, in memory when /dev/shm exists.
fn spool_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("ember-fuzz-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Input: first byte bit 0 clear = the rest is a raw segment file; set = the rest is a list of
/// records `[kind u8][len u16 le][payload]` that the harness frames with valid checksums (so the
/// fuzzer reaches the payload decoders instead of stopping at the CRC); another kind byte copies
/// `len` raw bytes (damage between good records).
///
/// Every record is checked and decoded in memory the way recovery does, and every message
/// payload both ways recovery (`check_meta`, for the index) and delivery (`decode_meta`) read it:
/// they must agree. When bits 1 and 2 of the first byte are set, the segment is also written to
/// a scratch directory and recovered read-only through the public `Spool::open`, and every live
/// message's envelope and body are read back. (Only then: opening files costs ~10× the decode.)
pub fn spool_records(data: &[u8]) {
    let [mode, rest @ ..] = data else { return };
    let segment = if mode & 1 == 0 { rest.to_vec() } else { frame_records(rest) };
    let mut at = 0;
    while at < segment.len() {
        let Ok(h) = record::parse_header(&segment[at..]) else {
            // Recovery resynchronises on the next magic; so does this walk.
            at += 1;
            continue;
        };
        let end = at.saturating_add(h.total() as usize);
        if end > segment.len() {
            at += 1;
            continue;
        }
        let payload = &segment[at + record::HEADER_LEN..end];
        if crc32c::crc32c(payload) != h.crc {
            at += 1;
            continue;
        }
        match h.kind {
            Kind::SegmentStart => {
                let _ = record::parse_segment_start(payload);
            }
            Kind::States => {
                if let Ok(changes) = record::parse_states(payload) {
                    assert_eq!(4 + changes.len() * record::CHANGE_LEN, payload.len(), "state records are fixed size");
                }
            }
            Kind::Message => {
                if let Ok((meta, _)) = record::split_message(payload) {
                    match (record::check_meta(meta), record::decode_meta(meta)) {
                        (Ok((id, n, pending)), Ok(env)) => {
                            assert_eq!(
                                (id, n as usize),
                                (env.id.0, env.recipients.len()),
                                "index and decoder disagree"
                            );
                            let live = env.recipients.iter().filter(|r| !r.state.is_final()).count();
                            assert_eq!(pending as usize, live, "pending count vs decoded states");
                        }
                        (Err(_), Err(_)) => {}
                        (check, decode) => panic!("check_meta {check:?} but decode_meta {:?}", decode.map(|e| e.id)),
                    }
                }
            }
        }
        at = end;
    }
    if mode & 6 == 6 {
        recover_segment(&segment);
    }
}

/// Removes the scratch spool directory (for the smoke test; libFuzzer runs just exit).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(spool_dir());
    let _ = std::fs::remove_dir_all(spool_dir().with_extension("state"));
}

fn recover_segment(segment: &[u8]) {
    let dir = spool_dir();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("0000000000000001.seg"), segment).unwrap();
    let options = SpoolOptions { read_only: true, ..SpoolOptions::new(vec![SpoolDir::new(dir)]) };
    if let Ok((spool, report)) = Spool::open(options) {
        let mut live = 0;
        spool.for_each_live(|env| {
            live += 1;
            assert!(!env.recipients.is_empty());
            let body = spool.read_body(env.id);
            assert!(body.is_ok(), "indexed message {} has no readable body: {body:?}", env.id);
        });
        assert_eq!(live, report.messages, "live messages vs recovery report");
    }
}

fn frame_records(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [kind, a, b, rest @ ..] = input {
        let len = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        match kind % 8 {
            1 => out.extend_from_slice(&record::record(Kind::SegmentStart, payload)),
            2 => out.extend_from_slice(&record::record(Kind::Message, payload)),
            3 => out.extend_from_slice(&record::record(Kind::States, payload)),
            _ => out.extend_from_slice(payload),
        }
        input = tail;
    }
    out
}
