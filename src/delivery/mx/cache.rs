//! The answer cache in front of `DnsLookup`: answers kept for their TTL (capped), negative answers
//! for the SOA's negative TTL (or a default), failures for a few seconds only, and one query in
//! flight per name and type however many tasks ask at once (single flight).
//!
//! The query runs in a task of its own, so a caller that gives up (its delivery task cancelled)
//! neither cancels the query for the others waiting on it nor leaves a stale "pending" entry. The
//! lock is never held across an await. Time is `tokio::time`, so tests run it virtually.
//!
//! Not `moka::future::Cache`: its single flight runs the loading future inside the caller that
//! missed, so when that caller is cancelled the query is dropped and the next waiter sends its
//! own (keeping one query per name means tracking in-flight queries outside moka, which is this
//! module again). And moka expires entries by its own clock, not tokio's, so TTL behaviour could
//! no longer be tested in virtual time.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::lookup::{Answer, LookupResult};

/// A cached or freshly fetched answer, shared by everyone who asked.
pub type Shared<T> = Arc<LookupResult<T>>;

/// How long answers live.
#[derive(Clone, Copy, Debug)]
pub struct TtlPolicy {
    /// Cap on any TTL, positive or negative.
    pub max: Duration,
    /// Negative answers (NXDOMAIN, no data) that carry no SOA.
    pub negative_default: Duration,
    /// Failed lookups (SERVFAIL, timeout): long enough to spare a dead server a stampede, short
    /// enough that recovery is noticed at once.
    pub failure: Duration,
    /// A query (retries and CNAME hops included) that has not finished after this long fails.
    pub deadline: Duration,
}

impl TtlPolicy {
    pub fn ttl<T>(&self, result: &LookupResult<T>) -> Duration {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        match result {
            Ok(Answer::Records { ttl, .. }) => secs(*ttl).min(self.max),
            Ok(Answer::NoRecords { ttl } | Answer::NoSuchDomain { ttl }) => {
                ttl.map_or(self.negative_default, secs).min(self.max)
            }
            Err(_) => self.failure.min(self.max),
        }
    }
}

/// Counters shared by the caches of one resolver.
#[derive(Default, Debug)]
pub struct Counters {
    /// Queries sent to the DNS (calls into `DnsLookup`).
    pub queries: AtomicU64,
    /// Answers given without a query of their own: from the cache, or by joining a query already
    /// in flight.
    pub hits: AtomicU64,
}

enum Slot<T> {
    Ready { value: Shared<T>, expires: Instant },
    Pending(watch::Receiver<Option<Shared<T>>>),
}

struct Slots<K, T> {
    map: HashMap<K, Slot<T>>,
    /// Expired entries are swept when the map reaches this size.
    next_sweep: usize,
}

const MIN_SWEEP: usize = 1024;

pub struct Cache<K, T> {
    slots: Mutex<Slots<K, T>>,
    policy: TtlPolicy,
    counters: Arc<Counters>,
}

