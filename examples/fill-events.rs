//! Builds an event log of many events through Ember's own log API (the same records, checksums,
//! group commit and fsyncs the daemon produces): per recipient a reception, every third one a
//! deferral with a reply, then a delivery (every tenth a bounce), spread over 100 jobs. Used by
//! `bench/history.sh` to measure history queries over millions of events without sending
//! millions of messages.
//!
//!     fill-events DIR EVENTS

use ember::events::event::some;
use ember::events::{Event, EventKind, EventLog, LogOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: fill-events DIR EVENTS";
    let dir = std::path::PathBuf::from(args.get(1).expect(usage));
    let events: u64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let (log, _) =
        EventLog::open(LogOptions::new(dir, std::time::Duration::from_secs(30 * 86_400))).expect("open the log");
    let started = std::time::Instant::now();
    let now = ember::time::now_millis();
    let mut written = 0u64;
    let mut n = 0u64;
    while written < events {
        let rcpt = format!("user{n}@domain{}.example", n % 5000);
        let message_id = format!("{:016x}", 0x1000_0000 + n / 2);
        let mut steps = vec![EventKind::Reception];
        if n.is_multiple_of(3) {
            steps.push(EventKind::Deferral);
        }
        steps.push(if n.is_multiple_of(10) { EventKind::Bounce } else { EventKind::Delivery });
        for kind in steps {
            let mut e = Event::new(kind);
            e.rcpt = some(rcpt.as_str());
            e.orig = some("bounces@news.example");
            e.message_id = some(message_id.as_str());
            e.queue = some(format!("domain{}.example/{{default}}", n % 5000));
            e.vmta = some("{default}");
            e.job = some(format!("job{}", n % 100));
            if kind != EventKind::Reception {
                e.mx = some(format!("mx.domain{}.example", n % 5000));
                e.remote_ip = some("192.0.2.1");
                e.reply = some(match kind {
                    EventKind::Deferral => "smtp;451 4.7.1 greylisted, try again later",
                    EventKind::Bounce => "smtp;550 5.1.1 <user> no such user",
                    _ => "smtp;250 2.0.0 ok queued as 12345",
                });
            }
            log.append(e, now - (events - written)).expect("append");
            written += 1;
        }
        n += 1;
    }
    log.flush();
    let took = started.elapsed().as_secs_f64();
    println!("{written} events ({n} recipients) in {took:.1}s, {:.0} events/s", written as f64 / took);
    // The events are 1 ms apart and end at this time: `since` queries start from it.
    println!("last event at {}", now / 1000);
}
