//! One event as sinks receive it and the history returns it: a flat JSON object with an `id`
//! (the log's, increasing by one per event), a `type`, a `time`, and the fields that type has.
//! Absent fields are left out of the JSON, never written as empty strings. `docs/events.md`
//! describes every field.

use serde::{Deserialize, Serialize};

/// The event types; their names are `config::event_sinks::EVENT_TYPES`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    #[default]
    /// A recipient of a message stored in the spool (the client got, or gets, its `250`).
    Reception,
    /// The receiver accepted the recipient (or local delivery succeeded).
    Delivery,
    /// An attempt failed temporarily (recipient), or a connection to the queue's hosts failed
    /// (queue, no `rcpt`): `reply` says why, `mx` where.
    Deferral,
    /// The recipient failed for good: a 5xx, expiry, suppression at RCPT, an operator's delete,
    /// or a bounce report received later (`remote` is then true).
    Bounce,
    /// A feedback-loop complaint (ARF/JMRP) about a recipient.
    Complaint,
    /// The recipient unsubscribed (List-Unsubscribe by mail or one-click).
    Unsubscribe,
    /// An address or domain was added to the global suppression list.
    Suppression,
    /// A queue changed mode (backoff, normal, retry, paused, ...): `mode` and `reason`.
    Adaptive,
    /// A delivery status report received that is not a failure (delayed, relayed, ...).
    RemoteStatus,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Reception,
        EventKind::Delivery,
        EventKind::Deferral,
        EventKind::Bounce,
        EventKind::Complaint,
        EventKind::Unsubscribe,
        EventKind::Suppression,
        EventKind::Adaptive,
        EventKind::RemoteStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Reception => "reception",
            EventKind::Delivery => "delivery",
            EventKind::Deferral => "deferral",
            EventKind::Bounce => "bounce",
            EventKind::Complaint => "complaint",
            EventKind::Unsubscribe => "unsubscribe",
            EventKind::Suppression => "suppression",
            EventKind::Adaptive => "adaptive",
            EventKind::RemoteStatus => "remote-status",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// This kind's bit in a [`KindSet`].
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of event kinds (a sink's `events` list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u16);

impl KindSet {
    pub fn all() -> KindSet {
        KindSet(EventKind::ALL.iter().fold(0, |bits, k| bits | k.bit()))
    }

    /// The kinds named (unknown names, which the configuration check refuses, are skipped).
    pub fn of_names<S: AsRef<str>>(names: &[S]) -> KindSet {
        KindSet(names.iter().filter_map(|n| EventKind::parse(n.as_ref())).fold(0, |bits, k| bits | k.bit()))
    }

    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Every kind: a sink that takes them all need not look at an event's type.
    pub fn is_all(self) -> bool {
        self.0 == KindSet::all().0
    }
}

/// One event. `id` and `time` are set by the log when it is written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// The log's id: increases by one per event, never reused; sinks de-duplicate with it.
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened, RFC 3339 in UTC with milliseconds (`2026-12-06T19:22:43.123Z`).
    pub time: String,
    /// The recipient address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcpt: Option<String>,
    /// The envelope sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig: Option<String>,
    /// The spool's id of the message (16 hex digits, as in `250 2.6.0 message ID accepted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The queue, `domain/vmta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The virtual MTA (`{default}` when none was chosen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmta: Option<String>,
    /// The job id (`x-job`, or the campaign of an API injection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The envelope id (`ENVID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_id: Option<String>,
    /// Attempts: the receiver's reply, `smtp;550 5.1.1 unknown user` style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Attempts: the MX host (name, or `[ip]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
    /// Attempts: the enhanced status code with its text (`5.1.1 (bad destination mailbox address)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Bounces, deferrals and reports: the bounce category (`bad-mailbox`, `policy-related`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Attempts: the receiver's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// Attempts: the local address the connection left from; reception: the client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Reception: how the message came in (`smtp`, `api`, `pickup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Adaptive: the queue's new mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Adaptive: why; suppression: what added the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Adaptive delivery's decisions: the limit changed (`rate`, `connections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Adaptive delivery's decisions: the rule that acted (`rate push-back`, `probe`,
    /// `deferral ratio 5%/200/10m`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Adaptive delivery's decisions: what the rule saw (the reply, the counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Adaptive delivery's decisions: the limit before and after (`50/s`, `7.2/s`; `10`, `2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// Adaptive delivery's decisions: until when the new limit holds before it may rise (RFC
    /// 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Complaints: the feedback type (`abuse`, ...); unsubscribe: `mailto` or `one-click`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    /// Bounce and remote-status: true when the bounce came back as a report after delivery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
}

impl Event {
    pub fn new(kind: EventKind) -> Event {
        Event { kind, ..Event::default() }
    }

    /// The text of the fields history looks events up by: recipient (lower case), message id,
    /// job.
    pub fn keys(&self) -> impl Iterator<Item = (KeyKind, &str)> {
        [
            (KeyKind::Rcpt, self.rcpt.as_deref()),
            (KeyKind::MessageId, self.message_id.as_deref()),
            (KeyKind::Job, self.job.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
    }
}

/// What a history query looks events up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rcpt,
    MessageId,
    Job,
}

/// `Some(text)` unless empty: records leave unknown fields empty, events leave them out.
pub fn some(text: impl Into<String>) -> Option<String> {
    let text = text.into();
    (!text.is_empty()).then_some(text)
}

/// RFC 3339 UTC with milliseconds, for `time`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.format(&format).unwrap_or_default()
}

/// Reads `since=`: Unix seconds, or RFC 3339 (`2026-12-06T19:22:43Z`). Unix milliseconds out.
pub fn parse_since(text: &str) -> Option<u64> {
    if let Ok(secs) = text.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_configurations_event_types() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, crate::config::event_sinks::EVENT_TYPES);
        for k in EventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.name()));
        }
    }

    #[test]
    fn json_leaves_absent_fields_out_and_reads_back() {
        let mut e = Event::new(EventKind::Deferral);
        e.id = 7;
        e.time = rfc3339_ms(1_765_000_000_123);
        e.rcpt = some("a@example.com");
        e.reply = some("smtp;451 4.7.1 try later");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"id":7,"type":"deferral","time":"2025-12-06T05:46:40.123Z","rcpt":"a@example.com","reply":"smtp;451 4.7.1 try later"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        assert_eq!(parse_since("2025-12-06T05:46:40.123Z"), Some(1_765_000_000_123));
        assert_eq!(parse_since("1765000000"), Some(1_765_000_000_000));
        assert_eq!(parse_since("yesterday"), None);
    }

    #[test]
    fn kind_sets_hold_what_is_named() {
        let set = KindSet::of_names(&["bounce", "delivery"]);
        assert!(set.contains(EventKind::Bounce) && set.contains(EventKind::Delivery));
        assert!(!set.contains(EventKind::Reception));
        assert!(EventKind::ALL.iter().all(|k| KindSet::all().contains(*k)));
    }
}