impl<K, T> Cache<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    pub fn new(policy: TtlPolicy, counters: Arc<Counters>) -> Cache<K, T> {
        Cache { slots: Mutex::new(Slots { map: HashMap::new(), next_sweep: MIN_SWEEP }), policy, counters }
    }

    fn lock(&self) -> MutexGuard<'_, Slots<K, T>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer for `key`: cached, joined, or fetched by `fetch` (called only on a miss).
    pub async fn get<F, Fut>(self: &Arc<Self>, key: K, fetch: F) -> Shared<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = LookupResult<T>> + Send + 'static,
    {
        let mut rx = {
            let mut slots = self.lock();
            match slots.map.get(&key) {
                Some(Slot::Ready { value, expires }) if Instant::now() < *expires => {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    return value.clone();
                }
                Some(Slot::Pending(rx)) => {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    rx.clone()
                }
                _ => {
                    if slots.map.len() >= slots.next_sweep {
                        let now = Instant::now();
                        slots.map.retain(|_, s| !matches!(s, Slot::Ready { expires, .. } if *expires <= now));
                        slots.next_sweep = MIN_SWEEP.max(slots.map.len() * 2);
                    }
                    let (tx, rx) = watch::channel(None);
                    slots.map.insert(key.clone(), Slot::Pending(rx.clone()));
                    self.counters.queries.fetch_add(1, Ordering::Relaxed);
                    self.spawn_fetch(key, fetch(), tx, rx.clone());
                    rx
                }
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(value) => value.clone().unwrap_or_else(|| Arc::new(Err("lookup abandoned".into()))),
            Err(_) => Arc::new(Err("lookup abandoned".into())),
        }
    }

    fn spawn_fetch<Fut>(
        self: &Arc<Self>,
        key: K,
        fetch: Fut,
        tx: watch::Sender<Option<Shared<T>>>,
        ours: watch::Receiver<Option<Shared<T>>>,
    ) where
        Fut: Future<Output = LookupResult<T>> + Send + 'static,
    {
        let deadline = self.policy.deadline;
        let mut guard = Abandon { cache: self.clone(), key: Some(key), ours };
        tokio::spawn(async move {
            let result = tokio::time::timeout(deadline, fetch)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {}s", deadline.as_secs_f32())));
            let value = Arc::new(result);
            if let Some(key) = guard.key.take() {
                guard.cache.complete(key, &value, &guard.ours);
            }
            // No receiver left means every asker gave up; the answer is in the cache for the next.
            if tx.send(Some(value)).is_err() {
                tracing::trace!("a DNS answer arrived after everyone stopped waiting for it");
            }
        });
    }

    /// Replaces our pending slot by the answer (or drops it when the answer may not be kept). A
    /// slot that is no longer ours (cleared meanwhile, then asked again) is left alone.
    fn complete(&self, key: K, value: &Shared<T>, ours: &watch::Receiver<Option<Shared<T>>>) {
        let ttl = self.policy.ttl(value);
        let mut slots = self.lock();
        let mine = match slots.map.get(&key) {
            Some(Slot::Pending(rx)) => rx.same_channel(ours),
            Some(Slot::Ready { .. }) => false,
            None => true,
        };
        if !mine {
            return;
        }
        if ttl.is_zero() {
            slots.map.remove(&key);
        } else {
            slots.map.insert(key, Slot::Ready { value: value.clone(), expires: Instant::now() + ttl });
        }
    }

    /// Forgets answers whose key matches (in-flight queries finish and are kept).
    pub fn clear(&self, matches: impl Fn(&K) -> bool) {
        self.lock().map.retain(|k, s| matches!(s, Slot::Pending(_)) || !matches(k));
    }

    /// (answers cached and still fresh, queries in flight).
    pub fn counts(&self) -> (usize, usize) {
        let now = Instant::now();
        let slots = self.lock();
        slots.map.values().fold((0, 0), |(cached, pending), s| match s {
            Slot::Ready { expires, .. } if *expires > now => (cached + 1, pending),
            Slot::Ready { .. } => (cached, pending),
            Slot::Pending(_) => (cached, pending + 1),
        })
    }
}

/// Removes the pending slot of a fetch task that ended without an answer (panicked, or dropped
/// with its runtime), so the next caller asks again instead of waiting forever.
struct Abandon<K: Hash + Eq, T> {
    cache: Arc<Cache<K, T>>,
    key: Option<K>,
    ours: watch::Receiver<Option<Shared<T>>>,
}

impl<K: Hash + Eq, T> Drop for Abandon<K, T> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut slots = self.cache.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(slots.map.get(&key), Some(Slot::Pending(rx)) if rx.same_channel(&self.ours)) {
            slots.map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TtlPolicy {
        TtlPolicy {
            max: Duration::from_secs(3600),
            negative_default: Duration::from_secs(300),
            failure: Duration::from_secs(3),
            deadline: Duration::from_secs(30),
        }
    }

    fn cache() -> (Arc<Cache<String, u32>>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        (Arc::new(Cache::new(policy(), counters.clone())), counters)
    }

    fn records(ttl: u32) -> LookupResult<u32> {
        Ok(Answer::Records { records: vec![ttl], ttl })
    }

    fn queries(c: &Counters) -> u64 {
        c.queries.load(Ordering::Relaxed)
    }

