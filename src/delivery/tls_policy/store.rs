//! MTA-STS policies on disk: one JSON file per domain under the state directory
//! (`mta-sts/DOMAIN.json`), holding the policy id from the TXT record, the policy and when it
//! was fetched, so a restart keeps every policy until its `max_age` runs out (RFC 8461 §5.1: a
//! cached policy is used while the policy host cannot be reached).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sts::Policy;

/// A policy as cached: in memory and in its file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPolicy {
    pub domain: String,
    pub id: String,
    pub policy: Policy,
    /// Unix seconds of the fetch.
    pub fetched: u64,
}

impl CachedPolicy {
    /// Still usable at `now` (Unix seconds): fetched less than `max_age` ago.
    pub fn is_valid(&self, now: u64) -> bool {
        now < self.fetched.saturating_add(self.policy.max_age)
    }

    /// Past half its `max_age`: fetched again (the cached one staying in force if that fails),
    /// so a policy whose id never changes is renewed before it expires.
    pub fn wants_refresh(&self, now: u64) -> bool {
        now >= self.fetched.saturating_add(self.policy.max_age / 2)
    }
}

/// Where the policies are kept; `None`: memory only.
#[derive(Clone, Debug)]
pub struct PolicyStore {
    dir: Option<PathBuf>,
}

impl PolicyStore {
    pub fn new(dir: Option<PathBuf>) -> PolicyStore {
        PolicyStore { dir }
    }

    fn file(&self, domain: &str) -> Option<PathBuf> {
        // Normalised domain names hold letters, digits, '-' and '.': nothing that walks paths,
        // but a name that is not one (a literal) is never written.
        if domain.is_empty()
            || domain.starts_with('.')
            || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return None;
        }
        Some(self.dir.as_ref()?.join(format!("{domain}.json")))
    }

    /// The cached policy of `domain`, if a readable one is on disk.
    pub async fn load(&self, domain: &str) -> Option<CachedPolicy> {
        let path = self.file(domain)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        match serde_json::from_slice::<CachedPolicy>(&bytes) {
            Ok(p) if p.domain == domain => Some(p),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("ignoring the cached MTA-STS policy {}: {e}", path.display());
                None
            }
        }
    }

    /// Writes the policy (a temporary file renamed over the old one).
    pub async fn save(&self, cached: &CachedPolicy) {
        let Some(path) = self.file(&cached.domain) else { return };
        if let Err(e) = write(&path, cached).await {
            tracing::warn!("cannot cache the MTA-STS policy of {} in {}: {e}", cached.domain, path.display());
        }
    }
}

async fn write(path: &Path, cached: &CachedPolicy) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, serde_json::to_vec_pretty(cached).map_err(std::io::Error::other)?).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::tls_policy::sts::Mode;

    #[tokio::test]
    async fn policies_survive_on_disk_and_expire_by_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::new(Some(dir.path().join("mta-sts")));
        let cached = CachedPolicy {
            domain: "example.com".into(),
            id: "1".into(),
            policy: Policy { mode: Mode::Enforce, mx: vec!["mx.example.com".into()], max_age: 100 },
            fetched: 1000,
        };
        store.save(&cached).await;
        assert_eq!(store.load("example.com").await, Some(cached.clone()));
        assert!(store.load("other.com").await.is_none());
        assert!(store.file("../etc").is_none());
        assert!(cached.is_valid(1099) && !cached.is_valid(1100));
        assert!(!cached.wants_refresh(1049) && cached.wants_refresh(1050));
    }
}
