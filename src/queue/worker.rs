//! One outbound connection working one queue: resolve the MX plan, connect to the first host
//! that answers (from the VMTA's source IP), then send the queue's messages one after another,
//! reporting every recipient's reply, until the queue is empty, `max-msg-per-connection` or
//! `max-errors-per-connection` is reached, or the connection breaks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::QueueKey;
use super::manager::{Event, Job, NextJob};
use super::no_mx::{self, NoMxPolicy};
use super::vmta::SourceHost;
use crate::config::Dir;
use crate::config::resolve::QueueSettings;
use crate::config::rewrite::RewriteList;
use crate::config::value::Value;
use crate::delivery::client::{ClientConfig, Connection, TransferPolicy};
use crate::delivery::local::{Context as LocalContext, LocalDelivery};
use crate::delivery::mx::{MxHost, MxPlan, MxResolver, ResolveError};
use crate::delivery::{OutgoingMessage, OutgoingRecipient};
use crate::smtp::Reply;
use crate::spool::Spool;

/// Where a reply came from, for accounting (`dsnMta`, `dlvSourceIp`, …).
#[derive(Clone, Debug, Default)]
pub struct Remote {
    pub mx: String,
    pub ip: String,
    pub source_ip: String,
    pub esmtp: String,
    pub tls: Option<(String, String)>,
    /// `dlvType`: empty for SMTP, `file`, `pipe` or `discard` for a local delivery type.
    pub dlv_type: &'static str,
}

/// Why a connection could not be made: the queue goes into retry mode, or (`permanent`) its
/// recipients bounce.
#[derive(Clone, Debug)]
pub struct QueueFailure {
    pub reply: Reply,
    pub permanent: bool,
    /// A DNS failure retries after `retry-after-dns-error`, not the queue's `retry-after`.
    pub dns: bool,
    /// `bounce-upon-no-mx TIME`: mail queued at least this long bounces with this reply while
    /// the rest waits in retry mode.
    pub bounce_older: Option<(Duration, Reply)>,
    pub remote: Remote,
}

/// Everything a worker needs, cloned from the manager when it starts one.
pub struct WorkerSetup {
    /// Names this connection to the manager, which keeps what it hands out under it.
    pub worker: super::supervisor::WorkerId,
    pub key: QueueKey,
    pub settings: Arc<QueueSettings>,
    pub source: SourceHost,
    pub resolver: MxResolver,
    pub spool: Spool,
    pub events: super::manager::Events,
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// `smtp-client-certificate`, resolved against the config's directory.
    pub client_certificate: Option<std::path::PathBuf>,
    /// The queue's TLS session cache when `reuse-ssl-session yes`.
    pub tls_sessions: Option<Arc<crate::delivery::client::SessionCache>>,
    /// MX hosts a `skip-mx` rule set aside: tried only when no other host is left.
    pub skip_mx: Vec<String>,
    /// The configuration generation the connection started with (`<rewrite-list>` of the VMTA
    /// or pool; each message's source settings: `verp-default`, `add-x-virtual-mta-header`,
    /// `date-header-time`).
    pub config: Arc<crate::config::Config>,
    /// DKIM keys of the current configuration generation.
    pub dkim: crate::dkim::Keys,
    /// The domain whose MX plan this connection uses: the queue's own name, or for a rollup
    /// queue a member domain's (src/queue/rollup/).
    pub mx_domain: String,
    /// `<mx-rollup-list>` and `auto-mx-rollup`, when this queue's MX hosts are to be checked.
    pub rollup: Option<super::rollup::RollupCheck>,
    /// `mx-connection-limit` / `ip-connection-limit`, shared by every queue.
    pub dest_limits: Arc<super::dest_limits::DestLimits>,
    /// Cluster mode: the lease to take before connecting and what it costs.
    pub cluster: Option<ClusterLink>,
    /// MTA-STS policies and TLS-RPT counts (`None` in unit tests of the manager).
    pub tls_policies: Option<Arc<crate::delivery::tls_policy::TlsPolicies>>,
}

