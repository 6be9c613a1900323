//! The rate limiters a message passes on its way to a connection, beyond the queue's own
//! `max-msg-rate`: data volume (`max-data-volume-rate`, `backoff-max-data-volume-rate`), the
//! virtual MTA's and its pools' shared rates (`max-smtp-msg-rate`, `max-smtp-data-volume-rate`),
//! and the per-source-IP limits within a queue (`source-ip-max-msg-rate`,
//! `source-ip-max-connect-rate`, `source-ip-max-data-volume-rate`, `source-ip-max-smtp-out`).
//!
//! Every limiter a message meets is checked before any is charged, so a message held back by
//! one limit does not use up another's allowance.

use std::collections::HashMap;
use std::net::IpAddr;

use super::rate::Gcra;
use crate::config::settings::Settings;
use crate::config::value::Value;
use crate::config::values::{DataRate, Rate};
use crate::config::{Config, Dir};

/// What a limiter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Recipients,
    Bytes,
}

/// A byte rate as a GCRA over bytes.
pub fn data_gcra(rate: DataRate) -> Option<Gcra> {
    (rate.bytes.0 > 0).then(|| Gcra::new(Rate { count: rate.bytes.0, period: rate.period }, 1))
}

/// One limiter a message meets, named as `explain` shows it.
pub struct Limiter<'a> {
    pub gcra: &'a mut Gcra,
    pub unit: Unit,
    pub name: String,
}

impl<'a> Limiter<'a> {
    pub fn new(gcra: &'a mut Gcra, unit: Unit, name: impl Into<String>) -> Self {
        Limiter { gcra, unit, name: name.into() }
    }
}

