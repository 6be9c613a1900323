//! The mail an outcome makes Ember send itself: DSNs (failures, and delays every
//! `notify-of-delay-every` for recipients that asked with NOTIFY=DELAY) and the
//! `bcc-upon-delivery` copy of a delivered message. Each is stored in the spool and submitted
//! to the queues like any message.

use std::sync::Arc;

use super::Reporter;
use crate::config::resolve::QueueSettings;
use crate::config::{Config, Dir};
use crate::message::{Envelope, Origin, Recipient};
use crate::outcome::dsn::{self, DsnFormat, DsnInput, DsnKind, DsnRecipient};
use crate::outcome::status;
use crate::queue::QueueKey;
use crate::queue::manager::{Event, Job};
use crate::queue::worker::Remote;
use crate::smtp::Reply;
use crate::spool::Spool;
use crate::time;

/// What one DSN reports, besides the message and its recipients.
pub(super) struct DsnRequest<'a> {
    pub kind: DsnKind,
    pub reply: &'a Reply,
    pub category: &'a str,
    pub remote: &'a Remote,
    pub key: Option<&'a QueueKey>,
    pub invalid_553: bool,
    pub format: DsnFormat,
}

/// Recipients a DSN reports on: index, and for delays the time delivery goes on until.
type DsnRecipients = Vec<(usize, Option<u64>)>;

/// The origin kind of a `bcc-upon-delivery` copy: a copy is never copied again, so two domains
/// that copy to each other cannot loop.
const BCC_COPY: &str = "bcc-copy";

impl Reporter {
    /// Queues a DSN about `recipients` (index, and for delays the time delivery goes on until)
    /// to the message's sender, when its source and their NOTIFY let one go.
    pub(super) fn send_dsn(
        &self,
        spool: &Spool,
        job: &Job,
        recipients: &[(usize, Option<u64>)],
        request: &DsnRequest,
        config: &Config,
    ) {
        let env = Arc::clone(&job.envelope);
        let recipients: Vec<(usize, Option<u64>)> = recipients
            .iter()
            .copied()
            .filter(|(i, _)| dsn::should_send(&env.sender, env.recipients[*i].notify, request.kind))
            .collect();
        if recipients.is_empty() {
            return;
        }
        // The source the message came from decides whether its sender hears of it and what
        // comes back with it (suppress-local-dsn, dsn-return-default).
        let source = config.message_source_settings(&env.origin);
        if source.flag(Dir::SuppressLocalDsn) {
            tracing::info!("no DSN for {} to <{}>: its source has suppress-local-dsn", env.id, env.sender);
            return;
        }
        let Some(events) = self.events.clone() else { return };
        let ret = dsn::resolve_ret(env.ret, source.text(Dir::DsnReturnDefault));
        let code = status::reply_status(request.reply, request.invalid_553).to_string();
        let spool = spool.clone();
        let host = self.host_name.clone();
        let vmta = request.key.map(|k| k.vmta.clone()).unwrap_or_else(|| "{default}".into());
        let from_header = super::dsn_from_header(config);
        let diag = status::diagnostic(request.reply);
        let category = request.category.to_string();
        let remote = request.remote;
        let remote_mta = (!remote.mx.is_empty()).then(|| format!("{} ({})", remote.mx, remote.ip));
        let (kind, format) = (request.kind, request.format);
        tokio::spawn(async move {
            let original = spool.read_body(env.id).unwrap_or_default();
            let now = time::now_secs();
            let mut input = DsnInput::new(kind, &env, &host, &original, now);
            input.vmta = vmta;
            input.from_header = from_header;
            input.ret = ret;
            input.format = format;
            input.recipients = recipients
                .iter()
                .map(|&(i, until)| DsnRecipient {
                    address: env.recipients[i].address.clone(),
                    orcpt: env.recipients[i].orcpt.clone().map(|o| format!("rfc822;{o}")),
                    status: code.clone(),
                    diag: diag.clone(),
                    remote_mta: remote_mta.clone(),
                    category: category.clone(),
                    last_attempt: Some(now),
                    will_retry_until: until,
                })
                .collect();
            let body = dsn::build_dsn(&input);
            let eight_bit = body.iter().any(|b| *b >= 0x80);
            let envelope =
                own_envelope(String::new(), Recipient::new(env.sender.clone()), env.vmta.clone(), eight_bit, "dsn");
            store(&spool, &events, envelope, body, &format!("DSN to <{}> about {}", env.sender, env.id)).await;
        });
    }