/// What one connection shares with the other nodes of the cluster.
pub struct ClusterLink {
    pub cluster: crate::cluster::Cluster,
    /// The identity and queue (`crate::cluster::limits::scope`).
    pub scope: String,
    /// The queue's connection cap when the connection started.
    pub cap: usize,
    /// The connect rates a new connection pays.
    pub connect: crate::cluster::Demand,
}

/// The client settings of a queue (TLS, AUTH, timeouts, `ignore-*`).
pub fn client_config(setup: &WorkerSetup) -> ClientConfig {
    let s = &setup.settings.settings;
    let p = &setup.settings.policy;
    let source = &setup.source;
    // Checked when the configuration loaded (config::tls_names); a value that still does not
    // parse offers every suite rather than none.
    let tls13_suites = s
        .text(Dir::SmtpTlsTlsv13Ciphersuites)
        .and_then(|t| crate::config::tls_names::tls13_suites(t).ok())
        .map(|names| names.into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    let auth = match (s.text(Dir::AuthUsername), s.text(Dir::AuthPassword)) {
        (Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
        _ => None,
    };
    ClientConfig {
        helo_name: source.helo.clone(),
        source_ip: source.ip,
        use_starttls: p.use_starttls,
        require_starttls: p.require_starttls,
        tls_ca_file: setup.tls_ca_file.clone(),
        allow_tls12: p.allow_tls12,
        allow_tls13: p.allow_tls13,
        tls13_suites,
        client_certificate: setup.client_certificate.clone(),
        tls_sessions: setup.tls_sessions.clone(),
        auth,
        allow_plain_in_clear: p.use_unencrypted_plain_auth,
        ignore_pipelining: p.ignore_pipelining,
        ignore_chunking: p.ignore_chunking,
        ignore_8bitmime: p.ignore_8bitmime,
        ignore_dsn: p.ignore_dsn,
        max_rcpt_per_transaction: p.max_rcpt_per_transaction,
        connect_timeout: p.connect_timeout,
        greeting_timeout: p.greeting_timeout,
        command_timeout: p.command_timeout,
        data_send_timeout: p.data_send_timeout,
        data_termination_timeout: p.data_termination_timeout,
        transfer: TransferPolicy {
            bounce_upon_failure: p.bounce_upon_transfer_failure,
            assume_delivery_upon_termination_timeout: p.assume_delivery_upon_data_termination_timeout,
        },
        replace_421_text: p.replace_smtp_421_service_response,
        log_transfer_failures: p.log_transfer_failures,
        tls_policy: None,
        tls_audit: None,
    }
}

/// Runs one connection to its end and tells the manager how it ended.
pub async fn run(setup: WorkerSetup) {
    let failure = work(&setup).await;
    let ended =
        Event::ConnectionEnded { worker: setup.worker, key: setup.key.clone(), source: setup.source.ip, failure };
    if setup.events.send(ended).await.is_err() {
        tracing::debug!(queue = %setup.key, "connection ended while the queue manager stopped");
    }
}

async fn work(setup: &WorkerSetup) -> Option<QueueFailure> {
    let s = &setup.settings.settings;
    let p = &setup.settings.policy;
    match LocalDelivery::from_settings(
        s,
        // A relative file-destination is taken from the configuration's directory, like every
        // other path the configuration names.
        &setup.config.path(std::path::Path::new(".")),
    ) {
        None => {}
        Some(Ok(local)) => return work_locally(setup, &local).await,
        Some(Err(e)) => {
            // A queue whose local delivery cannot work waits in retry mode for a fixed config.
            tracing::error!(queue = %setup.key, "{e}");
            let reply = Reply::new(451, "4.3.5", e.to_string());
            return Some(QueueFailure {
                reply,
                permanent: false,
                dns: false,
                bounce_older: None,
                remote: Remote::default(),
            });
        }
    }
    let smtp_hosts = match s.effective(Dir::SmtpHosts) {
        Some(Value::SmtpHosts(tiers)) => Some(tiers.as_slice()),
        _ => None,
    };
    let port = p.default_smtp_port;
    let source_ip = setup.source.ip.map(|ip| ip.to_string()).unwrap_or_default();
    let resolved = setup.resolver.plan(&setup.mx_domain, smtp_hosts, port).await;
    if p.log_resolution {
        log_resolution(setup, &resolved);
    }
    let plan = match resolved {
        Ok(plan) => plan,
        Err(e) => {
            let remote = Remote { source_ip, ..Remote::default() };
            let reply = e.reply();
            return Some(match e {
                ResolveError::Temporary(_) => {
                    QueueFailure { reply, permanent: false, dns: true, bounce_older: None, remote }
                }
                ResolveError::NullMx => QueueFailure { reply, permanent: true, dns: false, bounce_older: None, remote },
                ResolveError::NoSuchDomain => match NoMxPolicy::from_settings(s) {
                    NoMxPolicy::Bounce => {
                        QueueFailure { reply, permanent: true, dns: false, bounce_older: None, remote }
                    }
                    NoMxPolicy::Retry => QueueFailure {
                        reply: no_mx::deferral(&reply),
                        permanent: false,
                        dns: false,
                        bounce_older: None,
                        remote,
                    },
                    NoMxPolicy::BounceOlderThan(age) => QueueFailure {
                        reply: no_mx::deferral(&reply),
                        permanent: false,
                        dns: false,
                        bounce_older: Some((age, reply)),
                        remote,
                    },
                },
            });
        }
    };
    // MX rollup: a domain whose MX hosts belong to a rollup hands its mail to the rollup's queue
    // before any connection is made.
    if let Some(check) = &setup.rollup
        && plan.source == crate::delivery::mx::PlanSource::Mx
        && check.rolled_up(&setup.key, &setup.events, &plan).await
    {
        return None;
    }
    // The recipient domain's transport-security policy (DANE, MTA-STS): not for smtp-hosts
    // routes, which the operator chose, nor for a rollup queue's connection as a whole: it
    // carries several domains' mail, each checked against its own domain's policy
    // (MemberPolicies).
    let by_mx = plan.source != crate::delivery::mx::PlanSource::SmtpHosts;
    let security = match &setup.tls_policies {
        Some(t) if by_mx && setup.mx_domain == setup.key.name => {
            let use_policies = crate::delivery::tls_policy::UsePolicies { mta_sts: p.use_mta_sts, dane: p.use_dane };
            t.for_domain(&setup.mx_domain, &plan, use_policies, setup.tls_ca_file.as_deref()).await
        }
        _ => crate::delivery::tls_policy::DomainSecurity::none(&setup.mx_domain),
    };
    // Cluster mode: one of the identity's shared connections to this queue, held until the
    // connection ends (dropped on every return below).
    let lease = match &setup.cluster {
        Some(link) => match link.cluster.lease(&link.scope, link.cap, &link.connect, setup.worker).await {
            Some(lease) => Some(lease),
            // None came free: the queue manager decides again whether a connection is wanted.
            None => return None,
        },
        None => None,
    };
    let mut config = client_config(setup);
    security.apply(&mut config);
    let max_attempts = p.mx_connection_attempts;
    let mx_unavailable_upon_421 = p.smtp_421_means_mx_unavailable;
    let preferred: Vec<&_> = plan.hosts.iter().filter(|h| !setup.skip_mx.contains(&h.name)).collect();
    let hosts = if preferred.is_empty() { plan.hosts.iter().collect() } else { preferred };
    let hosts = match security.allowed_hosts(hosts) {
        Ok(hosts) => hosts,
        Err(reply) => {
            tracing::info!(queue = %setup.key, "{reply}");
            let remote = Remote { source_ip, ..Remote::default() };
            return Some(QueueFailure { reply, permanent: false, dns: false, bounce_older: None, remote });
        }
    };
    // A source address of one family cannot reach a destination of the other.
    let candidates: Vec<(&MxHost, std::net::SocketAddr)> = hosts
        .into_iter()
        .flat_map(|h| h.addrs.iter().map(move |a| (h, *a)))
        .filter(|(_, a)| setup.source.ip.is_none_or(|ip| ip.is_ipv4() == a.is_ipv4()))
        .take(max_attempts)
        .collect();
    let mut candidates: VecDeque<_> = candidates.into();
    // Recipients a 421 sent away from the last MX, with that reply: they go first to the next.
    let mut carried: Option<Box<Carried>> = None;
    loop {
        let mut last: Option<(Reply, bool, Remote)> = None;
        let mut connection = None;
        // Hosts at their mx-connection-limit / ip-connection-limit are waited for, as long as a
        // connection attempt may take.
        let give_up = tokio::time::Instant::now() + config.connect_timeout;
        loop {
            let mut capped = Vec::new();
            while let Some((host, addr)) = candidates.pop_front() {
                let Some(slot) = setup.dest_limits.acquire(&host.name, addr.ip(), setup.source.ip) else {
                    capped.push((host, addr));
                    continue;
                };
                match Connection::open(addr, &host.name, &config).await {
                    Ok(c) => {
                        security.record_connected(&c);
                        connection = Some((c, slot));
                        break;
                    }
                    Err(e) => {
                        tracing::info!(queue = %setup.key, mx = %host.name, %addr, "connection failed: {e}");
                        security.record_failed(&host.name, addr, &e);
                        let remote = Remote {
                            mx: host.name.clone(),
                            ip: addr.ip().to_string(),
                            source_ip: source_ip.clone(),
                            ..Remote::default()
                        };
                        let permanent = e.is_permanent() && p.bounce_upon_5xx_greeting;
                        // smtp-421-means-mx-unavailable no: a server saying 421 speaks for the whole
                        // destination, so the queue waits instead of trying the other MX hosts.
                        let defer_queue = !mx_unavailable_upon_421 && e.server_reply().is_some_and(|r| r.code == 421);
                        last = Some((e.reply(), permanent, remote));
                        if permanent || defer_queue {
                            break;
                        }
                    }
                }
            }
            // The capped hosts go back, in their order, to be tried again.
            for candidate in capped.into_iter().rev() {
                candidates.push_front(candidate);
            }
            let now = tokio::time::Instant::now();
            if connection.is_some() || last.is_some() || candidates.is_empty() {
                break;
            }
            if now >= give_up {
                let reply =
                    Reply::new(451, "4.4.5", "every MX host left is at its mx-connection-limit or ip-connection-limit");
                last = Some((reply, false, Remote { source_ip: source_ip.clone(), ..Remote::default() }));
                break;
            }
            // A freed slot wakes us; the bound covers a release between the check and the wait.
            let _ = tokio::time::timeout_at(give_up.min(now + Duration::from_secs(1)), setup.dest_limits.freed()).await;
        }
        if let Some((conn, _)) = &connection
            && p.log_tls
        {
            log_tls(setup, conn);
        }
        let Some((mut conn, _slot)) = connection else {
            let had_carried = carried.is_some();
            if let Some(c) = carried.take() {
                // No other MX host to take them: the 421 stands, as a deferral.
                report(setup, c.job, |_| c.reply.clone(), &c.remote).await;
            }
            let (reply, permanent, remote) = match last {
                Some(last) => last,
                // Nothing was tried after the 421: the queue itself is not failing.
                None if had_carried => return None,
                None => (Reply::new(451, "4.4.4", "no MX host to try"), false, Remote::default()),
            };
            return Some(QueueFailure { reply, permanent, dns: false, bounce_older: None, remote });
        };
        let members = super::rollup::member_policy::MemberPolicies::for_connection(setup, by_mx);
        match serve(setup, &mut conn, members, carried.take().map(|c| c.job), mx_unavailable_upon_421, lease.as_ref())
            .await
        {
            Served::Done => {
                conn.quit().await;
                return None;
            }
            Served::Broken => return None,
            Served::MxUnavailable(c) => {
                tracing::info!(queue = %setup.key, mx = %c.remote.mx, "{}: trying the next MX host (smtp-421-means-mx-unavailable)", c.reply);
                carried = Some(c);
            }
        }
    }
}

/// `log-resolution`: where the queue's mail is to go, one line per lookup.
fn log_resolution(setup: &WorkerSetup, resolved: &Result<MxPlan, ResolveError>) {
    match resolved {
        Ok(plan) => {
            let hosts: Vec<String> = plan
                .hosts
                .iter()
                .map(|h| {
                    let addrs: Vec<String> = h.addrs.iter().map(ToString::to_string).collect();
                    format!("{} (preference {}: {})", h.name, h.preference, addrs.join(" "))
                })
                .collect();
            tracing::info!(queue = %setup.key, "resolved {} from {:?}: {}", setup.mx_domain, plan.source, hosts.join(", "));
        }
        Err(e) => tracing::info!(queue = %setup.key, "resolving {} failed: {e}", setup.mx_domain),
    }
}

/// `log-tls`: what came of TLS on a new connection.
fn log_tls(setup: &WorkerSetup, conn: &Connection) {
    let (mx, addr) = (conn.mx_name(), conn.remote());
    match (conn.tls(), conn.tls_fallback()) {
        (Some((protocol, cipher)), _) => {
            let peer = conn.tls_peer().unwrap_or("");
            tracing::info!(queue = %setup.key, %mx, %addr, "TLS handshake done: {protocol} {cipher}; {peer}");
        }
        (None, Some(why)) => tracing::info!(queue = %setup.key, %mx, %addr, "TLS not used: {why}"),
        (None, None) => tracing::info!(queue = %setup.key, %mx, %addr, "TLS not used: not offered or not wanted"),
    }
}

/// How a connection's work ended.
enum Served {
    /// Nothing more to send, or a limit reached: QUIT.
    Done,
    /// The transaction failed with the connection: nothing more can be said on it.
    Broken,
    /// The server said 421 under `smtp-421-means-mx-unavailable`: these recipients go to the next
    /// MX host now (or are deferred with this reply when none is left).
    MxUnavailable(Box<Carried>),
}

/// Recipients a 421 sent away from an MX host, with that reply and where it came from.
struct Carried {
    job: Job,
    reply: Reply,
    remote: Remote,
}

/// Sends messages on an open connection until it is done: `first` (recipients carried over from
/// an MX that said 421), then whatever the manager hands out. On a rollup queue's connection
/// (`members`) each recipient keeps its own domain's TLS requirement and MTA-STS policy.
async fn serve(
    setup: &WorkerSetup,
    conn: &mut Connection,
    mut members: Option<super::rollup::member_policy::MemberPolicies>,
    first: Option<Job>,
    upon_421: bool,
    lease: Option<&crate::cluster::Lease>,
) -> Served {
    let p = &setup.settings.policy;
    let remote = Remote {
        mx: conn.mx_name().to_string(),
        ip: conn.remote().ip().to_string(),
        source_ip: conn.local().ip().to_string(),
        esmtp: conn.esmtp_available(),
        tls: conn.tls(),
        dlv_type: "",
    };
    let max_messages = p.max_msg_per_connection;
    let max_errors = p.max_errors_per_connection;
    let mut errors = 0u64;
    let mut first = first;
    loop {
        // After a 421 or a broken RSET the connection cannot carry another message.
        if !conn.is_usable() || (max_messages > 0 && conn.messages_sent() >= max_messages) {
            if let Some(job) = first.take() {
                let reply = Reply::new(451, "4.4.0", "no connection left for this message");
                report(setup, job, |_| reply.clone(), &remote).await;
            }
            return Served::Done;
        }
        let job = match first.take() {
            Some(job) => job,
            // A lease the cluster could not keep (degraded share used up, or Redis came back
            // full) ends the connection before it takes more work.
            None if lease.is_some_and(crate::cluster::Lease::lost) => return Served::Done,
            None => match next_job(setup, conn, &remote).await {
                Some((job, demand)) => {
                    if let Some(link) = &setup.cluster {
                        link.cluster.permit(&demand).await;
                    }
                    job
                }
                None => return Served::Done,
            },
        };
        let job = match members.as_mut() {
            None => job,
            Some(members) => {
                let split = members.split(job, conn).await;
                for (held, reply) in split.defer {
                    report(setup, held, |_| reply.clone(), &remote).await;
                }
                match split.send {
                    Some(job) => job,
                    None => continue,
                }
            }
        };
        // The VMTA's (or pool's) <rewrite-list> edits the From domain before signing, and the
        // envelope sender below.
        let rewrite = RewriteList::for_delivery(&setup.config, &setup.key.vmta, job.envelope.vmta.as_deref());
        let source = setup.config.message_source_settings(&job.envelope.origin);
        let body = match prepared_body(setup, &job, &source, rewrite.as_ref()) {
            Ok(b) => b,
            Err(reply) => {
                report(setup, job, |_| reply.clone(), &remote).await;
                continue;
            }
        };
        let mut message = outgoing(&job, body);
        if let Some(sender) = rewrite.as_ref().and_then(|r| r.sender(&message.sender)) {
            message.sender = sender;
        }
        if p.log_data {
            let context = format!("to {} ({}) message {}", remote.mx, remote.ip, job.envelope.id);
            crate::smtp::datalog::log(&context, &message.body);
        }
        let verp = source.flag(Dir::VerpDefault) && !message.sender.is_empty();
        let sent = if verp { Ok(send_verp(conn, &message).await) } else { conn.send(&message).await };
        match sent {
            Ok(outcome) => {
                errors += outcome.recipients.iter().filter(|r| !r.is_positive()).count() as u64;
                let replies = outcome.recipients;
                if upon_421 && !conn.is_usable() {
                    let split = split_421(job, &replies);
                    if let Some(stay) = split.stay {
                        report(setup, stay, |i| split.stay_replies[i].clone(), &remote).await;
                    }
                    if let Some((job, reply)) = split.away {
                        return Served::MxUnavailable(Box::new(Carried { job, reply, remote }));
                    }
                    continue;
                }
                report(
                    setup,
                    job,
                    |i| {
                        replies
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| Reply::new(451, "4.4.0", "no reply for this recipient"))
                    },
                    &remote,
                )
                .await;
                if max_errors.is_some_and(|m| errors >= m) {
                    tracing::info!(queue = %setup.key, "dropping the connection after {errors} errors (max-errors-per-connection)");
                    return Served::Done;
                }
            }
            Err(e) => {
                let reply = e.reply();
                tracing::info!(queue = %setup.key, mx = %remote.mx, "transaction failed: {e}");
                if upon_421 && e.server_reply().is_some_and(|r| r.code == 421) {
                    return Served::MxUnavailable(Box::new(Carried { job, reply, remote }));
                }
                report(setup, job, |_| reply.clone(), &remote).await;
                return Served::Broken;
            }
        }
    }
}

/// Asks the manager for the next message for this connection; `None` closes it.
async fn next_job(setup: &WorkerSetup, conn: &Connection, remote: &Remote) -> Option<(Job, crate::cluster::Demand)> {
    loop {
        let (tx, rx) = oneshot::channel();
        let next = Event::Next {
            worker: setup.worker,
            key: setup.key.clone(),
            source: setup.source.ip,
            mx: remote.mx.clone(),
            reply: tx,
        };
        setup.events.send(next).await.ok()?;
        // While the manager holds the request (an idle connection waiting for mail, under
        // connection-idle-timeout), a server that speaks or hangs up ends the wait: dropping the
        // request makes the manager give any job it was about to send to another connection.
        let answer = tokio::select! {
            answer = rx => answer,
            () = conn.peer_activity() => return None,
        };
        match answer {
            Ok(NextJob::Job(job, demand)) => return Some((job, demand)),
            Ok(NextJob::Wait(seconds)) => {
                // The queue's rate: keep the connection and ask again when the next message fits.
                tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.001, 60.0))).await;
            }
            Ok(NextJob::Done) | Err(_) => return None,
        }
    }
}

