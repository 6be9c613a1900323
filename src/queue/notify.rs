//! Mail Ember sends about itself: a queue entering or leaving backoff (`backoff-notify`) and a
//! source IP disabled or enabled for a queue (`disabled-source-ip-notify`). Like DSNs, each
//! notice is a real message stored in the spool and delivered through Ember's own queues, from
//! the `postmaster` address (the null sender when none is set, so nothing bounces back to it).
//!
//! Queues collect notices when their mode changes (`state.rs`, `Queue::record`); the manager
//! sends what they collected on its next tick.

use super::manager::Event;
use crate::config::Config;
use crate::config::Dir;
use crate::config::settings::Settings;
use crate::message::{Envelope, Origin, Recipient};
use crate::spool::Spool;
use crate::time;

/// One mode change somebody asked to hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// `queue/vmta`.
    pub queue: String,
    /// `backoff`, `normal`, `source-disabled`, `source-enabled`.
    pub mode: String,
    pub reason: String,
    pub until: Option<u64>,
    pub time: u64,
    pub recipients: Vec<String>,
}

/// Who hears of a change to `mode` under a queue's `settings`: `backoff-notify` for entering
/// (`backoff`) or leaving (`normal` after backoff) backoff, `disabled-source-ip-notify` for source
/// IPs. Empty when nobody.
pub fn recipients(settings: &Settings, mode: &str, left_backoff: bool) -> Vec<String> {
    match mode {
        "backoff" => settings.list(Dir::BackoffNotify),
        "normal" if left_backoff => settings.list(Dir::BackoffNotify),
        "source-disabled" | "source-enabled" => settings.list(Dir::DisabledSourceIpNotify),
        _ => Vec::new(),
    }
}

/// The notice as a message (CRLF line ends), from `from` (the postmaster, or mailer-daemon@host).
pub fn message(notice: &Notice, from: &str, host: &str, unique: u64) -> Vec<u8> {
    let what = match notice.mode.as_str() {
        "backoff" => "entered backoff mode",
        "normal" => "left backoff mode",
        "source-disabled" => "had a source IP disabled",
        "source-enabled" => "had a source IP enabled again",
        other => other,
    };
    let clean = |s: &str| s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let queue = clean(&notice.queue);
    let mut text = String::new();
    for line in [
        format!("Date: {}", time::rfc5322(notice.time)),
        format!("From: Ember on {host} <{from}>"),
        format!("To: {}", notice.recipients.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", ")),
        format!("Subject: [{host}] queue {queue} {what}"),
        format!("Message-ID: <{}.{unique}.notice@{host}>", notice.time),
        "Auto-Submitted: auto-generated".to_string(),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
        String::new(),
        format!("The queue {queue} on {host} {what} at {}.", time::rfc5322(notice.time)),
        String::new(),
        format!("Reason: {}", clean(&notice.reason)),
    ] {
        text.push_str(&line);
        text.push_str("\r\n");
    }
    if let Some(until) = notice.until {
        text.push_str(&format!("Until: {}\r\n", time::rfc5322(until)));
    }
    text.into_bytes()
}

/// Stores each notice and submits it for delivery, like a DSN.
pub fn send(notices: Vec<Notice>, config: &Config, host: &str, spool: &Spool, events: &super::manager::Events) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let postmaster = config.global.text(Dir::Postmaster).map(str::to_string);
    let from = postmaster.clone().unwrap_or_else(|| format!("mailer-daemon@{host}"));
    for notice in notices {
        let body = message(&notice, &from, host, NEXT.fetch_add(1, Ordering::Relaxed));
        let envelope = Envelope {
            eight_bit: !body.is_ascii(),
            arrival_ms: time::now_millis(),
            origin: Origin { kind: "notice".into(), ..Origin::default() },
            ..Envelope::new(
                postmaster.clone().unwrap_or_default(),
                notice.recipients.iter().map(Recipient::new).collect(),
            )
        };
        let spool = spool.clone();
        let events = events.clone();
        tokio::spawn(async move {
            match spool.store(envelope.clone(), body).await {
                Ok(id) => {
                    tracing::info!(
                        "queued notice {id} to {:?}: queue {} {}",
                        notice.recipients,
                        notice.queue,
                        notice.mode
                    );
                    let mut stored = envelope;
                    stored.id = id;
                    if events.send(Event::Submit(Box::new(stored), true)).await.is_err() {
                        tracing::info!(
                            "notice {id} stays in the spool for the next start: the queue manager has stopped"
                        );
                    }
                }
                Err(e) => tracing::error!("cannot queue the notice about queue {}: {e}", notice.queue),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn who_hears_of_which_change() {
        let text = "<domain *>\n backoff-notify ops@example.com, noc@example.com\n disabled-source-ip-notify ips@example.com\n</domain>\n";
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        let s = loaded.config.queue_settings("x.test", None).unwrap().settings;
        assert_eq!(recipients(&s, "backoff", false), ["ops@example.com", "noc@example.com"]);
        assert_eq!(recipients(&s, "normal", true), ["ops@example.com", "noc@example.com"]);
        // Resuming a paused queue or ending retry mode is not leaving backoff.
        assert!(recipients(&s, "normal", false).is_empty());
        assert_eq!(recipients(&s, "source-disabled", false), ["ips@example.com"]);
        assert!(recipients(&s, "retry", false).is_empty());
        assert!(recipients(&Settings::default(), "backoff", false).is_empty());
    }

    #[test]
    fn the_notice_says_which_queue_what_and_why() {
        let notice = Notice {
            queue: "example.com/v1".into(),
            mode: "backoff".into(),
            reason: "rule matched \"421 slow down\"".into(),
            until: Some(1_700_003_600),
            time: 1_700_000_000,
            recipients: vec!["ops@example.com".into()],
        };
        let text = String::from_utf8(message(&notice, "postmaster@mta.example", "mta.example", 7)).unwrap();
        assert!(text.contains("From: Ember on mta.example <postmaster@mta.example>\r\n"), "{text}");
        assert!(text.contains("To: <ops@example.com>\r\n"));
        assert!(text.contains("Subject: [mta.example] queue example.com/v1 entered backoff mode\r\n"));
        assert!(text.contains("Reason: rule matched \"421 slow down\"\r\n"));
        assert!(text.contains(&format!("Until: {}\r\n", time::rfc5322(1_700_003_600))));
        assert!(text.contains("\r\n\r\nThe queue example.com/v1"));
    }
}
