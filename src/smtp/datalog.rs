//! `log-data`: a message's data in the log, line by line as it crossed the wire (received by the
//! ingress, sent by a delivery connection, posted to the transmissions API). Bytes that are not
//! printable ASCII are written as `\xNN`, so a log line is always one line of valid text. At most
//! `MAX_LOGGED` bytes of one message are logged: one large message must not flood the log.

/// Bytes of one message logged; the rest is counted, not shown.
pub const MAX_LOGGED: usize = 64 * 1024;

/// The lines of `data` as logged (escaped, without line endings), and how many bytes past
/// `MAX_LOGGED` were left out.
pub fn lines(data: &[u8]) -> (Vec<String>, usize) {
    let shown = &data[..data.len().min(MAX_LOGGED)];
    let mut out = Vec::new();
    let mut rest = shown;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |p| p + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push(escape(line));
    }
    (out, data.len() - shown.len())
}

fn escape(line: &[u8]) -> String {
    let mut s = String::with_capacity(line.len());
    for &b in line {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Logs `data` (info), each line prefixed by `context` (who sent it to whom).
pub fn log(context: &str, data: &[u8]) {
    let (lines, left_out) = lines(data);
    for line in lines {
        tracing::info!("{context} data: {line}");
    }
    if left_out > 0 {
        tracing::info!("{context} data: ... {left_out} more bytes not logged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_escaped() {
        let (l, left) = lines(b"Subject: hi\r\n\r\nbody \xc3\xa9\\ \x1b\r\nlast");
        assert_eq!(l, ["Subject: hi", "", "body \\xc3\\xa9\\x5c \\x1b", "last"]);
        assert_eq!(left, 0);
    }

    #[test]
    fn a_large_message_is_cut_and_the_rest_counted() {
        let big = vec![b'a'; MAX_LOGGED + 10];
        let (l, left) = lines(&big);
        assert_eq!((l.len(), l[0].len(), left), (1, MAX_LOGGED, 10));
    }
}
