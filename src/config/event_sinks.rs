//! `<event-sink NAME>` blocks, typed: where a sink sends events, which types it takes, and how it
//! batches them. `check` reports every problem with the file, line and column of the directive;
//! `sinks` reads a configuration that passed the check.
//!
//! The event type names live here rather than with the event log so that a configuration can be
//! checked without it (the log's `EventKind` spells the same names; a unit test there keeps them
//! equal).

use std::time::Duration;

use super::diag::Diagnostics;
use super::model::{Config, OtherBlock};
use super::table::Dir;
use super::value::Value;
use super::{policy, settings::Settings};

/// Every event type, as `events` lists and the events' `type` field spell them.
pub const EVENT_TYPES: &[&str] = &[
    "reception",
    "delivery",
    "deferral",
    "bounce",
    "complaint",
    "unsubscribe",
    "suppression",
    "adaptive",
    "remote-status",
];

/// Where a sink sends events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    /// POST a JSON array per batch to `url`; `secret` signs the body.
    Http { url: String, secret: Option<String> },
    /// JetStream publish on `subject` at the server `url`.
    Nats { url: String, subject: String },
    /// JSON lines appended to `path`, rotated at `max_size` bytes.
    File { path: std::path::PathBuf, max_size: Option<u64> },
}

impl SinkTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            SinkTarget::Http { .. } => "http",
            SinkTarget::Nats { .. } => "nats",
            SinkTarget::File { .. } => "file",
        }
    }
}

/// One `<event-sink NAME>` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSinkSpec {
    pub name: String,
    pub target: SinkTarget,
    /// The event types it takes (names from [`EVENT_TYPES`]).
    pub events: Vec<String>,
    pub batch_size: usize,
    pub max_delay: Duration,
    pub retain: Duration,
}

/// Whether the event log runs, and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLogSpec {
    /// `event-log-dir`, else `None` (the caller puts it beside the spool).
    pub dir: Option<std::path::PathBuf>,
    /// The longest of `event-log-retain` and every sink's `retain`.
    pub retain: Duration,
    pub sinks: Vec<EventSinkSpec>,
}

/// The event log's settings, or `None` when it is off (`event-log no`, or `auto` without a sink).
pub fn event_log(config: &Config) -> Option<EventLogSpec> {
    let sinks = sinks(config);
    let mode = policy::text(&config.global, Dir::EventLog);
    if mode == "no" || (mode == "auto" && sinks.is_empty()) {
        return None;
    }
    let retain = sinks
        .iter()
        .map(|s| s.retain)
        .chain([policy::interval(&config.global, Dir::EventLogRetain)])
        .max()
        .unwrap_or(Duration::from_secs(7 * 86_400));
    let dir = config.global.path(Dir::EventLogDir).map(|p| config.path(p));
    Some(EventLogSpec { dir, retain, sinks })
}

/// The sinks of a configuration that passed [`check`] (blocks with problems are left out).
pub fn sinks(config: &Config) -> Vec<EventSinkSpec> {
    config.blocks_of("event-sink").filter_map(|b| spec(config, b).ok()).collect()
}

/// Reports every unusable `<event-sink>`.
pub fn check(config: &Config, diags: &mut Diagnostics) {
    for b in config.blocks_of("event-sink") {
        if let Err(problems) = spec(config, b) {
            for (location, message) in problems {
                diags.error(&location, message);
            }
        }
    }
}

type Problems = Vec<(super::diag::Location, String)>;

