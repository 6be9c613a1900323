//! What an outcome does: spool state changes (durable, group-committed), PowerMTA accounting
//! records (`d`, `b`, `t`, `tq`), bounce categories, and DSNs to the sender, themselves queued
//! through the spool.

use std::collections::HashSet;
use std::sync::Arc;

use super::QueueKey;
use super::manager::Job;
use super::worker::{QueueFailure, Remote};
use crate::config::Config;
use crate::config::resolve::QueueSettings;
use crate::message::{MessageId, RecipientState};
use crate::outcome::acct::{Accounting, DeliveryFacts, QueueAcct, Record, RecordType};
use crate::outcome::category::Classifier;
use crate::outcome::dsn::{self, DsnKind};
use crate::outcome::status;
use crate::smtp::Reply;
use crate::spool::{Spool, StateChange};
use crate::telemetry::{EventCaps, Outcome, RECENT_EVENTS, Telemetry};
use crate::time;

mod own_mail;

use own_mail::DsnRequest;

/// Turns outcomes into records; one per configuration generation.
#[derive(Clone)]
pub struct Reporter {
    accounting: Accounting,
    classifier: Arc<Classifier>,
    host_name: String,
    events: Option<super::manager::Events>,
    /// Pool names, to tell a pool selected at injection (`vmtaPool`) from a VMTA.
    pools: Arc<HashSet<String>>,
    /// Counters and recent events for the API, `/metrics` and the dashboard.
    telemetry: Arc<Telemetry>,
    /// When each (message, recipient) last had a delay DSN (`notify-of-delay-every`); shared
    /// by the generations a reload makes, lost at a restart (then counted from arrival again).
    delay_notices: Arc<std::sync::Mutex<std::collections::HashMap<(MessageId, usize), u64>>>,
}

impl Reporter {
    pub fn new(config: &Config, accounting: Accounting, host_name: String) -> Reporter {
        Reporter {
            accounting,
            classifier: Arc::new(Classifier::new(&config.bounce_categories)),
            host_name,
            events: None,
            pools: Arc::new(config.pools.iter().map(|p| p.name.clone()).collect()),
            telemetry: Arc::default(),
            delay_notices: Arc::default(),
        }
    }

    /// Keeps the delay-DSN times of the generation this one replaces.
    pub fn continue_from(mut self, old: &Reporter) -> Reporter {
        self.delay_notices = Arc::clone(&old.delay_notices);
        self
    }

    /// The host name Ember's own mail (DSNs, notices) is from.
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// Where outcomes are counted (the daemon's one `Telemetry`).
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Reporter {
        self.telemetry = telemetry;
        self
    }

