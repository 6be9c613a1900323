//! The running daemon: opens the spool, starts listeners, the blackhole SMTP sink and the pickup
//! directory on a configuration generation, swaps generations on reload, and shuts down in order.
//!
//! Owns start-up order (spool before listeners, so nothing is accepted that cannot be stored)
//! and what may change on reload (everything per session; listeners and spools need a restart).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::config::value::Value;
use crate::config::{Config, Dir, policy};
use crate::delivery::mx::MxResolver;
use crate::delivery::mx::ResolverError;
use crate::dkim::KeyError;
use crate::hygiene::store::SuppressionStore;
use crate::ingress::context::Context;
use crate::ingress::{MessageSink, StoreError, StoreFuture, listener};
use crate::message::Envelope;
use crate::mgmt::access::Access;
use crate::mgmt::api::{ApiState, Control};
use crate::outcome::acct::Accounting;
use crate::outcome::acct::AcctError;
use crate::queue::QueueHandle;
use crate::queue::manager::Manager;
use crate::queue::report::Reporter;
use crate::spool::{Spool, SpoolDir, SpoolOptions};
use crate::telemetry::Telemetry;

/// The spool as the ingress sees it: a stored message goes straight to its queues.
struct SpoolSink {
    spool: Spool,
    queues: QueueHandle,
    telemetry: Arc<Telemetry>,
    /// `spool-max-recipients`: `None` for `auto` (only disk space limits the spool).
    max_recipients: Option<u64>,
}

impl MessageSink for SpoolSink {
    fn store(&self, envelope: Envelope, body: Vec<u8>) -> StoreFuture<'_> {
        Box::pin(async move {
            // Checked before storing, so a full queue refuses instead of growing; sessions
            // storing at the same moment may each pass, overshooting by at most one message each.
            if let Some(cap) = self.max_recipients {
                let queued = self.spool.queued_recipients();
                if queued.saturating_add(envelope.recipients.len() as u64) > cap {
                    return Err(StoreError::Full(format!(
                        "spool-max-recipients {cap} reached ({queued} recipients queued, this message has {})",
                        envelope.recipients.len()
                    )));
                }
            }
            let mut queued = envelope.clone();
            let bytes = body.len();
            let id = self.spool.store(envelope, body).await.map_err(|e| {
                if e.is_out_of_space() { StoreError::Full(e.to_string()) } else { StoreError::Failed(e.to_string()) }
            })?;
            queued.id = id;
            let client = queued.origin.client_ip.map_or_else(|| queued.origin.kind.clone(), |ip| ip.to_string());
            crate::events::receptions(&queued);
            self.telemetry.received(&client, queued.recipients.len(), bytes, queued.job_id.as_deref());
            // The message is on disk: if the manager has stopped (shutdown), it is queued from
            // the spool at the next start, so the client still gets its 250.
            if self.queues.submit(queued).await.is_err() {
                tracing::info!("message {id} stays in the spool for the next start: the queue manager has stopped");
            }
            Ok(id)
        })
    }
}

/// The spool directories a configuration names, with their options; `./ember-data/spool`
/// (relative to the config) when none.
pub fn spool_options(config: &Config) -> SpoolOptions {
    let mut dirs: Vec<SpoolDir> = config
        .blocks_of("spool")
        .filter_map(|b| {
            let path = config.path(Path::new(b.arg.as_deref()?));
            Some(SpoolDir {
                path,
                // The default 0 reads as unlimited (`None`), which for a floor means none.
                min_free_space: policy::size(&b.settings, Dir::MinFreeSpace).unwrap_or(0),
                // The table bounds the priority to 1..=100.
                priority: u32::try_from(policy::uint(&b.settings, Dir::SpoolPriority)).unwrap_or(u32::MAX),
                deliver_only: b.settings.flag(Dir::DeliverOnly),
            })
        })
        .collect();
    let legacy_floor = config.policy.spool_min_free_space;
    for e in config.global.all(Dir::SpoolDir) {
        if let Value::Path(p) = &e.value {
            dirs.push(SpoolDir {
                path: config.path(p),
                min_free_space: legacy_floor,
                priority: 1,
                deliver_only: false,
            });
        }
    }
    if dirs.is_empty() {
        dirs.push(SpoolDir {
            path: config.path(Path::new("ember-data/spool")),
            min_free_space: legacy_floor,
            priority: 1,
            deliver_only: false,
        });
    }
    SpoolOptions { delete_corrupted: config.global.flag(Dir::SpoolDeleteCorrupted), ..SpoolOptions::new(dirs) }
}