/// Splits a job whose session ended with a 421: the recipients that got it (to be tried on the
/// next MX host, with that reply), and the others with their replies (final or delivered).
fn split_421(job: Job, replies: &[Reply]) -> Split421 {
    let reply_of = |pos: usize| replies.get(pos).cloned().unwrap_or_else(|| Reply::new(451, "4.4.0", "no reply"));
    let mut away = Vec::new();
    let mut away_reply = None;
    let mut stay = Vec::new();
    let mut stay_replies = Vec::new();
    for (pos, &index) in job.recipients.iter().enumerate() {
        let reply = reply_of(pos);
        if reply.code == 421 {
            away.push(index);
            away_reply.get_or_insert(reply);
        } else {
            stay.push(index);
            stay_replies.push(reply);
        }
    }
    let part = |recipients: Vec<usize>| Job { envelope: Arc::clone(&job.envelope), recipients, attempts: job.attempts };
    let away = away_reply.map(|reply| (part(away), reply));
    let stay = (!stay.is_empty()).then(|| part(stay));
    Split421 { away, stay, stay_replies }
}

/// A job split by `split_421`.
struct Split421 {
    /// The recipients that got the 421, and the 421.
    away: Option<(Job, Reply)>,
    /// The others, with their replies in `stay_replies` (in order).
    stay: Option<Job>,
    stay_replies: Vec<Reply>,
}

