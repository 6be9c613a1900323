//! What ARF and DSN reports have in common: a MIME structure whose parts are found by content
//! type (mail-parser), machine-readable parts made of `Name: value` field blocks (RFC 5965 §3.1,
//! RFC 3464 §2.1), and an included copy of the original message or its headers.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use crate::message::headers::Header;

/// Reports bigger than this are not parsed (a complaint or a bounce is a few kilobytes plus the
/// original message); they are kept as unprocessed instead.
pub const MAX_REPORT: usize = 10 << 20;

/// A parsed message with its parts' bytes.
pub struct Parsed<'x> {
    pub message: Message<'x>,
}

impl<'x> Parsed<'x> {
    pub fn parse(raw: &'x [u8]) -> Option<Parsed<'x>> {
        MessageParser::default().parse(raw).map(|message| Parsed { message })
    }

    /// The `report-type` of a top-level `multipart/report`, lower case.
    pub fn report_type(&self) -> Option<String> {
        let ct = self.message.content_type()?;
        (ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")))
            .then(|| ct.attribute("report-type").unwrap_or("").to_lowercase())
    }

    /// The bytes of the first part with this content type (a machine-readable report part).
    pub fn part(&self, ctype: &str, subtype: &str) -> Option<Vec<u8>> {
        self.message.parts.iter().find(|p| p.is_content_type(ctype, subtype)).map(|p| match &p.body {
            PartType::Message(_) => self.raw(p).to_vec(),
            _ => p.contents().to_vec(),
        })
    }

    /// The raw bytes of a part's body (a nested message as it was written).
    fn raw(&self, part: &mail_parser::MessagePart<'_>) -> &[u8] {
        self.message.raw_message.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default()
    }

    /// The header block of the included original message (`message/rfc822`, `message/global`
    /// or `text/rfc822-headers`), if any.
    pub fn original_headers(&self) -> Option<Vec<u8>> {
        for p in &self.message.parts {
            match &p.body {
                PartType::Message(_) => return Some(header_block(self.raw(p))),
                _ if p.is_content_type("text", "rfc822-headers") => return Some(header_block(p.contents())),
                _ => {}
            }
        }
        None
    }
}

/// The header block of a message (up to the empty line), with a final empty line.
pub fn header_block(raw: &[u8]) -> Vec<u8> {
    let h = Header::parse(raw);
    let mut out: Vec<u8> = Vec::new();
    for (name, value) in h.fields() {
        out.extend_from_slice(name);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Field blocks separated by empty lines; each field unfolded, names lower case.
pub fn field_blocks(text: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(text);
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = block.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_lowercase(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

/// The first value of a field in a block.
pub fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Every value of a field in a block.
pub fn fields<'a>(block: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    block.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `rfc822; user@example.com` or `<user@example.com>` → `user@example.com`; `None` when no
/// address is there.
pub fn address(value: &str) -> Option<String> {
    let v = value.split_once(';').map_or(value, |(kind, rest)| if kind.contains('@') { value } else { rest });
    let v = match (v.rfind('<'), v.rfind('>')) {
        (Some(l), Some(r)) if l < r => &v[l + 1..r],
        _ => v,
    };
    let v = v.trim();
    let (local, domain) = v.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !v.contains(char::is_whitespace)).then(|| v.to_string())
}

/// `dns; mx.example.com` → `mx.example.com`.
pub fn mta(value: &str) -> String {
    value.split_once(';').map_or(value, |(_, v)| v).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_unfold_and_addresses_lose_their_type() {
        let blocks = field_blocks(
            b"Reporting-MTA: dns; a.example\r\n\r\nFinal-Recipient: rfc822;\r\n x@y.example\r\nStatus: 5.1.1\r\n",
        );
        assert_eq!(blocks.len(), 2);
        assert_eq!(field(&blocks[1], "final-recipient"), Some("rfc822; x@y.example"));
        assert_eq!(address("rfc822; x@y.example").as_deref(), Some("x@y.example"));
        assert_eq!(address("<a@b.example>").as_deref(), Some("a@b.example"));
        assert_eq!(address("rfc822; undisclosed"), None);
        assert_eq!(mta("dns; mx.example.com"), "mx.example.com");
    }
}
