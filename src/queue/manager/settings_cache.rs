//! The manager's cache of effective queue settings for the current configuration generation.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, QueueSettings};

/// Effective settings by (domain, VMTA) for one configuration generation: a message's recipients
/// mostly share a few domains, and resolving layers and policy per recipient would repeat the
/// same work for each. Emptied on reload, and when it reaches `SETTINGS_CACHE_CAP`.
#[derive(Default)]
pub(super) struct SettingsCache {
    /// VMTA → domain → settings: nested so a hit is looked up by `&str`, without building a key.
    map: HashMap<String, HashMap<String, Option<Arc<QueueSettings>>>>,
    entries: usize,
    /// Resolutions made (cache misses), for tests.
    pub(super) resolved: u64,
}

/// Entries `SettingsCache` holds before it starts over: mail to many distinct domains must not
/// grow the manager's memory for the life of a generation.
const SETTINGS_CACHE_CAP: usize = 65_536;

impl SettingsCache {
    pub(super) fn get(&mut self, config: &Config, domain: &str, vmta: &str) -> Option<Arc<QueueSettings>> {
        if let Some(cached) = self.map.get(vmta).and_then(|d| d.get(domain)) {
            return cached.clone();
        }
        let lookup = (vmta != crate::config::DEFAULT_VMTA).then_some(vmta);
        let resolved = config.queue_settings(domain, lookup).ok().map(Arc::new);
        self.resolved += 1;
        if self.entries >= SETTINGS_CACHE_CAP {
            self.clear();
        }
        self.map.entry(vmta.to_string()).or_default().insert(domain.to_string(), resolved.clone());
        self.entries += 1;
        resolved
    }

    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.entries = 0;
    }
}