/// A local delivery type (`type discard|file|pipe`): no MX and no connection; each message the
/// queue hands out is delivered in place and its replies reported like an SMTP receiver's.
async fn work_locally(setup: &WorkerSetup, local: &LocalDelivery) -> Option<QueueFailure> {
    let remote = Remote { dlv_type: local.dlv_type(), ..Remote::default() };
    let vmta = setup.key.vmta.clone();
    let queue = setup.key.to_string();
    loop {
        let (tx, rx) = oneshot::channel();
        let next = Event::Next {
            worker: setup.worker,
            key: setup.key.clone(),
            source: setup.source.ip,
            mx: String::new(),
            reply: tx,
        };
        if setup.events.send(next).await.is_err() {
            break;
        }
        let job = match rx.await {
            Ok(NextJob::Job(job, _)) => job,
            Ok(NextJob::Wait(seconds)) => {
                tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.001, 60.0))).await;
                continue;
            }
            Ok(NextJob::Done) | Err(_) => break,
        };
        let rewrite = RewriteList::for_delivery(&setup.config, &setup.key.vmta, job.envelope.vmta.as_deref());
        let source = setup.config.message_source_settings(&job.envelope.origin);
        let body = match prepared_body(setup, &job, &source, rewrite.as_ref()) {
            Ok(b) => b,
            Err(reply) => {
                report(setup, job, |_| reply.clone(), &remote).await;
                continue;
            }
        };
        let mut message = outgoing(&job, body);
        if let Some(sender) = rewrite.as_ref().and_then(|r| r.sender(&message.sender)) {
            message.sender = sender;
        }
        let msg_id = job.envelope.id.to_string();
        let ctx = LocalContext {
            queue: &queue,
            vmta: &vmta,
            job_id: job.envelope.job_id.as_deref().unwrap_or(""),
            msg_id: &msg_id,
            recipients: &job.recipients,
        };
        let replies = local.deliver(&message, &ctx).await;
        report(
            setup,
            job,
            |i| replies.get(i).cloned().unwrap_or_else(|| Reply::new(451, "4.4.0", "no reply for this recipient")),
            &remote,
        )
        .await;
    }
    None
}

