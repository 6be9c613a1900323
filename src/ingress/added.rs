//! What injection adds to a message beyond the Received, Message-ID and Date basics of
//! `finish.rs`: the `include-headers-from` files (global, per virtual MTA or pool), the
//! `host-id` in generated Message-IDs, the `X-DKIM-Options` header taken into the envelope, and
//! the source's `bcc` archive recipient.
//!
//! The header files are read once per configuration generation (start, reload), so a file that
//! cannot be read or is not a header block stops the generation with the file's name instead of
//! failing messages one at a time.

use std::collections::HashMap;

use crate::config::settings::Settings;
use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::message::{Notify, Recipient};

/// The `include-headers-from` header blocks of one generation, CRLF-terminated and ready to
/// insert: the global one and each virtual MTA's or pool's own.
#[derive(Debug, Default)]
pub struct IncludedHeaders {
    global: Vec<u8>,
    own: HashMap<String, Vec<u8>>,
}

impl IncludedHeaders {
    /// Reads every file the config names; the errors name the file and what is wrong.
    pub fn from_config(config: &Config) -> Result<IncludedHeaders, Vec<String>> {
        let mut errors = Vec::new();
        let mut read = |settings: &Settings| -> Vec<u8> {
            let mut block = Vec::new();
            for e in settings.all(Dir::IncludeHeadersFrom) {
                let Value::Path(p) = &e.value else { continue };
                let path = config.path(p);
                match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| header_block(&b)) {
                    Ok(b) => block.extend_from_slice(&b),
                    Err(why) => errors.push(format!("include-headers-from {}: {why}", path.display())),
                }
            }
            block
        };
        let global = read(&config.global);
        let mut own = HashMap::new();
        let blocks = config
            .vmtas
            .iter()
            .map(|v| (&v.name, &v.settings))
            .chain(config.pools.iter().map(|p| (&p.name, &p.settings)));
        for (name, settings) in blocks {
            if !settings.all(Dir::IncludeHeadersFrom).is_empty() {
                own.insert(name.clone(), read(settings));
            }
        }
        if errors.is_empty() { Ok(IncludedHeaders { global, own }) } else { Err(errors) }
    }

    /// The headers for mail injected to `vmta` (a VMTA or pool name; `None` is `{default}`):
    /// its own file's when it names one (more specific replaces, as for every setting), else the
    /// global ones.
    pub fn for_vmta(&self, vmta: Option<&str>) -> &[u8] {
        vmta.and_then(|v| self.own.get(v)).unwrap_or(&self.global)
    }
}

/// A file's text as header fields with CRLF line ends. Blank lines and `#` comment lines are
/// skipped; any other line must be a `Name: value` field or the continuation of one (starting
/// with a blank), since anything else would end the message's header block early.
fn header_block(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut fields = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let continuation = line.starts_with([' ', '\t']);
        let field = line
            .split_once(':')
            .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
        if continuation && fields == 0 || !continuation && !field {
            return Err(format!("line {} is not a header field (Name: value): {line:?}", n + 1));
        }
        fields += usize::from(!continuation);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// A generated Message-ID. `host-id` (0 when unset) keeps the ids of servers that share a host
/// name apart; it is left out when 0, as PowerMTA's are.
pub fn message_id(now: u64, unique: u64, host_id: u64, host: &str) -> String {
    if host_id == 0 { format!("<{now}.{unique}@{host}>") } else { format!("<{now}.{unique}.{host_id}@{host}>") }
}

/// The source's `bcc` archive address as one more recipient of the message. It asks for no DSN:
/// the sender never learns of the archive copy, whatever happens to it.
pub fn bcc_recipient(address: &str) -> Recipient {
    let mut r = Recipient::new(address);
    r.notify = Notify { never: true, ..Notify::default() };
    r
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn header_files_become_crlf_fields_and_bad_lines_are_refused() {
        let block = header_block(b"# ours\nX-Campaign: spring\n\tsale\r\n\nX-Org: ACME\n").unwrap();
        assert_eq!(block, b"X-Campaign: spring\r\n\tsale\r\nX-Org: ACME\r\n");
        assert!(header_block(b"not a header\n").unwrap_err().contains("line 1"));
        assert!(header_block(b" leading continuation\n").is_err());
        assert!(header_block(b"Bad Name: x\n").is_err());
    }

    #[test]
    fn a_vmta_or_pool_file_replaces_the_global_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g.txt"), "X-G: 1\n").unwrap();
        std::fs::write(dir.path().join("v.txt"), "X-V: 2\n").unwrap();
        std::fs::write(dir.path().join("p.txt"), "X-P: 3\n").unwrap();
        let text = "include-headers-from g.txt\n<virtual-mta v>\n smtp-source-host 127.0.0.2 v.example\n include-headers-from v.txt\n</virtual-mta>\n<virtual-mta w>\n smtp-source-host 127.0.0.3 w.example\n</virtual-mta>\n<virtual-mta-pool p>\n virtual-mta w\n include-headers-from p.txt\n</virtual-mta-pool>\n";
        let loaded = load_str("t.conf", text, dir.path(), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let h = IncludedHeaders::from_config(&loaded.config).unwrap();
        assert_eq!(h.for_vmta(None), b"X-G: 1\r\n");
        assert_eq!(h.for_vmta(Some("v")), b"X-V: 2\r\n");
        assert_eq!(h.for_vmta(Some("p")), b"X-P: 3\r\n");
        assert_eq!(h.for_vmta(Some("w")), b"X-G: 1\r\n");
        let missing = load_str("t.conf", "include-headers-from nope.txt\n", Path::new("/nonexistent"), FileCheck::Warn);
        let errors = IncludedHeaders::from_config(&missing.config).unwrap_err();
        assert!(errors[0].contains("nope.txt"), "{errors:?}");
    }

    #[test]
    fn host_id_appears_in_generated_message_ids_when_set() {
        assert_eq!(message_id(17, 5, 0, "mta.example"), "<17.5@mta.example>");
        assert_eq!(message_id(17, 5, 42, "mta.example"), "<17.5.42@mta.example>");
    }

    #[test]
    fn the_bcc_copy_asks_for_no_dsn() {
        let r = bcc_recipient("archive@example.org");
        assert!(r.notify.never);
        assert!(!crate::outcome::dsn::should_send("s@x", r.notify, crate::outcome::dsn::DsnKind::Failure));
    }
}
