//! A message's header block as the stages that read or edit it see it: ingress (control headers,
//! `remove-header`, hop and loop limits, pattern lists), delivery (added headers), DKIM
//! (canonicalization) and hygiene (reading reports).
//!
//! Works on the raw header block only; the body is never parsed. What each stage does with the
//! headers stays with that stage.

/// One header field as it appears in the message, including folded continuation lines and the
/// final CRLF.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: usize,
    end: usize,
    name_end: usize,
}

/// The header block of a message, split into fields.
pub struct Header<'a> {
    raw: &'a [u8],
    fields: Vec<Field>,
    /// Where the header block ends (the start of the empty line, or the end of the message).
    end: usize,
}

impl<'a> Header<'a> {
    pub fn parse(message: &'a [u8]) -> Header<'a> {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        while pos < message.len() {
            let line_end = message[pos..].iter().position(|&b| b == b'\n').map_or(message.len(), |p| pos + p + 1);
            let line = &message[pos..line_end];
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            match line.first() {
                Some(b' ' | b'\t') if !fields.is_empty() => {
                    fields.last_mut().expect("checked").end = line_end;
                }
                _ => match line.iter().position(|&b| b == b':') {
                    Some(colon) if colon > 0 && line[..colon].iter().all(|b| b.is_ascii_graphic()) => {
                        fields.push(Field { start: pos, end: line_end, name_end: pos + colon });
                    }
                    // Not a header line: the header block ends here (a message with no blank line
                    // before its body).
                    _ => break,
                },
            }
            pos = line_end;
        }
        Header { raw: message, fields, end: pos }
    }

    fn name(&self, f: &Field) -> &'a [u8] {
        &self.raw[f.start..f.name_end]
    }

    /// Unfolded, trimmed value of a field.
    fn value(&self, f: &Field) -> String {
        let raw = &self.raw[f.name_end + 1..f.end];
        let text = String::from_utf8_lossy(raw);
        text.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// The first value of a header, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<String> {
        self.fields.iter().find(|f| self.name(f).eq_ignore_ascii_case(name.as_bytes())).map(|f| self.value(f))
    }

    /// Every raw value of a header, by case-insensitive name, in message order: what follows the
    /// colon and the blanks after it, folded lines kept with their CRLF and leading whitespace,
    /// without the field's final line end (what `<pattern-list> header` matches).
    pub fn raw_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.fields.iter().filter(move |f| self.name(f).eq_ignore_ascii_case(name.as_bytes())).map(|f| {
            let value = &self.raw[f.name_end + 1..f.end];
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            let value = value.strip_suffix(b"\r").unwrap_or(value);
            let blanks = value.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            &value[blanks..]
        })
    }

    /// Every field as (name, raw value after the colon up to and including its final line end),
    /// in message order: the form DKIM canonicalization reads.
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.fields.iter().map(|f| (self.name(f), &self.raw[f.name_end + 1..f.end]))
    }

    /// The body: what follows the empty line ending the header block (empty when there is none).
    pub fn body(&self) -> &'a [u8] {
        let rest = &self.raw[self.end..];
        rest.strip_prefix(b"\r\n").or_else(|| rest.strip_prefix(b"\n")).unwrap_or(&[])
    }

    pub fn count(&self, name: &str) -> usize {
        self.fields.iter().filter(|f| self.name(f).eq_ignore_ascii_case(name.as_bytes())).count()
    }

    /// Received headers that name one of `hosts` after `by`: how many times the message has already
    /// passed through this host.
    pub fn loops_through(&self, hosts: &[String]) -> usize {
        self.fields
            .iter()
            .filter(|f| self.name(f).eq_ignore_ascii_case(b"received"))
            .filter(|f| {
                let v = self.value(f).to_lowercase();
                let mut words = v.split_whitespace();
                let mut hit = false;
                while let Some(w) = words.next() {
                    if w == "by"
                        && words
                            .next()
                            .is_some_and(|h| hosts.iter().any(|x| x.eq_ignore_ascii_case(h.trim_end_matches(';'))))
                    {
                        hit = true;
                    }
                }
                hit
            })
            .count()
    }

    /// Rebuilds the message: `prepend` first, then every field not in `remove` (case-insensitive
    /// names), then `append` at the end of the header block, then the rest of the message.
    pub fn rewrite(&self, prepend: &[u8], remove: &[String], append: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + prepend.len() + append.len());
        out.extend_from_slice(prepend);
        for f in &self.fields {
            let name = self.name(f);
            if !remove.iter().any(|r| name.eq_ignore_ascii_case(r.as_bytes())) {
                out.extend_from_slice(&self.raw[f.start..f.end]);
            }
        }
        out.extend_from_slice(append);
        out.extend_from_slice(&self.raw[self.end..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Received: from a by mta.example.net; x\r\nX-Virtual-MTA: vmta1\r\nSubject: hi\r\n there\r\nreceived: from b\r\n  by MTA.example.net; y\r\n\r\nbody\r\nX-Virtual-MTA: not a header\r\n";

    #[test]
    fn reads_folded_values_and_counts() {
        let h = Header::parse(MSG);
        assert_eq!(h.get("subject").as_deref(), Some("hi there"));
        assert_eq!(h.get("x-virtual-mta").as_deref(), Some("vmta1"));
        assert_eq!(h.count("Received"), 2);
        assert_eq!(h.loops_through(&["mta.example.net".into()]), 2);
        assert_eq!(h.loops_through(&["other.example".into()]), 0);
    }

    #[test]
    fn raw_values_keep_folding_and_every_occurrence() {
        let h = Header::parse(MSG);
        let subject: Vec<&[u8]> = h.raw_values("SUBJECT").collect();
        assert_eq!(subject, [&b"hi\r\n there"[..]]);
        let received: Vec<&[u8]> = h.raw_values("received").collect();
        assert_eq!(received, [&b"from a by mta.example.net; x"[..], &b"from b\r\n  by MTA.example.net; y"[..]]);
        assert_eq!(h.raw_values("x-missing").count(), 0);
    }

    #[test]
    fn rewrite_removes_only_header_fields() {
        let h = Header::parse(MSG);
        let out = h.rewrite(b"Received: by us\r\n", &["x-virtual-mta".into()], b"Message-ID: <1@x>\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Received: by us\r\nReceived: from a"));
        assert!(!text[..text.find("\r\n\r\n").unwrap()].contains("X-Virtual-MTA"));
        assert!(text.contains("Message-ID: <1@x>\r\n\r\nbody\r\nX-Virtual-MTA: not a header\r\n"));
    }

    #[test]
    fn message_without_blank_line_or_headers() {
        let h = Header::parse(b"just text\r\n");
        assert_eq!(h.count("x"), 0);
        assert_eq!(h.rewrite(b"A: b\r\n", &[], b""), b"A: b\r\njust text\r\n");
    }
}