/// The message as it leaves, or the reply that defers its recipients: read from the spool, its
/// From domain rewritten by the VMTA's `<rewrite-list>`, then sanitised and signed per queue,
/// after every header change (docs/operations.md). `source` are the settings of the source the
/// message came from.
fn prepared_body(
    setup: &WorkerSetup,
    job: &Job,
    source: &crate::config::settings::Settings,
    rewrite: Option<&RewriteList>,
) -> Result<Arc<Vec<u8>>, Reply> {
    let body = setup
        .spool
        .read_body(job.envelope.id)
        .map_err(|e| Reply::new(451, "4.3.0", format!("cannot read the spooled message: {e}")))?;
    let body = rewrite.and_then(|r| r.message(&body)).unwrap_or(body);
    let now = crate::time::now_secs();
    crate::delivery::prepare::outgoing(
        &setup.dkim.current(),
        &setup.key.vmta,
        &setup.settings.settings,
        source,
        job.envelope.dkim_options.as_deref(),
        job.envelope.origin.kind == crate::message::TLSRPT_ORIGIN,
        Arc::new(body),
        now,
    )
    .map_err(|e| {
        tracing::error!(queue = %setup.key, "{e}");
        Reply::new(451, "4.7.0", format!("cannot DKIM-sign the message: {e}"))
    })
}

