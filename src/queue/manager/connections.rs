//! Opening connections for a queue: idle connections take ready mail first, then new workers
//! start while the backlog, the queue's connection cap, the warm-up step, the virtual MTA's and
//! the total `max-smtp-out`, and `smtp-out-rampup-interval` allow.

use std::sync::Arc;

use super::{Manager, QueueKey};
use crate::config::Dir;
use crate::queue::supervisor;
use crate::queue::worker::WorkerSetup;

impl Manager {
    pub(super) fn start_workers(&mut self, key: &QueueKey) {
        // Idle connections take ready mail before any new one opens.
        self.feed_idle(key);
        let total_cap = self.config.policy.total_max_smtp_out;
        let vmta_cap = self
            .config
            .vmta(&key.vmta)
            .and_then(|v| vmta_connection_cap(&v.settings))
            .map_or(usize::MAX, |n| n as usize);
        loop {
            // Connections rolled-up domain queues still have open are the rollup's too.
            let lingering = self.lingering_connections(key);
            let Some(q) = self.queues.get(key) else { return };
            if q.retry_until.is_some() || q.ready.is_empty() || q.paused || self.draining {
                return;
            }
            // Connections grow with the backlog, never past the work waiting.
            // Until a connection to this queue's hosts has worked, open one at a time: a receiver
            // refusing every connection must not be hit by a storm of them.
            let cap = if q.proven { q.connection_cap() } else { 1 };
            let ramp_left = match &q.ramp {
                Some(plan) => self.ramps.remaining(&key.to_string(), plan, self.clock.now_secs()),
                None => u64::MAX,
            };
            let wanted = cap.min(q.ready.len()).min(usize::try_from(ramp_left).unwrap_or(usize::MAX));
            let vmta_used = self.vmta_connections.get(&key.vmta).copied().unwrap_or(0);
            let open = q.connections + lingering;
            if open >= wanted || self.total_connections >= total_cap || vmta_used >= vmta_cap {
                return;
            }
            // smtp-out-rampup-interval: each additional connection waits this long after the last.
            if q.connections > 0
                && let Some(last) = q.last_connect
                && self.clock.elapsed() - last < q.settings.policy.smtp_out_rampup_interval.as_secs_f64()
            {
                return;
            }
            let now = self.monotonic();
            let q = self.queues.get_mut(key).expect("present");
            let connect_rate = match q.backoff.as_mut() {
                Some(b) => b.connect_rate.as_mut(),
                None => q.connect_rate.as_mut(),
            };
            if let Some(g) = connect_rate
                && g.take(now, 1).is_err()
            {
                // max-connect-rate: the next wake tries again.
                return;
            }
            let q = self.queues.get(key).expect("present");
            let settings = Arc::clone(&q.settings);
            // The VMTA's next source host that is not disabled for this queue.
            let hosts = self.rotation.source_count(&self.config, &key.vmta).max(1);
            let mut source = None;
            for _ in 0..hosts {
                let candidate = self.rotation.source_host(&self.config, &key.vmta);
                let q = self.queues.get_mut(key).expect("present");
                // Not disabled for this queue, and under its source-ip-max-smtp-out and
                // source-ip-max-connect-rate (which count the connection when it may open).
                let backlog = !q.ready.is_empty();
                if q.source_allowed(candidate.ip)
                    && q.adaptive.as_mut().is_none_or(|a| a.controller(candidate.ip, now).may_open(now, backlog))
                    && candidate.ip.is_none_or(|ip| q.sources.open(&q.settings.settings, ip, now))
                {
                    source = Some(candidate);
                    break;
                }
            }
            let q = self.queues.get_mut(key).expect("present");
            let source = match source {
                Some(source) => {
                    if q.probing_disabled_sources() && source.ip.is_some_and(|ip| !q.disabled_sources.contains_key(&ip))
                    {
                        q.backoff = None;
                        q.record("normal", "a source IP is enabled again".into(), None);
                    }
                    source
                }
                // Every source IP of the queue is disabled: with backoff-upon-all-sources-disabled
                // the queue goes on from them in backoff; else it waits for one to come back.
                None if q.settings.policy.backoff_upon_all_sources_disabled => {
                    if !q.probing_disabled_sources() {
                        q.enter_backoff(crate::queue::state::ALL_SOURCES_DISABLED);
                    }
                    self.rotation.source_host(&self.config, &key.vmta)
                }
                None => return,
            };
            let ca = settings.settings.path(Dir::SmtpTlsCaFile).map(|p| self.config.path(p));
            let client_certificate = settings.settings.path(Dir::SmtpClientCertificate).map(|p| self.config.path(p));
            let tls_sessions = settings
                .policy
                .reuse_ssl_session
                .then(|| Arc::clone(&self.queues.get(key).expect("present").tls_sessions));
            let skip_mx = self.queues.get_mut(key).expect("present").skipped_mx_now();
            let rollup =
                self.rollups.check(&key.name, settings.policy.disable_mx_rollup, settings.policy.auto_mx_rollup);
            self.next_worker += 1;
            let q = self.queues.get(key).expect("present");
            let cluster = self.cluster.as_ref().map(|c| q.cluster_link(c, key, source.ip));
            let source_ip = source.ip;
            let setup = WorkerSetup {
                worker: self.next_worker,
                mx_domain: self.rollups.mx_domain(&key.name).to_string(),
                rollup,
                skip_mx,
                key: key.clone(),
                settings,
                source,
                resolver: self.resolver.clone(),
                spool: self.spool.clone(),
                events: self.events.clone(),
                tls_ca_file: ca,
                client_certificate,
                tls_sessions,
                dkim: self.dkim.clone(),
                config: Arc::clone(&self.config),
                dest_limits: Arc::clone(&self.dest_limits),
                cluster,
                tls_policies: self.tls_policies.clone(),
            };
            let q = self.queues.get_mut(key).expect("present");
            if let Some(a) = q.adaptive.as_mut() {
                a.opened(self.next_worker, source_ip, now);
            }
            q.connections += 1;
            q.last_connect = Some(self.clock.elapsed());
            self.total_connections += 1;
            *self.vmta_connections.entry(key.vmta.clone()).or_insert(0) += 1;
            supervisor::spawn(&self.run_worker, setup);
        }
    }
}

/// A `<virtual-mta>`'s own `max-smtp-out` caps the connections of all its queues together. The
/// table's default (20) is a per-queue figure: a virtual MTA that sets none is not capped at 20.
fn vmta_connection_cap(settings: &crate::config::settings::Settings) -> Option<u64> {
    match settings.get(Dir::MaxSmtpOut).map(|e| &e.value) {
        Some(crate::config::value::Value::Uint(n)) => Some(*n),
        _ => None,
    }
}
