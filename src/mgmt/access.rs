//! `http-access CIDR LEVEL` (first match wins, PowerMTA's order) and `http-api-key` (admin).

use std::net::IpAddr;

use crate::config::value::Value;
use crate::config::values::Cidr;
use crate::config::{Config, Dir};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Monitor,
    Operator,
    Admin,
}

#[derive(Clone, Debug, Default)]
pub struct Access {
    rules: Vec<(Cidr, Level)>,
    keys: Vec<String>,
}

impl Access {
    pub fn from_config(config: &Config) -> Access {
        let rules = config
            .global
            .all(Dir::HttpAccess)
            .iter()
            .filter_map(|e| match &e.value {
                Value::HttpAccess { cidr, level, .. } => Some((
                    *cidr,
                    match level.as_str() {
                        "admin" => Level::Admin,
                        "operator" => Level::Operator,
                        "monitor" => Level::Monitor,
                        _ => Level::None,
                    },
                )),
                _ => None,
            })
            .collect();
        let keys = config
            .global
            .all(Dir::HttpApiKey)
            .iter()
            .filter_map(|e| match &e.value {
                Value::Text(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        Access { rules, keys }
    }

    /// Whether `key` is one of the `http-api-key` values.
    pub fn is_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// The level of a client: an API key grants admin; else the first matching rule; else none.
    pub fn level(&self, ip: IpAddr, api_key: Option<&str>) -> Level {
        if api_key.is_some_and(|k| self.keys.iter().any(|x| x == k)) {
            return Level::Admin;
        }
        self.rules.iter().find(|(c, _)| c.contains(ip)).map_or(Level::None, |(_, l)| *l)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn first_match_wins_and_keys_are_admin() {
        let text = "http-access 127.0.0.2 none\nhttp-access 127/8 monitor\nhttp-api-key abcdefghijklmnopqrstuvwxyz0123456789\n";
        let c = load_str("a.conf", text, Path::new("."), FileCheck::Warn).config;
        let a = Access::from_config(&c);
        assert_eq!(a.level("127.0.0.2".parse().unwrap(), None), Level::None);
        assert_eq!(a.level("127.0.0.1".parse().unwrap(), None), Level::Monitor);
        assert_eq!(a.level("10.0.0.1".parse().unwrap(), None), Level::None);
        assert_eq!(a.level("10.0.0.1".parse().unwrap(), Some("abcdefghijklmnopqrstuvwxyz0123456789")), Level::Admin);
    }
}