/// `verp-default`: one transaction per recipient, each from its own VERP return path
/// (delivery/verp.rs). The replies come back in the message's recipient order. A connection
/// that can no longer carry a transaction (after a 421) defers the recipients not yet tried.
async fn send_verp(conn: &mut Connection, message: &OutgoingMessage) -> crate::delivery::TransactionOutcome {
    let mut replies = Vec::with_capacity(message.recipients.len());
    for rcpt in &message.recipients {
        if !conn.is_usable() {
            replies.push(Reply::new(451, "4.4.0", "the connection closed before this recipient's VERP transaction"));
            continue;
        }
        let single = OutgoingMessage {
            sender: crate::delivery::verp::sender_for(&message.sender, &rcpt.address),
            recipients: vec![rcpt.clone()],
            ..message.clone()
        };
        match conn.send(&single).await {
            Ok(outcome) => replies.push(
                outcome
                    .recipients
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Reply::new(451, "4.4.0", "no reply for this recipient")),
            ),
            // Earlier recipients' transactions stand (they may be delivered); this one gets the
            // failure's reply and the connection, no longer usable, defers the rest above.
            Err(e) => {
                tracing::info!(mx = %conn.mx_name(), "VERP transaction for <{}> failed: {e}", rcpt.address);
                replies.push(e.reply());
            }
        }
    }
    crate::delivery::TransactionOutcome { recipients: replies }
}