/// Checks every limiter, then charges them all. `Err` is the longest wait among those that
/// refuse, in seconds, and that limiter's name.
pub fn take_all(limiters: &mut [Limiter<'_>], now: f64, recipients: u32, bytes: u64) -> Result<(), (f64, String)> {
    let refused = limiters
        .iter()
        .filter_map(|l| l.gcra.check(now).err().map(|w| (w, &l.name)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((wait, name)) = refused {
        return Err((wait, name.clone()));
    }
    for l in limiters.iter_mut() {
        let units = match l.unit {
            Unit::Recipients => recipients,
            Unit::Bytes => u32::try_from(bytes).unwrap_or(u32::MAX),
        };
        let _ = l.gcra.take(now, units);
    }
    Ok(())
}

/// Rates shared by every queue of a virtual MTA, and by every member of a pool. Rebuilt when a
/// reload changes their text.
#[derive(Default)]
pub struct SharedRates {
    /// Keyed by what they limit and the rate (`vmta v1 max-smtp-msg-rate 100/h`).
    rates: HashMap<String, (Gcra, Unit)>,
}

impl SharedRates {
    /// The shared limiters a message sent by `vmta` meets: its own, then each pool's it belongs to.
    pub fn for_vmta(&mut self, config: &Config, vmta: &str) -> Vec<Limiter<'_>> {
        let mut holders: Vec<(String, &Settings)> = Vec::new();
        if let Some(v) = config.vmta(vmta) {
            holders.push((format!("vmta {vmta}"), &v.settings));
        }
        for pool in config.pools.iter().filter(|p| p.members().any(|(m, _)| m == vmta)) {
            holders.push((format!("pool {}", pool.name), &pool.settings));
        }
        let mut wanted = Vec::new();
        for (holder, settings) in holders {
            if let Some(rate) = settings.rate(Dir::MaxSmtpMsgRate) {
                let name = format!("{holder} max-smtp-msg-rate {rate}");
                wanted.push(self.ensure(name, Gcra::new(rate, 1), Unit::Recipients));
            }
            if let Some(rate) = data_rate(settings, Dir::MaxSmtpDataVolumeRate)
                && let Some(g) = data_gcra(rate)
            {
                let name = format!("{holder} max-smtp-data-volume-rate {rate}");
                wanted.push(self.ensure(name, g, Unit::Bytes));
            }
        }
        self.rates
            .iter_mut()
            .filter(|(k, _)| wanted.contains(k))
            .map(|(name, (g, unit))| Limiter::new(g, *unit, name.clone()))
            .collect()
    }

    fn ensure(&mut self, key: String, fresh: Gcra, unit: Unit) -> String {
        // The key names the rate, so a reload that changes it makes a new key: drop the old
        // entry of the same holder and kind.
        let kind = key.rsplit_once(' ').map(|x| x.0).unwrap_or_default().to_string();
        self.rates.retain(|k, _| *k == key || k.rsplit_once(' ').map(|x| x.0) != Some(kind.as_str()));
        self.rates.entry(key.clone()).or_insert((fresh, unit));
        key
    }
}

/// `max-data-volume-rate` and friends.
pub fn data_rate(settings: &Settings, dir: Dir) -> Option<DataRate> {
    match settings.effective(dir) {
        Some(Value::DataRate(Some(r))) => Some(*r),
        _ => None,
    }
}

/// One local source IP's use of a queue.
#[derive(Debug, Default)]
pub struct SourceUse {
    pub connections: usize,
    msg_rate: Option<Gcra>,
    data_rate: Option<Gcra>,
    connect_rate: Option<Gcra>,
}

/// The per-source-IP limits of one queue: the most specific CIDR entry for an IP applies.
#[derive(Debug, Default)]
pub struct SourceLimits {
    by_ip: HashMap<IpAddr, SourceUse>,
}

/// The value of the most specific entry of a `CIDR VALUE` directive that contains `ip`.
fn most_specific(settings: &Settings, dir: Dir, ip: IpAddr) -> Option<&Value> {
    let prefix = |v: &Value| match v {
        Value::CidrRate(c, _) | Value::CidrDataRate(c, _) | Value::CidrUint(c, _) => Some(*c),
        _ => None,
    };
    settings
        .all(dir)
        .iter()
        .filter_map(|e| prefix(&e.value).filter(|c| c.contains(ip)).map(|c| (c.prefix(), &e.value)))
        .max_by_key(|(p, _)| *p)
        .map(|(_, v)| v)
}

impl SourceLimits {
    fn get(&mut self, settings: &Settings, ip: IpAddr) -> &mut SourceUse {
        self.by_ip.entry(ip).or_insert_with(|| {
            let rate = |dir| match most_specific(settings, dir, ip) {
                Some(Value::CidrRate(_, Some(r))) => Some(Gcra::new(*r, 1)),
                _ => None,
            };
            SourceUse {
                connections: 0,
                msg_rate: rate(Dir::SourceIpMaxMsgRate),
                connect_rate: rate(Dir::SourceIpMaxConnectRate),
                data_rate: match most_specific(settings, Dir::SourceIpMaxDataVolumeRate, ip) {
                    Some(Value::CidrDataRate(_, Some(r))) => data_gcra(*r),
                    _ => None,
                },
            }
        })
    }

    /// Forgets the limiters (after a reload changed the settings); connection counts stay.
    pub fn reset(&mut self) {
        for u in self.by_ip.values_mut() {
            *u = SourceUse { connections: u.connections, ..SourceUse::default() };
        }
        self.by_ip.retain(|_, u| u.connections > 0);
    }

    /// Whether `ip` may open one more connection to this queue now (`source-ip-max-smtp-out`,
    /// `source-ip-max-connect-rate`); when it may, the connection is counted.
    pub fn open(&mut self, settings: &Settings, ip: IpAddr, now: f64) -> bool {
        let cap = match most_specific(settings, Dir::SourceIpMaxSmtpOut, ip) {
            Some(Value::CidrUint(_, n)) => usize::try_from(*n).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        let used = self.get(settings, ip);
        if used.connections >= cap || used.connect_rate.as_mut().is_some_and(|g| g.take(now, 1).is_err()) {
            return false;
        }
        used.connections += 1;
        true
    }

    pub fn close(&mut self, ip: IpAddr) {
        if let Some(u) = self.by_ip.get_mut(&ip) {
            u.connections = u.connections.saturating_sub(1);
        }
    }

    /// The message-rate and data-rate limiters of `ip` in this queue.
    pub fn limiters(&mut self, settings: &Settings, ip: IpAddr) -> Vec<Limiter<'_>> {
        let used = self.get(settings, ip);
        let msg = used
            .msg_rate
            .as_mut()
            .map(|g| Limiter::new(g, Unit::Recipients, format!("source-ip-max-msg-rate of {ip}")));
        let data = used
            .data_rate
            .as_mut()
            .map(|g| Limiter::new(g, Unit::Bytes, format!("source-ip-max-data-volume-rate of {ip}")));
        msg.into_iter().chain(data).collect()
    }

    /// Open connections per source IP, for the queue view.
    pub fn connections(&self) -> impl Iterator<Item = (IpAddr, usize)> + '_ {
        self.by_ip.iter().filter(|(_, u)| u.connections > 0).map(|(ip, u)| (*ip, u.connections))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn the_most_specific_source_entry_applies_and_caps_connections() {
        let c = load_str(
            "l.conf",
            "<domain *>\n source-ip-max-smtp-out 0/0 3\n source-ip-max-smtp-out 127.0.0.2/32 1\n \
             source-ip-max-connect-rate 127.0.0.3 2/m\n</domain>\n",
            Path::new("."),
            FileCheck::Warn,
        )
        .config;
        let q = c.queue_settings("example.com", None).unwrap();
        let mut limits = SourceLimits::default();
        let (two, three) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        assert!(limits.open(&q.settings, two, 0.0));
        assert!(!limits.open(&q.settings, two, 0.0), "127.0.0.2/32 allows one");
        limits.close(two);
        assert!(limits.open(&q.settings, two, 0.0));
        // 127.0.0.3: the 0/0 cap of 3, but 2 connections a minute.
        assert!(limits.open(&q.settings, three, 0.0));
        assert!(!limits.open(&q.settings, three, 1.0), "2/m: the second waits 30 s");
        assert!(limits.open(&q.settings, three, 31.0));
    }

    #[test]
    fn take_all_charges_nothing_when_one_limiter_refuses() {
        let mut msg = Gcra::new(Rate { count: 1, period: 1 }, 1);
        let mut data = Gcra::new(Rate { count: 1000, period: 1 }, 1);
        {
            let mut l = [Limiter::new(&mut msg, Unit::Recipients, "msg"), Limiter::new(&mut data, Unit::Bytes, "data")];
            assert!(take_all(&mut l, 0.0, 1, 3000).is_ok());
            // 3000 bytes at 1000/s: the data limiter refuses for 3 s; the message limiter is not
            // charged meanwhile.
            let (wait, name) = take_all(&mut l, 1.5, 1, 10).unwrap_err();
            assert!(wait > 1.0 && name == "data", "{wait} {name}");
        }
        assert!(msg.check(1.5).is_ok());
    }
}