    /// Counts one recipient's outcome.
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        kind: &'static str,
        job: &Job,
        index: usize,
        reply: &Reply,
        remote: &Remote,
        key: Option<&QueueKey>,
        settings: Option<&QueueSettings>,
    ) {
        let env = &job.envelope;
        let recipient = &env.recipients[index];
        let domain = key.map_or_else(|| recipient.domain(), |k| k.name.clone());
        let vmta = key.map_or_else(|| env.vmta.clone().unwrap_or_else(|| "{default}".into()), |k| k.vmta.clone());
        let category = if kind == "bounced" { self.category(reply, settings) } else { String::new() };
        self.telemetry.outcome(
            kind,
            &Outcome {
                domain: &domain,
                vmta: &vmta,
                source_ip: &remote.source_ip,
                remote_ip: &remote.ip,
                rcpt: &recipient.address,
                job_id: env.job_id.as_deref(),
                diag: &reply.to_string(),
                category: &category,
                caps: event_caps(settings),
            },
        );
    }

    /// Where generated DSNs are submitted for delivery.
    pub fn with_events(mut self, events: super::manager::Events) -> Reporter {
        self.events = Some(events);
        self
    }

    /// Hands the changes to the spool without waiting: nothing here depends on their being
    /// durable, and the spool syncs them with its next batch (see `Spool::record`).
    fn persist(spool: &Spool, changes: Vec<StateChange>) {
        if let Err(e) = spool.record(changes) {
            // Not recorded: after a restart these recipients are tried again (at least once).
            tracing::error!("cannot record delivery outcomes in the spool: {e}");
        }
    }

    /// Writes a `d`, `b` or `t` record for one recipient, built by `Record::delivery` from what
    /// the envelope, the reply and the connection say. `settings` carries the queue's
    /// `disable-acct-records` and `log-delivery-failures`; `invalid_553` its
    /// `smtp-553-means-invalid-mailbox`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        kind: RecordType,
        job: &Job,
        index: usize,
        reply: &Reply,
        category: &str,
        remote: &Remote,
        queue: Option<&QueueKey>,
        settings: Option<&QueueSettings>,
        invalid_553: bool,
    ) {
        let acct = settings.map(|s| QueueAcct::from_settings(&s.settings)).unwrap_or_default();
        if !self.accounting.wants_for(kind, &acct) {
            return;
        }
        let env = &job.envelope;
        let recipient = &env.recipients[index];
        let code = status::reply_status(reply, invalid_553).to_string();
        let diag = status::diagnostic(reply);
        let vmta = queue.map_or_else(|| env.vmta.clone().unwrap_or_else(|| "{default}".into()), |k| k.vmta.clone());
        // The pool the message selected, when it selected one (not a warm-up diversion).
        let pool = env.vmta.clone().filter(|v| self.pools.contains(v)).unwrap_or_default();
        let queue_name = queue.map_or_else(|| format!("{}/{vmta}", recipient.domain()), ToString::to_string);
        let orcpt = recipient.orcpt.as_ref().map(|o| format!("rfc822;{o}")).unwrap_or_default();
        let (tls_protocol, tls_cipher) = remote.tls.clone().unwrap_or_default();
        let facts = DeliveryFacts {
            time_logged: time::now_secs(),
            status: &code,
            diag: &diag,
            remote_host: &remote.mx,
            remote_ip: remote.ip.parse().ok(),
            bounce_cat: category,
            dlv_source_ip: remote.source_ip.parse().ok(),
            esmtp_available: &remote.esmtp,
            vmta: &vmta,
            vmta_pool: &pool,
            queue: &queue_name,
            orcpt: &orcpt,
            tls_protocol: &tls_protocol,
            tls_cipher: &tls_cipher,
            dlv_type: remote.dlv_type,
            ..DeliveryFacts::from_envelope(env, recipient)
        };
        self.accounting.write_for(&Record::delivery(kind, &facts), &acct);
    }

    fn category(&self, reply: &Reply, settings: Option<&QueueSettings>) -> String {
        let code = status::reply_status(reply, bare_553_is_5_1_1(settings)).to_string();
        self.classifier.classify(&code, &status::diagnostic(reply)).to_string()
    }

    pub fn delivered(
        &self,
        spool: &Spool,
        job: &Job,
        done: &[(usize, Reply)],
        remote: &Remote,
        key: &QueueKey,
        settings: &QueueSettings,
    ) {
        if !done.is_empty() {
            self.bcc_upon_delivery(spool, job, settings);
            self.delay_notices_done(job, &done.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        }
        let id = job.envelope.id;
        for (i, reply) in done {
            tracing::info!(queue = %key, mx = %remote.mx, "delivered {id} to <{}>: {reply}", job.envelope.recipients[*i].address);
        }
        Self::persist(
            spool,
            done.iter().map(|(i, _)| StateChange { id, recipient: *i, state: RecipientState::Delivered }).collect(),
        );
        for (i, reply) in done {
            self.observe("delivered", job, *i, reply, remote, Some(key), Some(settings));
            let invalid_553 = bare_553_is_5_1_1(Some(settings));
            self.record(RecordType::Delivery, job, *i, reply, "", remote, Some(key), Some(settings), invalid_553);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn deferred(
        &self,
        spool: &Spool,
        job: &Job,
        later: &[(usize, Reply, u64)],
        attempts: u32,
        remote: &Remote,
        key: &QueueKey,
        settings: &QueueSettings,
        config: &Config,
    ) {
        self.delay_dsns(spool, job, later, remote, key, settings, config);
        let id = job.envelope.id;
        for (i, reply, at) in later {
            tracing::info!(queue = %key, "deferred {id} to <{}> until {}: {reply}", job.envelope.recipients[*i].address, time::acct(*at));
        }
        Self::persist(
            spool,
            later
                .iter()
                .map(|(i, _, at)| StateChange {
                    id,
                    recipient: *i,
                    state: RecipientState::Pending { not_before: *at, attempts },
                })
                .collect(),
        );
        for (i, reply, _) in later {
            self.observe("deferred", job, *i, reply, remote, Some(key), Some(settings));
            let category = self.category(reply, Some(settings));
            let invalid_553 = bare_553_is_5_1_1(Some(settings));
            self.record(
                RecordType::Transient,
                job,
                *i,
                reply,
                &category,
                remote,
                Some(key),
                Some(settings),
                invalid_553,
            );
        }
    }

    /// Bounces recipients: spool state, `b` records, and a DSN to the sender when one is due.
    /// `settings` are the queue's, when the recipients belong to one (`smtp-553-means-invalid-mailbox`).
    #[allow(clippy::too_many_arguments)]
    pub fn bounce(
        &self,
        spool: &Spool,
        job: &Job,
        indexes: &[usize],
        reply: &Reply,
        remote: &Remote,
        key: Option<&QueueKey>,
        settings: Option<&QueueSettings>,
        config: &Config,
    ) {
        if indexes.is_empty() {
            return;
        }
        let env = &job.envelope;
        let id = env.id;
        for i in indexes {
            tracing::info!("bounced {id} to <{}>: {reply}", env.recipients[*i].address);
        }
        Self::persist(
            spool,
            indexes.iter().map(|i| StateChange { id, recipient: *i, state: RecipientState::Bounced }).collect(),
        );
        let category = self.category(reply, settings);
        let invalid_553 = bare_553_is_5_1_1(settings);
        for i in indexes {
            self.observe("bounced", job, *i, reply, remote, key, settings);
            self.record(RecordType::Bounce, job, *i, reply, &category, remote, key, None, invalid_553);
        }
        let format = settings.map(|s| dsn::DsnFormat::from_settings(&s.settings)).unwrap_or_default();
        let request =
            DsnRequest { kind: DsnKind::Failure, reply, category: &category, remote, key, invalid_553, format };
        let recipients = indexes.iter().map(|&i| (i, None)).collect::<Vec<_>>();
        self.send_dsn(spool, job, &recipients, &request, config);
        self.delay_notices_done(job, indexes);
    }

    /// Recipients an operator deleted (`ember delete`): spool state `deleted`, a `b` record
    /// each unless `accounting` is false, a DSN only when asked (`--dsn`).
    #[allow(clippy::too_many_arguments)]
    pub fn deleted(
        &self,
        spool: &Spool,
        job: &Job,
        reply: &Reply,
        remote: &Remote,
        key: &QueueKey,
        accounting: bool,
        dsn: bool,
        config: &Config,
    ) {
        let id = job.envelope.id;
        Self::persist(
            spool,
            job.recipients.iter().map(|i| StateChange { id, recipient: *i, state: RecipientState::Deleted }).collect(),
        );
        let category = self.category(reply, None);
        for i in &job.recipients {
            tracing::info!(queue = %key, "deleted {id} to <{}> (operator)", job.envelope.recipients[*i].address);
            self.observe("deleted", job, *i, reply, remote, Some(key), None);
            if accounting {
                self.record(RecordType::Bounce, job, *i, reply, &category, remote, Some(key), None, true);
            }
        }
        if dsn {
            let format = dsn::DsnFormat::Standard;
            let request = DsnRequest {
                kind: DsnKind::Failure,
                reply,
                category: &category,
                remote,
                key: Some(key),
                invalid_553: true,
                format,
            };
            let recipients = job.recipients.iter().map(|&i| (i, None)).collect::<Vec<_>>();
            self.send_dsn(spool, job, &recipients, &request, config);
        }
    }

    /// Recipients a peer accepted from this draining node (`ember drain`): spool state
    /// `delivered` (they are the peer's now), and a `d` record each with `dlvType` `handover` and
    /// the peer in `dsnMta`, so they are told apart from deliveries to the destination.
    pub fn handed_over(
        &self,
        spool: &Spool,
        job: &Job,
        reply: &Reply,
        peer: &Remote,
        key: &QueueKey,
        settings: Option<&QueueSettings>,
    ) {
        let id = job.envelope.id;
        for i in &job.recipients {
            tracing::info!(queue = %key, peer = %peer.mx, "handed over {id} to <{}>: {reply}", job.envelope.recipients[*i].address);
        }
        Self::persist(
            spool,
            job.recipients
                .iter()
                .map(|i| StateChange { id, recipient: *i, state: RecipientState::Delivered })
                .collect(),
        );
        self.delay_notices_done(job, &job.recipients);
        for i in &job.recipients {
            self.record(RecordType::Delivery, job, *i, reply, "", peer, Some(key), settings, false);
        }
    }

    /// A worker of the queue died; the recipients it held are deferred by the caller.
    pub fn worker_failed(&self, key: &QueueKey) {
        self.telemetry.worker_failure(&key.name, &key.vmta);
    }

    /// The daemon's counters.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub fn queue_failure(&self, key: &QueueKey, failure: &QueueFailure, settings: &QueueSettings) {
        tracing::info!(queue = %key, "queue failure: {}{}", failure.reply, if failure.permanent { " (permanent)" } else { "" });
        let remote = &failure.remote;
        self.telemetry.queue_failure(
            &key.name,
            &key.vmta,
            &remote.source_ip,
            &remote.ip,
            &failure.reply.to_string(),
            event_caps(Some(settings)),
        );
        if !self.accounting.wants(RecordType::TransientQueue) {
            return;
        }
        let code = status::reply_status(&failure.reply, bare_553_is_5_1_1(Some(settings))).to_string();
        let diag = status::diagnostic(&failure.reply);
        let queue = key.to_string();
        let facts = DeliveryFacts {
            time_logged: time::now_secs(),
            status: &code,
            diag: &diag,
            remote_host: &failure.remote.mx,
            remote_ip: failure.remote.ip.parse().ok(),
            dlv_source_ip: failure.remote.source_ip.parse().ok(),
            vmta: &key.vmta,
            queue: &queue,
            ..DeliveryFacts::default()
        };
        let rec = Record::delivery(RecordType::TransientQueue, &facts);
        self.accounting.write(&rec);
    }
}

/// What a queue keeps of its recent events: `track-recipient-events` (the last 50 recipient
/// events, or none) and `max-events-recorded` (errors). Outside any queue, PowerMTA's defaults.
fn event_caps(settings: Option<&QueueSettings>) -> EventCaps {
    let Some(p) = settings.map(|q| &q.policy) else { return EventCaps::default() };
    EventCaps {
        events: if p.track_recipient_events { RECENT_EVENTS } else { 0 },
        errors: usize::try_from(p.max_events_recorded).unwrap_or(usize::MAX),
    }
}

/// The From: of Ember's DSNs: `custom-dsn-from-header`, else the `postmaster` address, else
/// (`None`) `mailer-daemon@` the host name.
pub fn dsn_from_header(config: &Config) -> Option<String> {
    use crate::config::Dir;
    config
        .global
        .text(Dir::CustomDsnFromHeader)
        .map(str::to_string)
        .or_else(|| config.global.text(Dir::Postmaster).map(|p| format!("Mail Delivery Subsystem <{p}>")))
}

/// `smtp-553-means-invalid-mailbox` of a queue (PowerMTA's default, yes, outside any queue).
fn bare_553_is_5_1_1(settings: Option<&QueueSettings>) -> bool {
    settings.is_none_or(|s| s.settings.flag(crate::config::Dir::Smtp553MeansInvalidMailbox))
}