fn outgoing(job: &Job, body: Arc<Vec<u8>>) -> OutgoingMessage {
    let env = &job.envelope;
    OutgoingMessage {
        sender: env.sender.clone(),
        recipients: job
            .recipients
            .iter()
            .map(|&i| {
                let r = &env.recipients[i];
                OutgoingRecipient { address: r.address.clone(), notify: r.notify, orcpt: r.orcpt.clone() }
            })
            .collect(),
        env_id: env.env_id.clone(),
        ret: env.ret,
        eight_bit: env.eight_bit,
        smtputf8: env.smtputf8,
        body,
    }
}

/// Sends the manager the reply of each recipient of a job (`reply_of(position in the job)`).
async fn report(setup: &WorkerSetup, job: Job, reply_of: impl Fn(usize) -> Reply, remote: &Remote) {
    let replies: Vec<Reply> = (0..job.recipients.len()).map(reply_of).collect();
    let outcome = Event::Outcome { worker: setup.worker, key: setup.key.clone(), job, replies, remote: remote.clone() };
    if setup.events.send(outcome).await.is_err() {
        // Stopping: the recipients are still in the spool, as they were before the attempt, and
        // go out again (at least once) after the next start.
        tracing::info!(queue = %setup.key, "an outcome was not recorded: the queue manager has stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Envelope, MessageId, Origin, Recipient};

    #[test]
    fn a_421_splits_off_only_the_recipients_it_concerns() {
        let rcpts = ["a@x.test", "b@x.test", "c@x.test"].iter().map(|r| Recipient::new(*r)).collect();
        let envelope = Envelope {
            id: MessageId(1),
            origin: Origin { kind: "smtp".into(), helo: "h".into(), ..Origin::default() },
            ..Envelope::new("s@example.net".into(), rcpts)
        };
        let job = Job { envelope: Arc::new(envelope), recipients: vec![0, 1, 2], attempts: 2 };
        let bye = Reply::new(421, "4.3.2", "closing");
        let split = split_421(job.clone(), &[bye.clone(), Reply::new(550, "5.1.1", "no"), bye.clone()]);
        let (away, reply) = split.away.expect("421 recipients");
        assert_eq!((away.recipients, away.attempts, reply), (vec![0, 2], 2, bye));
        assert_eq!(split.stay.expect("the others").recipients, vec![1]);
        assert_eq!(split.stay_replies[0].code, 550);
        // Without a 421 nothing moves.
        let split = split_421(job, &vec![Reply::new(250, "2.0.0", "ok"); 3]);
        assert!(split.away.is_none());
        assert_eq!(split.stay.unwrap().recipients, vec![0, 1, 2]);
    }
}