    #[test]
    fn ttl_policy_caps_floors_and_defaults() {
        let p = policy();
        assert_eq!(p.ttl(&records(60)), Duration::from_secs(60));
        assert_eq!(p.ttl(&records(86_400)), Duration::from_secs(3600));
        assert_eq!(p.ttl(&records(0)), Duration::ZERO);
        assert_eq!(p.ttl::<u32>(&Ok(Answer::NoSuchDomain { ttl: None })), Duration::from_secs(300));
        assert_eq!(p.ttl::<u32>(&Ok(Answer::NoSuchDomain { ttl: Some(30) })), Duration::from_secs(30));
        assert_eq!(p.ttl::<u32>(&Ok(Answer::NoRecords { ttl: Some(999_999) })), Duration::from_secs(3600));
        assert_eq!(p.ttl::<u32>(&Err("SERVFAIL".into())), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_kept_for_its_ttl() {
        let (c, n) = cache();
        let v = c.get("a".into(), || async { records(60) }).await;
        assert_eq!(v.as_ref().as_ref().unwrap().records(), [60]);
        c.get("a".into(), || async { records(61) }).await;
        assert_eq!(queries(&n), 1);
        assert_eq!(n.hits.load(Ordering::Relaxed), 1);
        assert_eq!(c.counts(), (1, 0));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(c.counts(), (0, 0));
        let v = c.get("a".into(), || async { records(61) }).await;
        assert_eq!(v.as_ref().as_ref().unwrap().records(), [61]);
        assert_eq!(queries(&n), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_zero_and_failures_are_barely_kept() {
        let (c, n) = cache();
        c.get("zero".into(), || async { records(0) }).await;
        c.get("zero".into(), || async { records(0) }).await;
        assert_eq!(queries(&n), 2);
        assert!(c.get("bad".into(), || async { Err("SERVFAIL".into()) }).await.is_err());
        assert!(c.get("bad".into(), || async { records(5) }).await.is_err());
        assert_eq!(queries(&n), 3);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(c.get("bad".into(), || async { records(5) }).await.is_ok());
        assert_eq!(queries(&n), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_query() {
        let (c, n) = cache();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                c.get("slow".into(), || async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    records(60)
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(c.counts(), (0, 1));
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(queries(&n), 1);
        assert_eq!(n.hits.load(Ordering::Relaxed), 49);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_caller_does_not_cancel_the_query() {
        let (c, n) = cache();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            records(60)
        };
        let first = tokio::time::timeout(Duration::from_millis(10), c.get("k".into(), slow)).await;
        assert!(first.is_err());
        assert!(c.get("k".into(), || async { records(1) }).await.is_ok());
        assert_eq!(queries(&n), 1);
        assert_eq!(c.get("k".into(), || async { records(1) }).await.as_ref().as_ref().unwrap().records(), [60]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_query_fails_at_the_deadline() {
        let (c, _) = cache();
        let v = c.get("hang".into(), std::future::pending::<LookupResult<u32>>).await;
        assert!(v.as_ref().as_ref().unwrap_err().contains("no answer within 30s"));
    }

    #[tokio::test]
    async fn a_panicking_query_leaves_no_pending_entry() {
        let (c, n) = cache();
        let v = c.get("p".into(), || async { panic!("lookup bug") }).await;
        assert!(v.is_err());
        assert_eq!(c.counts(), (0, 0));
        assert!(c.get("p".into(), || async { records(60) }).await.is_ok());
        assert_eq!(queries(&n), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets_matching_answers() {
        let (c, n) = cache();
        c.get("a".into(), || async { records(60) }).await;
        c.get("b".into(), || async { records(60) }).await;
        c.clear(|k| k == "a");
        assert_eq!(c.counts(), (1, 0));
        c.get("a".into(), || async { records(60) }).await;
        c.get("b".into(), || async { records(60) }).await;
        assert_eq!(queries(&n), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept() {
        let (c, _) = cache();
        for i in 0..MIN_SWEEP {
            c.get(i.to_string(), || async { records(1) }).await;
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        c.get("last".into(), || async { records(60) }).await;
        assert_eq!(c.lock().map.len(), 1);
    }
}
