//! The running daemon: opens the spool, starts listeners and the pickup directory on a
//! configuration generation, swaps generations on reload, and shuts down in order.
//!
//! Owns start-up order (spool before listeners, so nothing is accepted that cannot be stored)
//! and what may change on reload (everything per session; listeners and spools need a restart).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::ingress::context::Context;
use crate::ingress::{MessageSink, StoreError, StoreFuture, listener};
use crate::message::Envelope;
use crate::outcome::acct::Accounting;
use crate::spool::{Spool, SpoolDir, SpoolError, SpoolOptions};

/// The spool as the ingress sees it.
struct SpoolSink(Spool);

impl MessageSink for SpoolSink {
    fn store(&self, envelope: Envelope, body: Vec<u8>) -> StoreFuture<'_> {
        Box::pin(async move {
            self.0.store(envelope, body).await.map_err(|e| match e {
                SpoolError::Full { .. } => StoreError::Full(e.to_string()),
                other => StoreError::Failed(other.to_string()),
            })
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
                min_free_space: b.settings.size(Dir::MinFreeSpace).unwrap_or(0),
                priority: b.settings.uint(Dir::SpoolPriority).unwrap_or(1) as u32,
                deliver_only: b.settings.flag(Dir::DeliverOnly),
            })
        })
        .collect();
    let legacy_floor = config.global.uint(Dir::SpoolMinFreeSpace).unwrap_or(0) << 20;
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
    SpoolOptions::new(dirs)
}

pub struct Daemon {
    spool: Spool,
    contexts: Arc<ArcSwap<Context>>,
    tasks: Vec<JoinHandle<()>>,
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

fn build_context(config: Arc<Config>, spool: &Spool) -> Result<Context, String> {
    let accounting = Accounting::open(&config)?;
    let tls = listener::global_tls(&config)?;
    Context::new(config, Arc::new(SpoolSink(spool.clone())), accounting, tls).map_err(|errors| errors.join("\n"))
}

impl Daemon {
    /// Opens the spool (recovering what it holds), then binds and starts every listener.
    pub async fn start(config: Config) -> Result<Daemon, String> {
        let config = Arc::new(config);
        let options = spool_options(&config);
        let (spool, recovery) = tokio::task::spawn_blocking(move || Spool::open(options))
            .await
            .map_err(|e| format!("spool recovery panicked: {e}"))?
            .map_err(|e| format!("cannot open the spool: {e}"))?;
        println!(
            "spool recovered {} messages ({} recipients) in {:.2}s{}",
            recovery.messages,
            recovery.recipients,
            recovery.elapsed.as_secs_f64(),
            if recovery.quarantined > 0 {
                format!("; {} corrupt records quarantined", recovery.quarantined)
            } else {
                String::new()
            }
        );
        if let Some((file, bytes)) = &recovery.torn_tail_truncated {
            println!("spool: dropped a torn record of {bytes} bytes at the end of {}", file.display());
        }
        let ctx = build_context(Arc::clone(&config), &spool)?;
        let bound = listener::bind(&config, &ctx.tls).await?;
        let contexts = Arc::new(ArcSwap::from_pointee(ctx));
        let max_in = config.global.uint(Dir::TotalMaxSmtpIn).unwrap_or(100) as usize;
        let slots = Arc::new(Semaphore::new(max_in.max(1)));
        let mut tasks = Vec::new();
        for b in bound {
            let addr = b.listener.local_addr().map_err(|e| format!("listener {}: {e}", b.spec.addr))?;
            println!(
                "smtp listener {addr}{}",
                b.spec.source.as_ref().map(|s| format!(" (source={s})")).unwrap_or_default()
            );
            tasks.push(tokio::spawn(listener::accept_loop(b, Arc::clone(&contexts), Arc::clone(&slots))));
        }
        if let Some((dir, bad)) = pickup_dirs(&config) {
            for d in [&dir, &bad] {
                std::fs::create_dir_all(d).map_err(|e| format!("pickup: cannot create {}: {e}", d.display()))?;
            }
            println!("pickup directory {}", dir.display());
            tasks.push(tokio::spawn(crate::ingress::pickup::run(Arc::clone(&contexts), dir, bad)));
        }
        Ok(Daemon { spool, contexts, tasks })
    }

    /// Applies a new configuration to new sessions. Listener and spool changes need a restart.
    pub fn reload(&self, config: Config) -> Result<(), String> {
        let ctx = build_context(Arc::new(config), &self.spool)?;
        self.contexts.store(Arc::new(ctx));
        Ok(())
    }

    /// Stops accepting, then flushes the spool.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.spool.close().await;
    }
}