    /// `notify-of-delay-every`: a delay DSN for the deferred recipients that asked for one with
    /// NOTIFY=DELAY, once every interval since arrival (or since their last one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn delay_dsns(
        &self,
        spool: &Spool,
        job: &Job,
        later: &[(usize, Reply, u64)],
        remote: &Remote,
        key: &QueueKey,
        settings: &QueueSettings,
        config: &Config,
    ) {
        let Some(every) = dsn::delay_every(&settings.settings) else { return };
        let env = &job.envelope;
        let now = time::now_secs();
        let arrival = env.arrival_ms / 1000;
        let until = settings.settings.interval(Dir::BounceAfter).map(|d| arrival + d.as_secs());
        let mut due: Vec<(usize, &Reply)> = Vec::new();
        {
            let mut notices = self.delay_notices.lock().unwrap_or_else(|p| p.into_inner());
            for (i, reply, _) in later {
                if !env.recipients[*i].notify.delay {
                    continue;
                }
                let since = notices.get(&(env.id, *i)).copied().unwrap_or(arrival);
                if dsn::delay_notice_due(since, now, Some(every)) {
                    notices.insert((env.id, *i), now);
                    due.push((*i, reply));
                }
            }
        }
        // One DSN per distinct reply, so each says what its recipients were told.
        let mut by_reply: Vec<(&Reply, DsnRecipients)> = Vec::new();
        for (i, reply) in due {
            match by_reply.iter_mut().find(|(r, _)| r.to_string() == reply.to_string()) {
                Some((_, list)) => list.push((i, until)),
                None => by_reply.push((reply, vec![(i, until)])),
            }
        }
        for (reply, recipients) in by_reply {
            let category =
                self.classifier.classify(&status::reply_status(reply, true).to_string(), &status::diagnostic(reply));
            let request = DsnRequest {
                kind: DsnKind::Delay,
                reply,
                category,
                remote,
                key: Some(key),
                invalid_553: true,
                format: DsnFormat::from_settings(&settings.settings),
            };
            self.send_dsn(spool, job, &recipients, &request, config);
        }
    }

    /// Forgets the delay-DSN times of recipients that reached a final state.
    pub(super) fn delay_notices_done(&self, job: &Job, indexes: &[usize]) {
        let mut notices = self.delay_notices.lock().unwrap_or_else(|p| p.into_inner());
        if notices.is_empty() {
            return;
        }
        for i in indexes {
            notices.remove(&(job.envelope.id, *i));
        }
    }

    /// `bcc-upon-delivery`: a copy of the delivered message to the queue's address, once per
    /// delivering transaction, from the null sender (nothing about the copy reaches the sender).
    pub(super) fn bcc_upon_delivery(&self, spool: &Spool, job: &Job, settings: &QueueSettings) {
        let Some(address) = settings.settings.text(Dir::BccUponDelivery).filter(|a| !a.is_empty()) else { return };
        if job.envelope.origin.kind == BCC_COPY {
            return;
        }
        let Some(events) = self.events.clone() else { return };
        let spool = spool.clone();
        let env = Arc::clone(&job.envelope);
        let mut rcpt = Recipient::new(address);
        rcpt.notify.never = true;
        tokio::spawn(async move {
            let body = match spool.read_body(env.id) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("cannot read message {} for its bcc-upon-delivery copy: {e}", env.id);
                    return;
                }
            };
            let mut envelope = own_envelope(String::new(), rcpt, env.vmta.clone(), env.eight_bit, BCC_COPY);
            envelope.smtputf8 = env.smtputf8;
            store(&spool, &events, envelope, body, &format!("bcc-upon-delivery copy of {}", env.id)).await;
        });
    }
}

fn own_envelope(sender: String, rcpt: Recipient, vmta: Option<String>, eight_bit: bool, kind: &str) -> Envelope {
    Envelope {
        vmta,
        eight_bit,
        arrival_ms: time::now_millis(),
        origin: Origin { kind: kind.into(), ..Origin::default() },
        ..Envelope::new(sender, vec![rcpt])
    }
}

async fn store(spool: &Spool, events: &crate::queue::manager::Events, envelope: Envelope, body: Vec<u8>, what: &str) {
    match spool.store(envelope.clone(), body).await {
        Ok(id) => {
            tracing::info!("queued {what} as {id}");
            let mut stored = envelope;
            stored.id = id;
            if events.send(Event::Submit(Box::new(stored), true)).await.is_err() {
                tracing::info!("{what} {id} stays in the spool for the next start: the queue manager has stopped");
            }
        }
        Err(e) => tracing::error!("cannot queue the {what}: {e}"),
    }
}
