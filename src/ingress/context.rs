//! What every session of one configuration generation shares: the config, host names, users,
//! suppression lists, pattern lists, TLS settings, the sink, accounting, and the AUTH failure
//! counters.
//!
//! Built once per generation (start, reload); sessions hold an `Arc` to the generation they
//! started with.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::resolve::QueueSettings;
use crate::config::value::Value;
use crate::config::values::Rate;
use crate::config::{Config, Dir, system_host_name};
use crate::hygiene::processor::Processors;
use crate::hygiene::store::SuppressionStore;
use crate::outcome::acct::Accounting;

use super::MessageSink;
use super::aliases::Aliases;
use super::patterns::PatternLists;
use super::suppression::Suppressions;
use super::users::Users;

pub struct Context {
    pub config: Arc<Config>,
    /// The first `host-name` (greeting, Received), then the others (loop detection).
    pub host_names: Vec<String>,
    pub users: Users,
    /// `alias` lines: recipients rewritten at RCPT.
    pub aliases: Aliases,
    pub suppressions: Suppressions,
    /// `<pattern-list>` blocks, for sources with a `pattern-list`.
    pub pattern_lists: PatternLists,
    /// STARTTLS for listeners without a certificate of their own.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub sink: Arc<dyn MessageSink>,
    pub accounting: Accounting,
    pub auth_failures: AuthFailures,
    /// The global suppression list (shared by every generation).
    pub global_suppression: Arc<SuppressionStore>,
    /// `<feedback-loop-processor>` and `<bounce-processor>`.
    pub processors: Processors,
    /// `include-headers-from`, read for this generation.
    pub included_headers: super::added::IncludedHeaders,
    /// Whether the node takes new mail (closed by `ember drain`); the daemon gives every
    /// generation the same one.
    pub intake: Arc<super::intake::Intake>,
    queue_settings: Mutex<HashMap<String, Arc<QueueSettings>>>,
}

/// Bound on cached per-domain settings; the cache is emptied when it grows past this (the
/// domains of one config generation are usually far fewer).
const QUEUE_CACHE_LIMIT: usize = 100_000;

impl Context {
    pub fn new(
        config: Arc<Config>,
        sink: Arc<dyn MessageSink>,
        accounting: Accounting,
        tls: Option<Arc<rustls::ServerConfig>>,
        global_suppression: Arc<SuppressionStore>,
        state_dir: &std::path::Path,
    ) -> Result<Context, Vec<String>> {
        let mut host_names: Vec<String> = config
            .global
            .all(Dir::HostName)
            .iter()
            .filter_map(|e| match &e.value {
                Value::Text(h) => Some(h.clone()),
                _ => None,
            })
            .collect();
        if host_names.is_empty() {
            host_names.push(system_host_name());
        }
        let suppressions = Suppressions::from_config(&config)?;
        let aliases = Aliases::from_config(&config, &host_names)?;
        let processors =
            Processors::from_config(&config, Arc::clone(&global_suppression), accounting.clone(), state_dir)?;
        let pattern_lists = PatternLists::from_config(&config);
        let included_headers = super::added::IncludedHeaders::from_config(&config)?;
        for warning in pattern_lists.warnings() {
            tracing::warn!("{warning}");
        }
        Ok(Context {
            users: Users::from_config(&config),
            aliases,
            config,
            host_names,
            suppressions,
            pattern_lists,
            tls,
            sink,
            accounting,
            auth_failures: AuthFailures::default(),
            global_suppression,
            processors,
            included_headers,
            intake: Arc::default(),
            queue_settings: Mutex::new(HashMap::new()),
        })
    }

    pub fn host_name(&self) -> &str {
        &self.host_names[0]
    }

    /// Effective settings of the `{default}` queue for a recipient domain, cached per generation.
    pub fn domain_settings(&self, domain: &str) -> Option<Arc<QueueSettings>> {
        let mut cache = self.queue_settings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = cache.get(domain) {
            return Some(Arc::clone(q));
        }
        let q = Arc::new(self.config.queue_settings(domain, None).ok()?);
        if cache.len() >= QUEUE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(domain.to_string(), Arc::clone(&q));
        Some(q)
    }
}

/// Failed AUTH attempts per client IP, for `smtp-max-auth-failure-rate`.
#[derive(Default)]
pub struct AuthFailures {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AuthFailures {
    fn window(rate: Rate) -> Duration {
        Duration::from_secs(rate.period)
    }

    /// Records a failure; true when the IP has now exceeded the rate and is locked out.
    pub fn record(&self, ip: IpAddr, rate: Option<Rate>) -> bool {
        let Some(rate) = rate else { return false };
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let q = map.entry(ip).or_default();
        q.push_back(now);
        while q.front().is_some_and(|t| now.duration_since(*t) > Self::window(rate)) {
            q.pop_front();
        }
        q.len() as u64 >= rate.count
    }

    /// Whether the IP is locked out right now.
    pub fn locked(&self, ip: IpAddr, rate: Option<Rate>) -> bool {
        let Some(rate) = rate else { return false };
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let Some(q) = map.get_mut(&ip) else { return false };
        while q.front().is_some_and(|t| now.duration_since(*t) > Self::window(rate)) {
            q.pop_front();
        }
        q.len() as u64 >= rate.count
    }
}
