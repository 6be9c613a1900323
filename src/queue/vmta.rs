//! Virtual MTAs at delivery time: a pool picks its member round robin, a VMTA picks its
//! `smtp-source-host` (source IP and EHLO name) round robin, and `{default}` uses the global
//! ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::config::value::Value;
use crate::config::{Config, DEFAULT_VMTA, Dir, system_host_name};
use crate::smtp::Reply;

/// Where a connection comes from: the address to bind and the EHLO name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceHost {
    pub ip: Option<IpAddr>,
    pub helo: String,
}

/// Round-robin counters, per pool and per VMTA.
#[derive(Default)]
pub struct Rotation {
    next: Mutex<HashMap<String, usize>>,
}

impl Rotation {
    fn take(&self, key: &str, len: usize) -> usize {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let n = next.entry(key.to_string()).or_insert(0);
        let i = *n % len.max(1);
        *n = n.wrapping_add(1);
        i
    }

    /// The VMTA a message selected (`None` = `{default}`) resolved to a real one: pools pick a
    /// member in turn. A name that no longer exists (removed by a reload) is PowerMTA's 5.3.5.
    pub fn member(&self, config: &Config, selected: Option<&str>) -> Result<String, Reply> {
        let Some(name) = selected.filter(|n| *n != DEFAULT_VMTA) else { return Ok(DEFAULT_VMTA.to_string()) };
        if config.vmta(name).is_some() {
            return Ok(name.to_string());
        }
        if let Some(pool) = config.pool(name) {
            let members: Vec<&str> = pool.members().map(|(m, _)| m).filter(|m| config.vmta(m).is_some()).collect();
            if !members.is_empty() {
                return Ok(members[self.take(&format!("pool:{name}"), members.len())].to_string());
            }
        }
        Err(Reply::new(550, "5.3.5", format!("specified VirtualMTA does not exist: \"{name}\"")))
    }

    /// How many source hosts a VMTA rotates through.
    pub fn source_count(&self, config: &Config, vmta: &str) -> usize {
        let own = config.vmta(vmta).map(|v| v.settings.all(Dir::SmtpSourceHost).len()).unwrap_or(0);
        if own > 0 { own } else { config.global.all(Dir::SmtpSourceHost).len() }
    }

    /// The next source host of a VMTA.
    pub fn source_host(&self, config: &Config, vmta: &str) -> SourceHost {
        let global_name = || {
            config.global.all(Dir::HostName).first().and_then(|e| match &e.value {
                Value::Text(t) => Some(t.clone()),
                _ => None,
            })
        };
        let v = config.vmta(vmta);
        let vmta_name = v.and_then(|v| v.settings.text(Dir::HostName).map(str::to_string));
        let own = v.map(|v| v.settings.all(Dir::SmtpSourceHost)).filter(|hosts| !hosts.is_empty());
        let hosts = own.unwrap_or_else(|| config.global.all(Dir::SmtpSourceHost));
        let fallback_name = || vmta_name.clone().or_else(global_name).unwrap_or_else(system_host_name);
        if hosts.is_empty() {
            return SourceHost { ip: None, helo: fallback_name() };
        }
        let entry = &hosts[self.take(&format!("vmta:{vmta}"), hosts.len())];
        match &entry.value {
            Value::SourceHost { cidr, host } => SourceHost {
                // A CIDR means "any local address in it"; without enumerating interfaces, let the
                // kernel choose.
                ip: cidr.is_single_host().then_some(cidr.addr()),
                helo: host.clone().unwrap_or_else(fallback_name),
            },
            _ => SourceHost { ip: None, helo: fallback_name() },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    const CONFIG: &str = "\
host-name global.example
<virtual-mta a>
    smtp-source-host 127.0.0.2 a.example
</virtual-mta>
<virtual-mta b>
    smtp-source-host 127.0.0.3 b1.example
    smtp-source-host 127.0.0.4 b2.example
</virtual-mta>
<virtual-mta-pool p>
    virtual-mta a
    virtual-mta b
</virtual-mta-pool>
";

    #[test]
    fn pools_and_source_hosts_rotate() {
        let c = load_str("v.conf", CONFIG, Path::new("."), FileCheck::Warn).config;
        let r = Rotation::default();
        let picks: Vec<String> = (0..4).map(|_| r.member(&c, Some("p")).unwrap()).collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
        assert_eq!(r.member(&c, None).unwrap(), "{default}");
        assert_eq!(r.member(&c, Some("gone")).unwrap_err().code, 550);
        let hosts: Vec<String> = (0..3).map(|_| r.source_host(&c, "b").helo).collect();
        assert_eq!(hosts, ["b1.example", "b2.example", "b1.example"]);
        assert_eq!(r.source_host(&c, "a").ip, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(r.source_host(&c, "{default}"), SourceHost { ip: None, helo: "global.example".into() });
    }
}
