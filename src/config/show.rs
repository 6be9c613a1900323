//! `show settings`: a queue's effective settings printed as valid config, each line followed by
//! where its value came from, or as JSON.
//!
//! Owns the output format only; the values come from `resolve.rs`.

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::resolve::QueueSettings;
use super::settings::{Origin, default_value};
use super::table::{DIRECTIVES, Dir};
use super::table_def::{DirectiveDef, Status};
use super::value::Value;

/// The directives `show settings` prints: every per-queue directive except the structural ones.
fn shown() -> impl Iterator<Item = &'static DirectiveDef> {
    DIRECTIVES.iter().filter(|d| d.per_queue() && !matches!(d.id, Dir::Include | Dir::DomainMacro))
}

/// One printed line: (directive, value in config syntax or None when unset, origin).
fn lines(q: &QueueSettings) -> Vec<(&'static DirectiveDef, Option<String>, Origin)> {
    let mut out = Vec::new();
    for def in shown() {
        match q.settings.raw(def.id) {
            Some(entries) => {
                for e in entries {
                    out.push((def, Some(e.value.to_string()), e.origin.clone()));
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
        "domain": q.domain,
        "vmta": q.vmta,
        "queue_to": q.queue_to.as_ref().map(|l| l.file_line()),
        "layers": q.layers.iter().map(|(level, pattern, loc)| json!({"level": level, "pattern": pattern, "source": loc.file_line()})).collect::<Vec<_>>(),
        "settings": settings,
    })
}
