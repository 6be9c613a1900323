//! History queries: a recipient's, a message's or a job's events (and events since a time),
//! answered from the index: the ids filed under the key, each read with one `pread`, checked
//! against the key (hashes may collide) and against `since`.

use super::event::{Event, KeyKind, parse_since};
use super::index::key_hash;
use super::log::{EventLog, LogError};

/// Most events one query returns when it does not say.
pub const DEFAULT_LIMIT: usize = 1000;
/// Most events one query may ask for.
pub const MAX_LIMIT: usize = 100_000;

/// What to look up. At least one of the keys or `since` must be given.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub rcpt: Option<String>,
    pub message_id: Option<String>,
    pub job: Option<String>,
    /// Unix milliseconds.
    pub since_ms: Option<u64>,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("give rcpt, message_id, job or since")]
    Empty,
    #[error("since {0:?} is neither Unix seconds nor an RFC 3339 time")]
    Since(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Query {
    /// A query from the API's parameters.
    pub fn new(
        rcpt: Option<String>,
        message_id: Option<String>,
        job: Option<String>,
        since: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Query, QueryError> {
        let blank = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let since_ms = match since.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(parse_since(s).ok_or_else(|| QueryError::Since(s.to_string()))?),
            None => None,
        };
        let q = Query {
            rcpt: blank(rcpt),
            message_id: blank(message_id),
            job: blank(job),
            since_ms,
            limit: limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
        };
        if q.rcpt.is_none() && q.message_id.is_none() && q.job.is_none() && q.since_ms.is_none() {
            return Err(QueryError::Empty);
        }
        Ok(q)
    }

    fn matches(&self, e: &Event) -> bool {
        let same = |want: &Option<String>, have: &Option<String>, fold: bool| match (want, have) {
            (None, _) => true,
            (Some(w), Some(h)) => {
                if fold {
                    w.eq_ignore_ascii_case(h)
                } else {
                    w == h
                }
            }
            (Some(_), None) => false,
        };
        same(&self.rcpt, &e.rcpt, true)
            && same(&self.message_id, &e.message_id, false)
            && same(&self.job, &e.job, false)
    }

    /// The key with the fewest candidates to read, if any key was given.
    fn key(&self) -> Option<(KeyKind, &str)> {
        [(KeyKind::MessageId, &self.message_id), (KeyKind::Rcpt, &self.rcpt), (KeyKind::Job, &self.job)]
            .into_iter()
            .find_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

/// The events matching `q`, oldest first, at most `q.limit` (the newest ones when there are
/// more). Blocking.
pub fn run(log: &EventLog, q: &Query) -> Result<Vec<Event>, QueryError> {
    let since_ms = q.since_ms.unwrap_or(0);
    let mut out = Vec::new();
    match q.key() {
        Some((kind, text)) => {
            let ids = log.read_index().lookup(key_hash(kind, text));
            // Newest first, so that a long history returns its most recent part.
            for id in ids.iter().rev() {
                for stored in log.read_ids(&[*id])? {
                    if stored.time_ms < since_ms {
                        continue;
                    }
                    if let Ok(e) = serde_json::from_slice::<Event>(&stored.json)
                        && q.matches(&e)
                    {
                        out.push(e);
                    }
                }
                if out.len() >= q.limit {
                    break;
                }
            }
            out.reverse();
        }
        None => {
            let mut from = log.read_index().first_id_since(since_ms).max(log.oldest_id());
            let head = log.head();
            while from <= head && out.len() < q.limit {
                let batch = match log.read(from, 4096) {
                    Ok(b) => b,
                    Err(LogError::Gone { oldest }) => {
                        from = oldest;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let Some(last) = batch.last().map(|s| s.id) else { break };
                for stored in batch.into_iter().filter(|s| s.time_ms >= since_ms) {
                    if let Ok(e) = serde_json::from_slice::<Event>(&stored.json) {
                        out.push(e);
                        if out.len() >= q.limit {
                            break;
                        }
                    }
                }
                from = last + 1;
            }
        }
    }
    Ok(out)
}
