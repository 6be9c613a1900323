//! `show settings`: a queue's effective settings printed as valid config, each line followed by
//! where its value came from, or as JSON.
//!
//! Owns the output format only; the values come from `resolve.rs`. Secrets (`auth-password`,
//! the password of `smtp-client-certificate`) are printed as `"********"`, so the output can be
//! pasted into a ticket; it stays valid config.

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::resolve::QueueSettings;
use super::settings::{Origin, SECRET_MASK as MASK, default_value};
use super::table::{DIRECTIVES, Dir};
use super::table_def::{DirectiveDef, Status};
use super::value::Value;

/// The directives `show settings` prints: every per-queue directive except the structural ones.
fn shown() -> impl Iterator<Item = &'static DirectiveDef> {
    DIRECTIVES.iter().filter(|d| d.per_queue() && !matches!(d.id, Dir::Include | Dir::DomainMacro))
}

/// A value as `show settings` prints it: config syntax, with secrets masked.
fn printable(dir: Dir, value: &Value) -> String {
    match (dir, value) {
        (Dir::AuthPassword, Value::Text(_)) => quote_mask(),
        (_, Value::FileWithPassword { file, password: Some(_) }) => {
            Value::FileWithPassword { file: file.clone(), password: None }.to_string() + " " + &quote_mask()
        }
        _ => value.to_string(),
    }
}

fn quote_mask() -> String {
    format!("\"{MASK}\"")
}

/// One printed line: (directive, value in config syntax or None when unset, origin).
fn lines(q: &QueueSettings) -> Vec<(&'static DirectiveDef, Option<String>, Origin)> {
    let mut out = Vec::new();
    for def in shown() {
        match q.settings.raw(def.id) {
            Some(entries) => {
                for e in entries {
                    out.push((def, Some(printable(def.id, &e.value)), e.origin.clone()));
                }
            }
            None => out.push((def, default_value(def.id).map(Value::to_string), Origin::Default)),
        }
    }
    out
}

pub fn render_text(q: &QueueSettings) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# effective settings of queue {} (ember show settings)", q.name());
    let _ = writeln!(s, "# secrets (auth-password, certificate passwords) are masked as \"{MASK}\"");
    if let Some(loc) = q.queue_to.as_ref().filter(|_| q.queue != q.domain) {
        let _ = writeln!(s, "# domain {} is queued as {} (queue-to at {})", q.domain, q.queue, loc.file_line());
    }
    if q.layers.is_empty() {
        let _ = writeln!(s, "# no <domain> block matches: PowerMTA defaults apply");
    }
    for (level, pattern, loc) in &q.layers {
        let _ = writeln!(s, "# applied: {level} <domain {pattern}> at {}", loc.file_line());
    }
    let _ = writeln!(s, "<domain {}>", q.queue);
    for (def, value, origin) in lines(q) {
        match value {
            Some(v) => {
                let line = format!("{} {v}", def.name);
                let _ = writeln!(s, "    {line:<48} # {}", origin.describe());
            }
            None => {
                let _ = writeln!(s, "    # {} (not set)", def.name);
            }
        }
    }
    let _ = writeln!(s, "</domain>");
    s
}

pub fn render_json(q: &QueueSettings) -> Json {
    let settings: Vec<Json> = lines(q)
        .into_iter()
        .map(|(def, value, origin)| {
            let (source, written_as) = match &origin {
                Origin::Default => (Json::from("default"), Json::Null),
                Origin::Config { location, written_as, .. } => {
                    (Json::from(location.file_line()), written_as.clone().map_or(Json::Null, Json::from))
                }
            };
            json!({
                "directive": def.name,
                "value": value,
                "source": source,
                "written_as": written_as,
                "enforced": def.status == Status::Enforced,
            })
        })
        .collect();
    json!({
        "queue": q.name(),
        "secrets_masked_as": MASK,
        "domain": q.domain,
        "vmta": q.vmta,
        "queue_to": q.queue_to.as_ref().map(|l| l.file_line()),
        "layers": q.layers.iter().map(|(level, pattern, loc)| json!({"level": level, "pattern": pattern, "source": loc.file_line()})).collect::<Vec<_>>(),
        "settings": settings,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn secrets_are_masked_and_the_output_is_config_again() {
        let text = "<domain *>\n    auth-username u\n    auth-password \"s3cret pass\"\n    smtp-client-certificate client.pem k3y\n</domain>\n";
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let q = loaded.config.queue_settings("example.com", None).unwrap();
        let shown = render_text(&q);
        assert!(!shown.contains("s3cret") && !shown.contains("k3y"), "{shown}");
        assert!(shown.contains("auth-password \"********\""), "{shown}");
        assert!(shown.contains("smtp-client-certificate client.pem \"********\""), "{shown}");
        let json = render_json(&q).to_string();
        assert!(!json.contains("s3cret") && !json.contains("k3y"), "{json}");
        let again = load_str("shown.conf", &shown, Path::new("."), FileCheck::Warn);
        assert!(!again.diagnostics.has_errors(), "{}", again.diagnostics);
    }
}
