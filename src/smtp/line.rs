//! Command-line framing with a hard length limit.
//!
//! smtp-proto's receiver buffers partial lines but, past its limit, resumes parsing in the middle
//! of the oversized line, which turns one 10 MB line into thousands of error replies. Framing here
//! instead discards an oversized line up to its LF and reports it once.

/// What the framer produced from the buffered input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line including its LF.
    Complete(&'a [u8]),
    /// A line longer than the limit was skipped (up to and including its LF).
    TooLong,
    /// No complete line yet.
    Incomplete,
}

/// Finds command lines in a byte buffer the caller owns. `consume` tells how much of the buffer
/// the last call used.
#[derive(Debug)]
pub struct LineReader {
    limit: usize,
    /// Discarding the rest of an oversized line.
    skipping: bool,
}

impl LineReader {
    pub fn new(limit: usize) -> Self {
        LineReader { limit, skipping: false }
    }

    /// Looks for the next line in `buf`. Returns the line and how many bytes to drop from the
    /// front of the buffer.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> (Line<'a>, usize) {
        let newline = buf.iter().position(|&b| b == b'\n');
        if self.skipping {
            return match newline {
                Some(pos) => {
                    self.skipping = false;
                    (Line::TooLong, pos + 1)
                }
                None => (Line::Incomplete, buf.len()),
            };
        }
        match newline {
            Some(pos) if pos < self.limit => (Line::Complete(&buf[..=pos]), pos + 1),
            Some(pos) => (Line::TooLong, pos + 1),
            None if buf.len() >= self.limit => {
                self.skipping = true;
                (Line::Incomplete, buf.len())
            }
            None => (Line::Incomplete, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_skips_long_lines_once() {
        let mut r = LineReader::new(8);
        assert_eq!(r.next(b"NOOP\r\nQU"), (Line::Complete(b"NOOP\r\n"), 6));
        assert_eq!(r.next(b"QU"), (Line::Incomplete, 0));
        assert_eq!(r.next(b"AAAAAAAAAAAA"), (Line::Incomplete, 12));
        assert_eq!(r.next(b"AAAA"), (Line::Incomplete, 4));
        assert_eq!(r.next(b"AA\r\nQUIT\r\n"), (Line::TooLong, 4));
        assert_eq!(r.next(b"QUIT\r\n"), (Line::Complete(b"QUIT\r\n"), 6));
    }
}
