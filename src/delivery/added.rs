//! Header fields added to a message as it leaves, per queue and per the source it came from:
//! `X-Virtual-MTA` naming the delivering virtual MTA (`add-x-virtual-mta-header`), `Date` at
//! delivery time (`date-header-time delivery`) and SparkPost's `X-MSYS-API`
//! (`add-x-msys-api-header` with `sparkpost-ip-pool`).
//!
//! They are added after `sanitize-headers` (they are Ember's own, not the injector's leftovers
//! it removes) and before DKIM signing, so a signature covers them.

use serde_json::{Map, Value};

use crate::config::Dir;
use crate::config::settings::Settings;
use crate::message::headers::Header;
use crate::time;

/// The message with the fields its queue (`queue`) and source (`source`) ask for; `None` when
/// it asks for none, so the caller keeps the bytes it has.
pub fn add(message: &[u8], queue: &Settings, source: &Settings, vmta: &str, now: u64) -> Option<Vec<u8>> {
    let header = Header::parse(message);
    let mut remove: Vec<String> = Vec::new();
    let mut append = String::new();
    if source.flag(Dir::AddXVirtualMtaHeader) {
        // One X-Virtual-MTA, naming the VMTA the message really leaves from (a pool member),
        // not what the injector asked for.
        remove.push("x-virtual-mta".into());
        append.push_str(&format!("X-Virtual-MTA: {}\r\n", clean(vmta)));
    }
    if source.text(Dir::DateHeaderTime) == Some("delivery") {
        match source.text(Dir::AddDateHeader) {
            Some("yes") if header.get("date").is_none() => {
                append.push_str(&format!("Date: {}\r\n", time::rfc5322(now)))
            }
            Some("override") => {
                remove.push("date".into());
                append.push_str(&format!("Date: {}\r\n", time::rfc5322(now)));
            }
            _ => {}
        }
    }
    if queue.flag(Dir::AddXMsysApiHeader)
        && let Some(pool) = queue.text(Dir::SparkpostIpPool).filter(|p| !p.is_empty())
    {
        match msys_api(header.get("x-msys-api").as_deref(), pool) {
            Ok(value) => {
                remove.push("x-msys-api".into());
                append.push_str(&format!("X-MSYS-API: {value}\r\n"));
            }
            Err(why) => tracing::warn!("X-MSYS-API left as the injector wrote it: {why}"),
        }
    }
    (!append.is_empty()).then(|| header.rewrite(b"", &remove, append.as_bytes()))
}

/// Why the injector's `X-MSYS-API` header cannot carry the pool.
#[derive(Debug, thiserror::Error)]
enum MsysApiError {
    #[error("it is not a JSON object")]
    NotAnObject,
    #[error("it is not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    #[error("its \"options\" is not a JSON object")]
    OptionsNotAnObject,
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
}

/// The `X-MSYS-API` value: the message's own JSON object (its campaign, metadata, other options
/// kept) with `options.ip_pool` set to `pool` unless the injector chose one for this message.
fn msys_api(existing: Option<&str>, pool: &str) -> Result<String, MsysApiError> {
    let mut object = match existing.map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(o))) => o,
        Some(Ok(_)) => return Err(MsysApiError::NotAnObject),
        Some(Err(e)) => return Err(MsysApiError::NotJson(e)),
    };
    let options = object.entry("options").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(options) = options else { return Err(MsysApiError::OptionsNotAnObject) };
    options.entry("ip_pool").or_insert_with(|| Value::String(pool.to_string()));
    serde_json::to_string(&object).map_err(MsysApiError::Serialize)
}