pub struct Daemon {
    spool: Spool,
    /// The event log, when one runs, and the sinks it was started with (a restart applies
    /// changes to them).
    events: Option<crate::events::EventLog>,
    event_sinks: Vec<crate::config::event_sinks::EventSinkSpec>,
    contexts: Arc<ArcSwap<Context>>,
    queues: QueueHandle,
    access: Arc<arc_swap::ArcSwap<Access>>,
    telemetry: Arc<Telemetry>,
    /// The management API's server, stopped last.
    mgmt: Option<JoinHandle<()>>,
    dkim: crate::dkim::Keys,
    suppression: Arc<SuppressionStore>,
    /// Listeners and the pickup directory: stopped first at shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// Inbound session slots: all free again means no session is open.
    slots: Arc<Semaphore>,
    max_in: usize,
    /// Requests from the management API, for the main loop (`ember run`).
    pub control: Option<mpsc::UnboundedReceiver<Control>>,
    /// MTA-STS policies and TLS-RPT counts (saved at shutdown).
    tls_policies: Arc<crate::delivery::tls_policy::TlsPolicies>,
}

/// How long a shutdown waits for inbound sessions to end and for deliveries in progress to
/// finish before the spool is closed anyway (what was not acknowledged or not recorded is
/// simply tried again: the spool keeps it).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the management API listens: `http-mgmt-port PORT` (all addresses) or `ADDR:PORT`;
/// `0` disables it.
pub fn mgmt_addr(config: &Config) -> Option<std::net::SocketAddr> {
    match config.global.effective(Dir::HttpMgmtPort) {
        Some(Value::Uint(0)) | None => None,
        Some(Value::Uint(port)) => Some(std::net::SocketAddr::from(([0, 0, 0, 0], *port as u16))),
        Some(Value::Listen(l)) => Some(std::net::SocketAddr::new(l.cidr.addr(), l.port)),
        _ => None,
    }
}

fn pickup_dirs(config: &Config) -> Option<(PathBuf, PathBuf)> {
    match config.global.get(Dir::Pickup).map(|e| &e.value) {
        Some(Value::Words(w)) => {
            let dir = config.path(Path::new(&w[0]));
            let bad = w.get(1).map_or_else(|| dir.join("bad"), |b| config.path(Path::new(b)));
            Some((dir, bad))
        }
        _ => None,
    }
}

/// The per-generation state: the ingress context and the reporter the queues use (both share
/// one set of accounting writers).
fn build_context(
    config: Arc<Config>,
    spool: &Spool,
    queues: &QueueHandle,
    telemetry: &Arc<Telemetry>,
    suppression: &Arc<SuppressionStore>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Context, Reporter), StartError> {
    let accounting = Accounting::open(&config)?;
    let max_recipients = match config.global.effective(Dir::SpoolMaxRecipients) {
        Some(Value::Uint(n)) => Some(*n),
        _ => None,
    };
    let sink = Arc::new(SpoolSink {
        spool: spool.clone(),
        queues: queues.clone(),
        telemetry: Arc::clone(telemetry),
        max_recipients,
    });
    let state_dir = state_dir(&config);
    let ctx = Context::new(Arc::clone(&config), sink, accounting.clone(), tls, Arc::clone(suppression), &state_dir)
        .map_err(StartError::Context)?;
    let reporter =
        Reporter::new(&config, accounting, ctx.host_name().to_string()).with_telemetry(Arc::clone(telemetry));
    Ok((ctx, reporter))
}