fn spec(config: &Config, b: &OtherBlock) -> Result<EventSinkSpec, Problems> {
    let name = b.arg.clone().unwrap_or_default();
    let prefix = format!("<event-sink {name}>");
    let s = &b.settings;
    let mut problems: Problems = Vec::new();
    let at = |dir: Dir| s.get(dir).and_then(|e| e.origin.value_location()).cloned().unwrap_or(b.location.clone());
    let url = s.text(Dir::EventSinkUrl).map(str::to_string);
    let target = match s.text(Dir::EventSinkType) {
        None => {
            problems.push((b.location.clone(), format!("{prefix}: type is missing (http, nats or file)")));
            None
        }
        Some(kind) => match (kind, url) {
            (_, None) => {
                problems
                    .push((b.location.clone(), format!("{prefix}: url is missing (the {kind} sink's destination)")));
                None
            }
            ("http", Some(url)) => match url_problem(&url, &["http", "https"]) {
                Some(p) => {
                    problems.push((at(Dir::EventSinkUrl), format!("{prefix}: url {url:?}: {p}")));
                    None
                }
                None => Some(SinkTarget::Http { url, secret: s.text(Dir::EventSinkSecret).map(str::to_string) }),
            },
            ("nats", Some(url)) => match url_problem(&url, &["nats", "tls"]) {
                Some(p) => {
                    problems.push((at(Dir::EventSinkUrl), format!("{prefix}: url {url:?}: {p}")));
                    None
                }
                None => Some(SinkTarget::Nats { url, subject: policy::text(s, Dir::EventSinkSubject).to_string() }),
            },
            (_, Some(url)) => {
                let path = url.strip_prefix("file://").unwrap_or(&url);
                Some(SinkTarget::File {
                    path: config.path(std::path::Path::new(path)),
                    max_size: policy::size(s, Dir::MaxSize),
                })
            }
        },
    };
    if target.as_ref().is_some_and(|t| !matches!(t, SinkTarget::Http { .. })) && s.get(Dir::EventSinkSecret).is_some() {
        problems.push((at(Dir::EventSinkSecret), format!("{prefix}: secret applies to http sinks only")));
    }
    let events = policy_list(s, Dir::EventSinkEvents);
    for e in &events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            let location = s
                .get(Dir::EventSinkEvents)
                .and_then(|entry| entry.origin.part_location(e))
                .unwrap_or_else(|| at(Dir::EventSinkEvents));
            problems
                .push((location, format!("{prefix}: unknown event type {e:?} (one of {})", EVENT_TYPES.join(", "))));
        }
    }
    if events.is_empty() {
        problems.push((at(Dir::EventSinkEvents), format!("{prefix}: events lists no event type")));
    }
    let max_delay = policy::interval(s, Dir::EventSinkMaxDelay);
    let retain = policy::interval(s, Dir::EventSinkRetain);
    if retain.is_zero() {
        problems
            .push((at(Dir::EventSinkRetain), format!("{prefix}: retain 0 would delete events before they are sent")));
    }
    match target {
        Some(target) if problems.is_empty() => Ok(EventSinkSpec {
            name,
            target,
            events,
            batch_size: usize::try_from(policy::uint(s, Dir::EventSinkBatchSize)).unwrap_or(100),
            max_delay,
            retain,
        }),
        _ => Err(problems),
    }
}

/// The `events` list with the table default when absent.
fn policy_list(s: &Settings, dir: Dir) -> Vec<String> {
    match s.effective(dir) {
        Some(Value::List(items)) => items.iter().map(|i| i.trim().to_ascii_lowercase()).collect(),
        _ => Vec::new(),
    }
}

/// Why a URL cannot be used: a scheme other than `schemes`, or no host.
fn url_problem(url: &str, schemes: &[&str]) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!("not a URL; it starts with {}://", schemes.join(":// or ")));
    };
    if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Some(format!("scheme {scheme} is not one of {}", schemes.join(", ")));
    }
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() {
        return Some("no host".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Config, Vec<String>) {
        let loaded =
            crate::config::load_str("t.conf", text, std::path::Path::new("/tmp"), crate::config::FileCheck::Warn);
        let errors = loaded
            .diagnostics
            .sorted()
            .into_iter()
            .filter(|d| d.severity == crate::config::Severity::Error)
            .map(|d| format!("{}:{}: {}", d.location.line, d.location.col, d.message))
            .collect();
        (loaded.config, errors)
    }

    #[test]
    fn a_sink_block_is_typed() {
        let (config, errors) = load(
            "<event-sink hooks>\n type http\n url https://events.example.com/ember\n secret s3cr3t\n events reception,bounce\n batch-size 10\n max-delay 2s\n retain 3d\n</event-sink>\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let sinks = sinks(&config);
        assert_eq!(sinks.len(), 1);
        let s = &sinks[0];
        assert_eq!(s.name, "hooks");
        assert_eq!(
            s.target,
            SinkTarget::Http { url: "https://events.example.com/ember".into(), secret: Some("s3cr3t".into()) }
        );
        assert_eq!(s.events, ["reception", "bounce"]);
        assert_eq!(
            (s.batch_size, s.max_delay, s.retain),
            (10, Duration::from_secs(2), Duration::from_secs(3 * 86_400))
        );
        let log = event_log(&config).expect("a sink turns the log on");
        assert_eq!(log.retain, Duration::from_secs(7 * 86_400), "event-log-retain 7d is longer");
    }

    #[test]
    fn bad_sinks_are_refused_with_their_line() {
        let (_, errors) = load(
            "<event-sink a>\n type http\n url ftp://x/\n</event-sink>\n<event-sink b>\n type nats\n url nats://127.0.0.1:4222\n events delivery,bogus\n</event-sink>\n<event-sink c>\n url /tmp/x\n</event-sink>\n",
        );
        let text = errors.join("\n");
        assert!(text.contains("3:") && text.contains("scheme ftp is not one of http, https"), "{text}");
        assert!(text.contains("8:") && text.contains("unknown event type \"bogus\""), "{text}");
        assert!(text.contains("10:") && text.contains("type is missing"), "{text}");
    }

    #[test]
    fn the_log_is_off_without_sinks_unless_asked() {
        assert!(event_log(&load("").0).is_none());
        assert!(event_log(&load("event-log yes\n").0).is_some());
    }
}