/// A value safe in one header line.
fn clean(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    fn settings(text: &str) -> (Settings, Settings) {
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let c = loaded.config;
        (
            c.queue_settings("sparkpost.test", None).unwrap().settings,
            c.source_settings("127.0.0.1".parse().unwrap(), &[]),
        )
    }

    fn head(message: &[u8]) -> String {
        let text = String::from_utf8(message.to_vec()).unwrap();
        text[..text.find("\r\n\r\n").unwrap()].to_string()
    }

    const MSG: &[u8] = b"From: a@x\r\nX-Virtual-MTA: asked\r\nSubject: s\r\n\r\nbody\r\n";

    #[test]
    fn nothing_asked_nothing_changed() {
        let (q, s) = settings("");
        assert!(add(MSG, &q, &s, "v1", 0).is_none());
    }

    #[test]
    fn x_virtual_mta_names_the_delivering_vmta_once() {
        let (q, s) = settings("<source 127.0.0.1>\n add-x-virtual-mta-header yes\n</source>\n");
        let out = head(&add(MSG, &q, &s, "pool-member-2", 0).unwrap());
        assert_eq!(out.matches("X-Virtual-MTA").count(), 1, "{out}");
        assert!(out.ends_with("X-Virtual-MTA: pool-member-2"), "{out}");
    }

    #[test]
    fn date_at_delivery_is_added_or_overrides() {
        let (q, s) = settings("<source 127.0.0.1>\n add-date-header yes\n date-header-time delivery\n</source>\n");
        let out = head(&add(MSG, &q, &s, "v", 1_700_000_000).unwrap());
        assert!(out.contains(&format!("Date: {}", time::rfc5322(1_700_000_000))), "{out}");
        // yes keeps a Date the message has; override replaces it.
        let dated = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n";
        assert!(add(dated, &q, &s, "v", 1_700_000_000).is_none());
        let (q, s) = settings("<source 127.0.0.1>\n add-date-header override\n date-header-time delivery\n</source>\n");
        let out = head(&add(dated, &q, &s, "v", 1_700_000_000).unwrap());
        assert_eq!(out, format!("Date: {}", time::rfc5322(1_700_000_000)));
        // reception: the Date is injection's business, not delivery's.
        let (q, s) = settings("<source 127.0.0.1>\n add-date-header yes\n</source>\n");
        assert!(add(MSG, &q, &s, "v", 1).is_none());
    }

    #[test]
    fn x_msys_api_is_added_or_merged() {
        let (q, s) =
            settings("<domain sparkpost.test>\n add-x-msys-api-header yes\n sparkpost-ip-pool warm_pool\n</domain>\n");
        let out = head(&add(MSG, &q, &s, "v", 0).unwrap());
        assert!(out.ends_with(r#"X-MSYS-API: {"options":{"ip_pool":"warm_pool"}}"#), "{out}");
        let injected =
            b"X-MSYS-API: {\"campaign_id\": \"spring\",\r\n \"options\": {\"open_tracking\": false}}\r\n\r\nb\r\n";
        let out = head(&add(injected, &q, &s, "v", 0).unwrap());
        assert_eq!(out.matches("X-MSYS-API").count(), 1, "{out}");
        let value: Value = serde_json::from_str(out.trim_start_matches("X-MSYS-API: ")).unwrap();
        assert_eq!(value["campaign_id"], "spring");
        assert_eq!(value["options"]["open_tracking"], false);
        assert_eq!(value["options"]["ip_pool"], "warm_pool");
        // The injector's own pool for this message stays.
        let own = b"X-MSYS-API: {\"options\":{\"ip_pool\":\"vip\"}}\r\n\r\nb\r\n";
        assert!(head(&add(own, &q, &s, "v", 0).unwrap()).contains(r#""ip_pool":"vip""#));
        // Not JSON: left alone rather than replaced.
        assert!(add(b"X-MSYS-API: nonsense\r\n\r\nb\r\n", &q, &s, "v", 0).is_none());
        // Without add-x-msys-api-header the pool name alone adds nothing.
        let (q, s) = settings("<domain sparkpost.test>\n sparkpost-ip-pool warm_pool\n</domain>\n");
        assert!(add(MSG, &q, &s, "v", 0).is_none());
    }
}
