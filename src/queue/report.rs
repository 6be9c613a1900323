//! What an outcome does: spool state changes (durable, group-committed), PowerMTA accounting
//! records (`d`, `b`, `t`, `tq`), bounce categories, and DSNs to the sender, themselves queued
//! through the spool.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::QueueKey;
use super::manager::{Event, Job};
use super::worker::{QueueFailure, Remote};
use crate::config::Config;
use crate::config::resolve::QueueSettings;
use crate::message::{Envelope, MessageId, Origin, Recipient, RecipientState};
use crate::outcome::acct::{Accounting, Record, RecordType};
use crate::outcome::category::Classifier;
use crate::outcome::dsn::{self, DsnInput, DsnKind, DsnRecipient};
use crate::outcome::status;
use crate::smtp::Reply;
use crate::spool::{Spool, StateChange};
use crate::time;

/// Turns outcomes into records; one per configuration generation.
#[derive(Clone)]
pub struct Reporter {
    accounting: Accounting,
    classifier: Arc<Classifier>,
    host_name: String,
    events: Option<mpsc::UnboundedSender<Event>>,
}

impl Reporter {
    pub fn new(config: &Config, accounting: Accounting, host_name: String) -> Reporter {
        Reporter {
            accounting,
            classifier: Arc::new(Classifier::new(&config.bounce_categories)),
            host_name,
            events: None,
        }
    }

