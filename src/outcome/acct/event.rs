//! Accounting records as events: every record the callers write through [`super::Accounting`]
//! also goes to the event log (when one runs), whatever the `<acct-file>`s take, so sinks and
//! the history see deliveries, bounces, deferrals (with the reply and the MX), complaints,
//! unsubscribes and bounce reports. Receipt (`r`) records are not events: the daemon records a
//! reception per recipient once the spool has the message, with its id.

use super::{Record, RecordType};
use crate::events::event::some;
use crate::events::{Event, EventKind};

/// The event type of a record type; `None` for records that are not events.
pub fn kind_of(record: &Record) -> Option<EventKind> {
    Some(match record.kind {
        RecordType::Delivery => EventKind::Delivery,
        RecordType::Bounce | RecordType::RemoteBounce => EventKind::Bounce,
        RecordType::Transient | RecordType::TransientQueue => EventKind::Deferral,
        RecordType::FeedbackLoop if record.get("feedbackType") == "unsubscribe" => EventKind::Unsubscribe,
        RecordType::FeedbackLoop => EventKind::Complaint,
        RecordType::RemoteStatus => EventKind::RemoteStatus,
        RecordType::Receipt => return None,
    })
}

/// Whether records of this type become events now.
pub fn wanted(kind: RecordType) -> bool {
    kind != RecordType::Receipt && crate::events::enabled()
}

/// The event a record stands for.
pub fn from_record(record: &Record) -> Option<Event> {
    let kind = kind_of(record)?;
    let field = |name: &str| some(record.get(name));
    let mut e = Event::new(kind);
    e.rcpt = field("rcpt");
    e.orig = field("orig");
    e.message_id = field("messageId");
    e.queue = field("queue");
    e.vmta = field("vmta");
    e.job = field("jobId");
    e.env_id = field("envId");
    e.status = field("dsnStatus");
    e.category = field("bounceCat");
    match record.kind {
        RecordType::FeedbackLoop => {
            e.source_ip = field("dlvSourceIp");
            e.feedback_type = field("feedbackType");
            e.mx = field("reportingMta");
        }
        RecordType::RemoteBounce | RecordType::RemoteStatus => {
            e.reply = field("dsnDiag");
            e.mx = field("dsnMta");
            e.remote = true;
        }
        _ => {
            e.reply = field("dsnDiag");
            e.mx = some(mx_host(record.get("dsnMta")));
            e.remote_ip = field("dlvDestinationIp");
            e.source_ip = field("dlvSourceIp");
        }
    }
    Some(e)
}

/// The host of a `dsnMta` value (`mx.example.com (192.0.2.1)` or `[192.0.2.1] (192.0.2.1)`).
fn mx_host(dsn_mta: &str) -> &str {
    dsn_mta.split_once(" (").map_or(dsn_mta, |(host, _)| host).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::acct::DeliveryFacts;

    #[test]
    fn a_transient_record_carries_the_reply_and_the_mx() {
        let facts = DeliveryFacts {
            rcpt: "a@example.com",
            diag: "smtp;451 4.7.1 greylisted",
            status: "4.7.1",
            remote_host: "mx1.example.com",
            remote_ip: "192.0.2.1".parse().ok(),
            queue: "example.com/{default}",
            job_id: "j1",
            message_id: Some(crate::message::MessageId(0xab)),
            ..DeliveryFacts::default()
        };
        let e = from_record(&Record::delivery(RecordType::Transient, &facts)).unwrap();
        assert_eq!(e.kind, EventKind::Deferral);
        assert_eq!(e.reply.as_deref(), Some("smtp;451 4.7.1 greylisted"));
        assert_eq!(e.mx.as_deref(), Some("mx1.example.com"));
        assert_eq!(e.remote_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(e.message_id.as_deref(), Some("00000000000000ab"));
        assert_eq!(e.job.as_deref(), Some("j1"));
        assert!(e.orig.is_none(), "empty fields are left out");
    }

    #[test]
    fn feedback_records_are_complaints_or_unsubscribes() {
        let r = Record::new(RecordType::FeedbackLoop).set("feedbackType", "abuse").set("rcpt", "a@x");
        assert_eq!(kind_of(&r), Some(EventKind::Complaint));
        let r = r.set("feedbackType", "unsubscribe");
        assert_eq!(kind_of(&r), Some(EventKind::Unsubscribe));
        assert_eq!(kind_of(&Record::new(RecordType::Receipt)), None);
    }
}
