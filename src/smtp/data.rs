//! The DATA receiver: finds the end of a message (`CRLF . CRLF`) and removes dot-stuffing
//! (RFC 5321 §4.5.2), streaming, whatever way the bytes are split into reads.
//!
//! Hand-written rather than smtp-proto's `DataReceiver`, which fuzzing showed to differ from
//! RFC 5321 in three ways (see `fuzz/README.md`): it starts as if in the middle of a line, so a
//! message whose first line is `.` (an empty message) never ends and a first line starting with
//! `..` keeps its stuffed dot; and it takes `CRLF . CR CR LF` as the end of the data, which no
//! other MTA does (a message-boundary disagreement of the SMTP smuggling kind).
//!
//! Only `CRLF` ends a line: a bare LF or CR is data, and `LF . CRLF` is not the end (the same
//! rule Postfix applies since the 2023 smuggling fixes, minus its bare-LF rejection).

/// Where the receiver is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line (the data starts here: the DATA command's CRLF precedes it).
    LineStart,
    /// A line started with `.`, which was dropped (unstuffing).
    Dot,
    /// A line started with `.` CR; the CR is held back until we know it is not the end.
    DotCr,
    /// Inside a line, the last byte was not CR.
    Text,
    /// Inside a line, the last byte was CR.
    Cr,
}

#[derive(Debug)]
pub struct DataReceiver {
    state: State,
}

impl Default for DataReceiver {
    fn default() -> Self {
        DataReceiver::new()
    }
}

impl DataReceiver {
    pub fn new() -> Self {
        DataReceiver { state: State::LineStart }
    }

    /// Appends the unstuffed message from `input` to `body`. Returns how many bytes of `input`
    /// belong to the message (the rest follows the end of data and is the next command) and
    /// whether the end of data was seen. The final `.CRLF` is consumed, not stored; the CRLF
    /// before it ends the message's last line and is stored.
    pub fn ingest(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // The common case: copy up to the next CR in one go.
                match memchr::memchr(b'\r', &input[i..]) {
                    Some(k) => {
                        body.extend_from_slice(&input[i..=i + k]);
                        i += k + 1;
                        self.state = State::Cr;
                    }
                    None => {
                        body.extend_from_slice(&input[i..]);
                        return (input.len(), false);
                    }
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot, b'\r') => State::DotCr,
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return (i, true);
                }
                (State::DotCr, b) => {
                    body.push(b'\r');
                    body.push(b);
                    after(b'\r', b)
                }
                (State::LineStart | State::Dot | State::Cr | State::Text, b) => {
                    body.push(b);
                    let prev = if self.state == State::Cr { b'\r' } else { 0 };
                    after(prev, b)
                }
            };
        }
        (input.len(), false)
    }
}

/// The state after byte `b` was stored, `prev` being the byte stored before it.
fn after(prev: u8, b: u8) -> State {
    match (prev, b) {
        (b'\r', b'\n') => State::LineStart,
        (_, b'\r') => State::Cr,
        _ => State::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(chunks: &[&[u8]]) -> (Vec<u8>, bool, Vec<u8>) {
        let mut r = DataReceiver::new();
        let mut body = Vec::new();
        for (k, chunk) in chunks.iter().enumerate() {
            let (used, done) = r.ingest(chunk, &mut body);
            if done {
                let mut rest = chunk[used..].to_vec();
                chunks[k + 1..].iter().for_each(|c| rest.extend_from_slice(c));
                return (body, true, rest);
            }
            assert_eq!(used, chunk.len());
        }
        (body, false, Vec::new())
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_unstuffs() {
        let (body, done, rest) = receive(&[b"Subject: x\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n"]);
        assert!(done);
        assert_eq!(body, b"Subject: x\r\n\r\n.dot\r\nend\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn an_empty_message_and_a_dot_on_the_first_line() {
        // smtp-proto's receiver never ended the first and kept the stuffed dot of the second.
        assert_eq!(receive(&[b".\r\n"]), (Vec::new(), true, Vec::new()));
        assert_eq!(receive(&[b"..x\r\n.\r\n"]).0, b".x\r\n");
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        // smtp-proto ended the data at CRLF . CR CR LF.
        let (body, done, _) = receive(&[b"a\r\n.\r\r\nb\r\n.\r\n"]);
        assert!(done);
        assert_eq!(body, b"a\r\n\r\r\nb\r\n");
        for not_end in [&b"a\n.\n"[..], b"a\r.\r", b"a\n.\r\n", b"a\r\n.\n", b"a\r\n. \r\n"] {
            let (_, done, _) = receive(&[not_end]);
            assert!(!done, "{:?} ended the data", String::from_utf8_lossy(not_end));
        }
    }

    #[test]
    fn any_split_gives_the_same_message() {
        let input: &[u8] = b"..a\r\n\r\r\n.\r\r\n.b\rc\n.\r\nx\r\n.\r\nNOOP\r\n";
        let whole = receive(&[input]);
        for cut in 0..input.len() {
            assert_eq!(receive(&[&input[..cut], &input[cut..]]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(receive(&bytes), whole);
    }
}
