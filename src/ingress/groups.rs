//! `<source-group>`: inbound connections counted per group of sources. A `<source>` joins a
//! group with `source-group NAME`; the group's `max-smtp-in` caps the connections its members
//! hold together, and its `reserved-smtp-in` keeps that many of the `total-max-smtp-in` slots
//! for it alone (other clients may only take slots no group has reserved).
//!
//! A connection's group is decided when it arrives, from its address and the listener's
//! `source=` (AUTH comes later and does not move a connection between groups). The counts
//! outlive a reload (connections of the old generation still hold their slots); the limits are
//! read from the configuration current at each arrival.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, Dir, policy};

/// Connections held per group.
#[derive(Debug, Default)]
pub struct SourceGroups {
    used: Mutex<HashMap<String, u64>>,
}

/// What a connection that arrives is told.
#[derive(Debug)]
pub enum Admission {
    Admitted(Slot),
    /// The group's `max-smtp-in` is reached.
    GroupFull {
        group: String,
        max: u64,
    },
    /// The free slots are all reserved for other groups.
    Reserved,
    /// `total-max-smtp-in` is reached.
    TotalFull,
}

/// A connection's hold on a global slot and on its group's count; both are given back on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    group: Option<(Arc<SourceGroups>, String)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((groups, name)) = &self.group {
            let mut used = groups.used.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = used.get_mut(name) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// `max-smtp-in` and `reserved-smtp-in` of every `<source-group>`.
fn limits(config: &Config) -> HashMap<&str, (Option<u64>, u64)> {
    config
        .blocks_of("source-group")
        .filter_map(|b| {
            let name = b.arg.as_deref()?;
            Some((name, (b.settings.uint(Dir::MaxSmtpIn), policy::uint(&b.settings, Dir::ReservedSmtpIn))))
        })
        .collect()
}

/// The group a connection from these settings' source belongs to.
pub fn group_of(config: &Config, ip: std::net::IpAddr, listener_source: Option<&str>) -> Option<String> {
    let names: Vec<&str> = listener_source.into_iter().collect();
    config.source_settings(ip, &names).text(Dir::SourceGroupRef).map(str::to_string)
}

impl SourceGroups {
    /// Decides whether a connection of `group` may start now, taking its slot if so.
    pub fn admit(self: &Arc<Self>, config: &Config, group: Option<&str>, slots: &Arc<Semaphore>) -> Admission {
        let limits = limits(config);
        // One decision at a time, so two arrivals cannot both take the last unreserved slot.
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let count = |name: &str| used.get(name).copied().unwrap_or(0);
        if let Some(g) = group
            && let Some((Some(max), _)) = limits.get(g)
            && count(g) >= *max
        {
            return Admission::GroupFull { group: g.to_string(), max: *max };
        }
        // Slots other groups have reserved and not yet used; a group's own reserve is its own.
        let held_for_others: u64 = limits
            .iter()
            .filter(|(name, _)| Some(**name) != group)
            .map(|(name, (_, reserved))| reserved.saturating_sub(count(name)))
            .sum();
        let free = slots.available_permits() as u64;
        if free == 0 {
            return Admission::TotalFull;
        }
        if free <= held_for_others {
            return Admission::Reserved;
        }
        let Ok(permit) = Arc::clone(slots).try_acquire_owned() else { return Admission::TotalFull };
        let group = group.map(|g| {
            *used.entry(g.to_string()).or_insert(0) += 1;
            (Arc::clone(self), g.to_string())
        });
        Admission::Admitted(Slot { _permit: permit, group })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn group_caps_and_reserved_slots() {
        let text = "<source-group vip>\n reserved-smtp-in 1\n</source-group>\n<source-group small>\n max-smtp-in 1\n</source-group>\n<source 127.0.0.2>\n source-group vip\n</source>\n<source 127.0.0.3>\n source-group small\n</source>\n";
        let loaded = load_str("g.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let config = loaded.config;
        let group = |ip: &str| group_of(&config, ip.parse().unwrap(), None);
        assert_eq!(group("127.0.0.2").as_deref(), Some("vip"));
        assert_eq!(group("127.0.0.1"), None);
        let groups = Arc::new(SourceGroups::default());
        let slots = Arc::new(Semaphore::new(3));
        let admit = |g: Option<&str>| groups.admit(&config, g, &slots);
        let small = admit(Some("small"));
        assert!(matches!(small, Admission::Admitted(_)));
        assert!(matches!(admit(Some("small")), Admission::GroupFull { max: 1, .. }));
        let other = admit(None);
        assert!(matches!(other, Admission::Admitted(_)));
        // One slot left, reserved for vip.
        assert!(matches!(admit(None), Admission::Reserved));
        assert!(matches!(admit(Some("small")), Admission::GroupFull { .. }));
        let vip = admit(Some("vip"));
        assert!(matches!(vip, Admission::Admitted(_)));
        assert!(matches!(admit(Some("vip")), Admission::TotalFull));
        // Slots and group counts come back when connections end.
        drop(small);
        assert!(matches!(admit(Some("small")), Admission::Admitted(_)));
        drop(vip);
        let again = admit(None);
        assert!(matches!(again, Admission::Admitted(_)));
        assert!(matches!(admit(None), Admission::Reserved), "vip's reserve is held for it again");
        drop((other, again));
    }
}