/// The DKIM keys a configuration names; any key that cannot be used refuses the whole
/// configuration (at start and on reload), so no message goes out unsigned by accident.
fn load_keys(config: &Config) -> Result<crate::dkim::KeyStore, StartError> {
    crate::dkim::KeyStore::load(config).map_err(StartError::Keys)
}

/// Why the daemon did not start, or a reload was refused. The text is printed after `ember: `
/// (one line per problem where there are several).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Every `domain-key` that cannot be used, one line each.
    #[error("{}", join_lines(.0))]
    Keys(Vec<KeyError>),
    /// What the session context refused (host names, TLS, pickup and other per-generation
    /// settings), one line each.
    #[error("{}", .0.join("\n"))]
    Context(Vec<String>),
    /// A listener or its TLS setup, as the listener code describes it.
    #[error(transparent)]
    Listeners(#[from] crate::ingress::listener::BindError),
    #[error(transparent)]
    ServerTls(#[from] crate::ingress::tls::TlsConfigError),
    #[error(transparent)]
    HttpTls(#[from] crate::mgmt::tls::HttpTlsError),
    /// `what` names the directive that asked for the port.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("listener {addr}: {source}")]
    ListenerAddr {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    LocalAddr(#[source] std::io::Error),
    #[error("pickup: cannot create {}: {source}", dir.display())]
    Pickup {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("name-server {0:?} is not an IP address or IP:PORT")]
    NameServer(String),
    #[error("spool recovery panicked: {0}")]
    Recovery(#[source] tokio::task::JoinError),
    #[error("cannot open the spool: {0}")]
    Spool(#[source] crate::spool::SpoolError),
    #[error(transparent)]
    Privileges(#[from] crate::privileges::DropError),
    #[error(transparent)]
    Accounting(#[from] AcctError),
    #[error(transparent)]
    Resolver(#[from] ResolverError),
    #[error(transparent)]
    Suppression(#[from] crate::hygiene::store::StoreError),
    #[error(transparent)]
    Queues(#[from] crate::queue::manager::Stopped),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    EventLog(crate::events::LogError),
    #[error("{0}")]
    EventSink(String),
}

fn join_lines(errors: &[KeyError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Opens the event log (scanning it, cutting off a torn end) and starts its sinks, when the
/// configuration asks for a log; makes it the process's log.
async fn open_events(
    config: &Config,
) -> Result<(Option<crate::events::EventLog>, Vec<crate::config::event_sinks::EventSinkSpec>), StartError> {
    use crate::events::{EventLog, LogOptions};
    let Some(spec) = crate::config::event_sinks::event_log(config) else { return Ok((None, Vec::new())) };
    let dir = spec.dir.clone().unwrap_or_else(|| state_dir(config).join("events"));
    let options = LogOptions::new(dir.clone(), spec.retain);
    let started = std::time::Instant::now();
    let (log, recovery) = tokio::task::spawn_blocking(move || EventLog::open(options))
        .await
        .map_err(StartError::Recovery)?
        .map_err(StartError::EventLog)?;
    println!(
        "event log {}: {} events in {} segments in {:.2}s",
        dir.display(),
        recovery.events,
        recovery.segments,
        started.elapsed().as_secs_f64()
    );
    if let Some((file, bytes)) = &recovery.truncated {
        println!(
            "event log: cut off a damaged end of {bytes} bytes from {} (a write a crash interrupted)",
            file.display()
        );
        tracing::warn!("event log: cut off a damaged end of {bytes} bytes from {}", file.display());
    }
    for (file, bytes) in &recovery.damaged {
        println!("event log: {} is damaged: {bytes} bytes skipped (left in place)", file.display());
        tracing::error!("event log: {} is damaged: {bytes} bytes skipped", file.display());
    }
    let head = log.head();
    let mut stats = Vec::new();
    for sink in &spec.sinks {
        let s = crate::events::sink::start(&log, sink, head)
            .map_err(|e| StartError::EventSink(format!("<event-sink {}>: {e}", sink.name)))?;
        println!(
            "event sink {} ({}) from event {}",
            sink.name,
            sink.target.kind(),
            s.cursor.load(std::sync::atomic::Ordering::Relaxed) + 1
        );
        stats.push(s);
    }
    crate::events::install(&log, stats);
    Ok((Some(log), spec.sinks))
}

/// Where small state that must outlive the process lives: the first spool directory.
pub fn state_dir(config: &Config) -> PathBuf {
    spool_options(config).dirs.first().map(|d| d.path.clone()).unwrap_or_else(|| config.path(Path::new(".")))
}

/// The journal of the global suppression list: `global-suppression-file`, else
/// `suppressed.journal` in the first spool directory.
pub fn suppression_path(config: &Config) -> PathBuf {
    config
        .global
        .path(Dir::GlobalSuppressionFile)
        .map(|p| config.path(p))
        .unwrap_or_else(|| state_dir(config).join("suppressed.journal"))
}

/// Opens the global suppression list, reporting what it loaded.
fn open_suppression(config: &Config) -> Result<Arc<SuppressionStore>, StartError> {
    let path = suppression_path(config);
    let started = std::time::Instant::now();
    let (store, report) = SuppressionStore::open(&path)?;
    for bad in &report.bad_lines {
        tracing::warn!("global suppression list: skipped {bad}");
    }
    println!(
        "global suppression list {}: {} entries in {:.2}s",
        path.display(),
        report.entries,
        started.elapsed().as_secs_f64()
    );
    Ok(Arc::new(store))
}

/// MTA-STS policies, DANE and TLS-RPT counts, kept in the first spool directory; the TXT,
/// address and TLSA lookups ask the same name servers as MX resolution.
fn tls_policies(
    config: &Config,
    state_dir: Option<&std::path::Path>,
) -> Result<Arc<crate::delivery::tls_policy::TlsPolicies>, StartError> {
    let options = crate::delivery::mx::MxOptions::default();
    let servers = name_servers(config)?;
    let dns = crate::delivery::mx::HickoryLookup::new(&servers, options.timeout, options.attempts)?;
    let secure_dns =
        crate::delivery::tls_policy::dane::dns::SecureDns::new(&servers, options.timeout, options.attempts)?;
    Ok(Arc::new(crate::delivery::tls_policy::TlsPolicies::new(
        Arc::new(dns),
        Some(Arc::new(secure_dns)),
        state_dir,
        crate::delivery::tls_policy::fetch::FetchLimits::default(),
    )))
}

/// Every hour: cached MTA-STS policies are looked at again (refreshed before they expire) and
/// the TLS-RPT counts saved; the counts are also saved every minute.
async fn refresh_tls_policies(policies: Arc<crate::delivery::tls_policy::TlsPolicies>) {
    let mut minutes = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if minutes.is_multiple_of(60) {
            policies.refresh().await;
        } else {
            policies.save_reports().await;
        }
        minutes += 1;
    }
}

fn name_servers(config: &Config) -> Result<Vec<std::net::SocketAddr>, StartError> {
    config
        .global
        .all(Dir::NameServer)
        .iter()
        .filter_map(|e| match &e.value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        })
        .map(|t| {
            t.parse::<std::net::SocketAddr>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53)))
                .map_err(|_| StartError::NameServer(t))
        })
        .collect()
}

/// Applies other nodes' changes: queue modes through the queue manager, suppression entries to
/// the local store (its journal is synced, so on a blocking thread).
struct SharedChanges {
    queues: QueueHandle,
    suppression: Arc<SuppressionStore>,
}

impl crate::cluster::state::Apply for SharedChanges {
    fn apply<'a>(
        &'a self,
        from: &'a str,
        change: crate::cluster::state::Change,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        use crate::cluster::state::Change;
        Box::pin(async move {
            let (add, texts) = match change {
                Change::Suppress { entries } => (true, entries),
                Change::Unsuppress { entries } => (false, entries),
                queue_change => return self.queues.apply_shared(from, queue_change).await,
            };
            let entries: Vec<crate::hygiene::store::Entry> =
                texts.iter().filter_map(|t| crate::hygiene::store::Entry::parse(t).ok()).collect();
            let store = Arc::clone(&self.suppression);
            match tokio::task::spawn_blocking(move || store.apply_shared(add, &entries)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("cluster: suppression change from node {from} not applied: {e}"),
                Err(e) => tracing::error!("cluster: suppression change from node {from} not applied: {e}"),
            }
        })
    }
}

/// Cluster mode (`cluster-redis`): the handle, its heartbeat started. Redis need not answer yet:
/// until it does the node runs degraded, and says so.
fn start_cluster(
    config: &Config,
    bound: &[listener::Bound],
    mgmt: Option<&tokio::net::TcpListener>,
    spool: &Spool,
) -> Result<Option<crate::cluster::Cluster>, StartError> {
    let Some(url) = &config.policy.cluster_redis else { return Ok(None) };
    let about = crate::cluster::membership::About {
        name: config.policy.cluster_node_name.clone(),
        smtp: bound.first().and_then(|b| b.listener.local_addr().ok()).map(|a| a.to_string()).unwrap_or_default(),
        mgmt: mgmt.and_then(|l| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_default(),
        config_hash: crate::cluster::membership::config_hash(config),
    };
    let cluster = crate::cluster::Cluster::new(url, about)?;
    let counted = spool.clone();
    cluster.start(Arc::new(move || {
        let stats = counted.stats();
        crate::cluster::NodeTotals { messages: stats.live_messages as u64, recipients: stats.live_recipients }
    }));
    println!("cluster node {} on {url} (degraded until Redis answers)", cluster.node());
    Ok(Some(cluster))
}

impl Daemon {
    /// Opens the spool (recovering what it holds), then binds and starts every listener.
    pub async fn start(config: Config) -> Result<Daemon, StartError> {
        let config = Arc::new(config);
        let dkim = crate::dkim::Keys::new(load_keys(&config)?);
        // Everything that may need root comes first: keys and certificates (often readable by
        // root only) and the sockets (ports below 1024). Nothing is accepted before the spool
        // is open: the accept loops start last.
        let global_tls = listener::global_tls(&config)?;
        let bound = listener::bind(&config, &global_tls).await?;
        let mgmt_tls = crate::mgmt::tls::server_config(&config)?;
        let mgmt_listener = match mgmt_addr(&config) {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Listen {
                addr,
                what: "http-mgmt-port",
                source,
            })?),
            None => None,
        };
        let options = spool_options(&config);
        let spool_dir = options.dirs.first().map(|d| d.path.clone()).unwrap_or_default();
        if let Some((uid, gid)) = crate::privileges::drop_if_asked(&config, &spool_dir)? {
            println!("running as uid {uid} gid {gid} (run-as-root no; the owner of {})", spool_dir.display());
        }
        let (spool, recovery) = tokio::task::spawn_blocking(move || Spool::open(options))
            .await
            .map_err(StartError::Recovery)?
            .map_err(StartError::Spool)?;
        println!(
            "spool recovered {} messages ({} recipients) in {:.2}s{}",
            recovery.messages,
            recovery.recipients,
            recovery.elapsed.as_secs_f64(),
            if recovery.quarantined > 0 {
                let fate = if config.global.flag(Dir::SpoolDeleteCorrupted) { "deleted" } else { "quarantined" };
                format!("; {} corrupt records {fate}", recovery.quarantined)
            } else {
                String::new()
            }
        );
        if let Some((file, bytes)) = &recovery.torn_tail_truncated {
            println!("spool: dropped a torn record of {bytes} bytes at the end of {}", file.display());
        }
        let (events, event_sinks) = open_events(&config).await?;
        let resolver = MxResolver::new(&name_servers(&config)?)?;
        let state_dir = spool_options(&config).dirs.first().map(|d| d.path.clone());
        let tls_policies = tls_policies(&config, state_dir.as_deref())?;
        let cluster = start_cluster(&config, &bound, mgmt_listener.as_ref(), &spool)?;
        let queues =
            Manager::start_pending(Arc::clone(&config), spool.clone(), resolver.clone(), state_dir, dkim.clone())
                .with_cluster(cluster.clone())
                .with_tls_policies(Arc::clone(&tls_policies));
        let telemetry = Arc::new(Telemetry::default());
        let suppression = open_suppression(&config)?;
        let (ctx, reporter) =
            build_context(Arc::clone(&config), &spool, &queues.handle, &telemetry, &suppression, global_tls)?;
        let queues = queues.run(reporter);
        // Feedback-loop complaints read on the ingress side reach adaptive delivery.
        crate::events::feedback::install(queues.complaint_tap());
        if let Some(cluster) = &cluster {
            suppression.share_with(cluster.clone());
            let apply = Arc::new(SharedChanges { queues: queues.clone(), suppression: Arc::clone(&suppression) });
            cluster.share_state(apply, spool_options(&config).dirs.first().map(|d| d.path.join("cluster-cursor")));
        }
        // The spool's index is walked synchronously; the manager's inbox is bounded, so recovery
        // runs on a blocking thread that waits for room instead of loading every envelope at once.
        let (walked, handle) = (spool.clone(), queues.clone());
        let recovered = tokio::task::spawn_blocking(move || {
            let mut recovered = 0usize;
            walked.for_each_live(|envelope| {
                if handle.recover_blocking(envelope).is_ok() {
                    recovered += 1;
                }
            });
            recovered
        })
        .await
        .map_err(StartError::Recovery)?;
        if recovered > 0 {
            println!("queued {recovered} recovered messages for delivery");
        }
        let access = Arc::new(arc_swap::ArcSwap::from_pointee(Access::from_config(&config)));
        let contexts = Arc::new(ArcSwap::from_pointee(ctx));
        let max_in = config.policy.total_max_smtp_in;
        let slots = Arc::new(Semaphore::new(max_in.max(1)));
        let groups = Arc::new(crate::ingress::groups::SourceGroups::default());
        let mut tasks = Vec::new();
        // Reload requests: each waits for its answer, so there are never more than the API
        // requests open at once.
        let (control_tx, control) = mpsc::unbounded_channel();
        let mut mgmt = None;
        if let Some(l) = mgmt_listener {
            println!("management http {}", l.local_addr().map_err(StartError::LocalAddr)?);
            let state = Arc::new(ApiState {
                access: Arc::clone(&access),
                queues: queues.clone(),
                spool: spool.clone(),
                started: std::time::Instant::now(),
                telemetry: Arc::clone(&telemetry),
                resolver,
                contexts: Arc::clone(&contexts),
                smtp_in: Arc::clone(&slots),
                smtp_in_max: max_in.max(1),
                control: control_tx,
                cluster: cluster.clone(),
                drain: Arc::default(),
                tls_policies: Arc::clone(&tls_policies),
            });
            mgmt = Some(tokio::spawn(crate::mgmt::api::serve(l, state, mgmt_tls)));
        }
        for b in bound {
            let addr =
                b.listener.local_addr().map_err(|source| StartError::ListenerAddr { addr: b.spec.addr, source })?;
            println!(
                "smtp listener {addr}{}",
                b.spec.source.as_ref().map(|s| format!(" (source={s})")).unwrap_or_default()
            );
            tasks.push(tokio::spawn(listener::accept_loop(
                b,
                Arc::clone(&contexts),
                Arc::clone(&slots),
                Arc::clone(&groups),
            )));
        }
        tasks.push(tokio::spawn(refresh_tls_policies(Arc::clone(&tls_policies))));
        let current = Arc::clone(&contexts);
        tasks.push(tokio::spawn(crate::mgmt::tlsrpt::daily(
            Arc::clone(&tls_policies),
            spool.clone(),
            queues.clone(),
            move || Arc::clone(&current.load().config),
        )));
        if let Some(options) = crate::dummy_smtp::Options::from_config(&config) {
            let l = tokio::net::TcpListener::bind(options.addr).await.map_err(|source| StartError::Listen {
                addr: options.addr,
                what: "dummy-smtp-port",
                source,
            })?;
            println!("dummy smtp {}", l.local_addr().map_err(StartError::LocalAddr)?);
            tasks.push(tokio::spawn(crate::dummy_smtp::serve(l, options, Arc::clone(&slots), Arc::clone(&telemetry))));
        }
        if let Some((dir, bad)) = pickup_dirs(&config) {
            for d in [&dir, &bad] {
                std::fs::create_dir_all(d).map_err(|source| StartError::Pickup { dir: d.clone(), source })?;
            }
            println!("pickup directory {}", dir.display());
            tasks.push(tokio::spawn(crate::ingress::pickup::run(Arc::clone(&contexts), dir, bad)));
        }
        Ok(Daemon {
            spool,
            events,
            event_sinks,
            contexts,
            queues,
            access,
            dkim,
            suppression,
            telemetry,
            mgmt,
            tasks,
            slots,
            max_in: max_in.max(1),
            control: Some(control),
            tls_policies,
        })
    }

    /// Applies a new configuration to new sessions. Listener and spool changes need a restart.
    pub async fn reload(&self, config: Config) -> Result<(), StartError> {
        let config = Arc::new(config);
        let keys = load_keys(&config)?;
        let (mut ctx, reporter) = build_context(
            Arc::clone(&config),
            &self.spool,
            &self.queues,
            &self.telemetry,
            &self.suppression,
            listener::global_tls(&config)?,
        )?;
        let sinks = crate::config::event_sinks::event_log(&config).map(|l| l.sinks).unwrap_or_default();
        if sinks != self.event_sinks
            || crate::config::event_sinks::event_log(&config).is_some() != self.events.is_some()
        {
            tracing::warn!(
                "the event log and <event-sink> blocks changed: the change takes effect at the next restart"
            );
        }
        self.dkim.replace(keys);
        self.tls_policies.reloaded();
        // A drain outlives a reload: the new generation refuses mail too.
        ctx.intake = Arc::clone(&self.contexts.load().intake);
        self.contexts.store(Arc::new(ctx));
        self.access.store(Arc::new(Access::from_config(&config)));
        Ok(self.queues.reload(config, reporter).await?)
    }

    /// Live queue state.
    pub async fn queues(&self) -> Vec<crate::queue::QueueStatus> {
        self.queues.snapshot().await
    }

    /// Graceful drain: stop accepting (listeners, pickup), let open inbound sessions finish,
    /// let deliveries in progress finish their transactions without starting new ones, then
    /// flush the accounting files and close the spool. Everything still queued stays on disk.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.tls_policies.save_reports().await;
        let max_in = u32::try_from(self.max_in).unwrap_or(u32::MAX);
        let sessions = tokio::time::timeout(DRAIN_LIMIT, self.slots.acquire_many(max_in)).await;
        if sessions.is_err() {
            println!("inbound sessions still open after {}s: closing them", DRAIN_LIMIT.as_secs());
        }
        let drained =
            tokio::time::timeout(DRAIN_LIMIT, self.queues.operate(crate::queue::manager::Operation::Drain)).await;
        if drained.is_err() {
            println!(
                "deliveries still in progress after {}s: they are tried again at the next start",
                DRAIN_LIMIT.as_secs()
            );
        }
        let accounting = self.contexts.load().accounting.clone();
        let _ = tokio::task::spawn_blocking(move || accounting.flush()).await;
        if let Some(log) = self.events.clone() {
            let _ = tokio::task::spawn_blocking(move || log.flush()).await;
            crate::events::uninstall();
        }
        if let Some(m) = &self.mgmt {
            m.abort();
        }
        self.spool.close().await;
    }
}