    /// Where generated DSNs are submitted for delivery.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<Event>) -> Reporter {
        self.events = Some(events);
        self
    }

    fn persist(spool: &Spool, changes: Vec<StateChange>) {
        if changes.is_empty() {
            return;
        }
        let spool = spool.clone();
        tokio::spawn(async move {
            if let Err(e) = spool.update(changes).await {
                // Not recorded: after a restart these recipients are tried again (at least once).
                tracing::error!("cannot record delivery outcomes in the spool: {e}");
            }
        });
    }

    /// The columns every delivery record shares.
    fn base(
        &self,
        kind: RecordType,
        job: &Job,
        index: usize,
        reply: &Reply,
        remote: &Remote,
        queue: Option<&QueueKey>,
    ) -> Record {
        let env = &job.envelope;
        let r = &env.recipients[index];
        let code = status::reply_status(reply, true).to_string();
        let vmta = queue.map_or_else(|| env.vmta.clone().unwrap_or_else(|| "{default}".into()), |k| k.vmta.clone());
        let pool = env.vmta.clone().filter(|v| *v != vmta).unwrap_or_default();
        let mut rec = Record::new(kind)
            .set("timeLogged", time::acct(time::now_secs()))
            .set("timeQueued", time::acct(env.arrival_ms / 1000))
            .set("orig", env.sender.clone())
            .set("rcpt", r.address.clone())
            .set("orcpt", r.orcpt.clone().map(|o| format!("rfc822;{o}")).unwrap_or_default())
            .set("dsnStatus", status::status_text(&code))
            .set("dsnDiag", status::diagnostic(reply))
            .set("srcType", env.origin.kind.clone())
            .set("srcMta", env.origin.client_ip.map(|ip| format!("{} ({ip})", env.origin.helo)).unwrap_or_default())
            .set("vmta", vmta.clone())
            .set("jobId", env.job_id.clone().unwrap_or_default())
            .set("envId", env.env_id.clone().unwrap_or_default())
            .set("queue", queue.map_or_else(|| format!("{}/{vmta}", r.domain()), ToString::to_string))
            .set("vmtaPool", pool);
        if !remote.mx.is_empty() {
            rec = rec
                .set("dsnMta", format!("{} ({})", remote.mx, remote.ip))
                .set("dlvType", "smtp")
                .set("dlvSourceIp", remote.source_ip.clone())
                .set("dlvDestinationIp", remote.ip.clone())
                .set("dlvEsmtpAvailable", remote.esmtp.clone())
                .set("dlvSize", "")
                .set("dlvTlsProtocol", remote.tls.as_ref().map(|t| t.0.clone()).unwrap_or_default())
                .set("dlvTlsCipher", remote.tls.as_ref().map(|t| t.1.clone()).unwrap_or_default());
        }
        rec
    }

    pub fn delivered(
        &self,
        spool: &Spool,
        job: &Job,
        done: &[(usize, Reply)],
        remote: &Remote,
        key: &QueueKey,
        _settings: &QueueSettings,
    ) {
        let id = job.envelope.id;
        for (i, reply) in done {
            tracing::info!(queue = %key, mx = %remote.mx, "delivered {id} to <{}>: {reply}", job.envelope.recipients[*i].address);
        }
        Self::persist(
            spool,
            done.iter().map(|(i, _)| StateChange { id, recipient: *i, state: RecipientState::Delivered }).collect(),
        );
        if self.accounting.wants(RecordType::Delivery) {
            for (i, reply) in done {
                let rec =
                    self.base(RecordType::Delivery, job, *i, reply, remote, Some(key)).set("dsnAction", "relayed");
                self.accounting.write(&rec);
            }
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
        _settings: &QueueSettings,
    ) {
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
        if self.accounting.wants(RecordType::Transient) {
            for (i, reply, _) in later {
                let cat = self
                    .classifier
                    .classify(&status::reply_status(reply, true).to_string(), &status::diagnostic(reply))
                    .to_string();
                let rec = self
                    .base(RecordType::Transient, job, *i, reply, remote, Some(key))
                    .set("dsnAction", "delayed")
                    .set("bounceCat", cat);
                self.accounting.write(&rec);
            }
        }
    }

    /// Bounces recipients: spool state, `b` records, and a DSN to the sender when one is due.
    #[allow(clippy::too_many_arguments)]
    pub fn bounce(
        &self,
        spool: &Spool,
        job: &Job,
        indexes: &[usize],
        reply: &Reply,
        remote: &Remote,
        key: Option<&QueueKey>,
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
        let code = status::reply_status(reply, true).to_string();
        let category = self.classifier.classify(&code, &status::diagnostic(reply)).to_string();
        if self.accounting.wants(RecordType::Bounce) {
            for i in indexes {
                let rec = self
                    .base(RecordType::Bounce, job, *i, reply, remote, key)
                    .set("dsnAction", "failed")
                    .set("bounceCat", category.clone());
                self.accounting.write(&rec);
            }
        }
        self.send_dsn(spool, job, indexes, reply, &code, &category, remote, key, config);
    }

    #[allow(clippy::too_many_arguments)]
    fn send_dsn(
        &self,
        spool: &Spool,
        job: &Job,
        indexes: &[usize],
        reply: &Reply,
        code: &str,
        category: &str,
        remote: &Remote,
        key: Option<&QueueKey>,
        config: &Config,
    ) {
        let _ = reply;
        let env = Arc::clone(&job.envelope);
        let recipients: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|i| dsn::should_send(&env.sender, env.recipients[*i].notify, DsnKind::Failure))
            .collect();
        if recipients.is_empty() {
            return;
        }
        let Some(events) = self.events.clone() else { return };
        let spool = spool.clone();
        let host = self.host_name.clone();
        let vmta = key.map(|k| k.vmta.clone()).unwrap_or_else(|| "{default}".into());
        let from_header = config.global.text(crate::config::Dir::CustomDsnFromHeader).map(str::to_string);
        let diag = status::diagnostic(reply);
        let (code, category) = (code.to_string(), category.to_string());
        let remote_mta = (!remote.mx.is_empty()).then(|| format!("{} ({})", remote.mx, remote.ip));
        tokio::spawn(async move {
            let original = spool.read_body(env.id).unwrap_or_default();
            let now = time::now_secs();
            let mut input = DsnInput::new(DsnKind::Failure, &env, &host, &original, now);
            input.vmta = vmta.clone();
            input.from_header = from_header;
            input.recipients = recipients
                .iter()
                .map(|&i| DsnRecipient {
                    address: env.recipients[i].address.clone(),
                    orcpt: env.recipients[i].orcpt.clone().map(|o| format!("rfc822;{o}")),
                    status: code.clone(),
                    diag: diag.clone(),
                    remote_mta: remote_mta.clone(),
                    category: category.clone(),
                    last_attempt: Some(now),
                    will_retry_until: None,
                })
                .collect();
            let body = dsn::build_dsn(&input);
            let dsn_envelope = Envelope {
                id: MessageId(0),
                sender: String::new(),
                recipients: vec![Recipient::new(env.sender.clone())],
                vmta: env.vmta.clone(),
                job_id: None,
                env_id: None,
                ret: None,
                eight_bit: body.iter().any(|b| *b >= 0x80),
                smtputf8: !env.sender.is_ascii(),
                arrival_ms: time::now_millis(),
                priority: None,
                origin: Origin { kind: "dsn".into(), ..Origin::default() },
            };
            match spool.store(dsn_envelope.clone(), body).await {
                Ok(id) => {
                    tracing::info!("queued DSN {id} to <{}> about {}", env.sender, env.id);
                    let mut stored = dsn_envelope;
                    stored.id = id;
                    let _ = events.send(Event::Submit(Box::new(stored), true));
                }
                Err(e) => tracing::error!("cannot queue the DSN for message {}: {e}", env.id),
            }
        });
    }

    pub fn queue_failure(&self, key: &QueueKey, failure: &QueueFailure) {
        tracing::info!(queue = %key, "queue failure: {}{}", failure.reply, if failure.permanent { " (permanent)" } else { "" });
        if !self.accounting.wants(RecordType::TransientQueue) {
            return;
        }
        let code = status::reply_status(&failure.reply, true).to_string();
        let rec = Record::new(RecordType::TransientQueue)
            .set("timeLogged", time::acct(time::now_secs()))
            .set("queue", key.to_string())
            .set("vmta", key.vmta.clone())
            .set("dsnStatus", status::status_text(&code))
            .set("dsnDiag", status::diagnostic(&failure.reply))
            .set(
                "dsnMta",
                if failure.remote.mx.is_empty() {
                    String::new()
                } else {
                    format!("{} ({})", failure.remote.mx, failure.remote.ip)
                },
            )
            .set("dlvType", "smtp")
            .set("dlvSourceIp", failure.remote.source_ip.clone())
            .set("dlvDestinationIp", failure.remote.ip.clone());
        self.accounting.write(&rec);
    }
}
