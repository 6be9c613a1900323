//! The global suppression list: every address a complaint, a hard bounce, an unsubscribe or an
//! operator suppressed, checked at RCPT for every source. It survives restarts and reloads.
//!
//! Memory: an address is kept as a 64-bit hash (SipHash of its lower-case form), in a sorted
//! `Vec<u64>` plus a small set of recent changes merged into it now and then, so ten million
//! addresses need about 8 bytes each (docs/benchmarks.md). The chance that an address never
//! suppressed collides with one of 10 million suppressed ones is about 5 in 10^13 per check.
//! `@domain` entries (rare) are kept as text.
//!
//! Disk: an append-only journal, one change a line (`+address`, `-address`, `+@domain`), each
//! batch fdatasync'd before the change is acknowledged; the addresses themselves are in it, so
//! `export` can list them. It is rewritten without removed or repeated entries when it has grown
//! to more than twice the live set.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("suppression journal {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("suppression journal {0} is in use by another process (a running ember daemon?)")]
    Locked(PathBuf),
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an address or @domain: {0:?}")]
pub struct BadEntry(pub String);

/// A normalised entry: an address (lower case) or `@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Address(String),
    Domain(String),
}

impl Entry {
    pub fn parse(text: &str) -> Result<Entry, BadEntry> {
        let t = text.trim().trim_start_matches('<').trim_end_matches('>').trim();
        let bad = || BadEntry(text.to_string());
        if t.is_empty()
            || t.len() > 320
            || t.chars().any(|c| c.is_whitespace() || c.is_control())
            || t.contains(['<', '>', ',', '"'])
        {
            return Err(bad());
        }
        match t.rsplit_once('@') {
            Some(("", d)) if valid_domain(d) => Ok(Entry::Domain(d.to_lowercase())),
            Some((local, d)) if !local.is_empty() && !local.contains('@') && valid_domain(d) => {
                Ok(Entry::Address(t.to_lowercase()))
            }
            _ => Err(bad()),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Entry::Address(a) => a.clone(),
            Entry::Domain(d) => format!("@{d}"),
        }
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
        && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80)
}

/// The hash an address is kept as. Fixed keys: the same address must hash the same way in every
/// process that reads the journal (the journal keeps the text, so a change of hash function
/// only needs a restart).
fn hash(address: &str) -> u64 {
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(address.as_bytes());
    h.finish()
}

#[derive(Default)]
struct Sets {
    /// Sorted, deduplicated.
    base: Vec<u64>,
    added: HashSet<u64>,
    removed: HashSet<u64>,
    domains: HashSet<String>,
}

/// Changes merged into `base` once this many have piled up.
const MERGE_AT: usize = 65_536;

impl Sets {
    fn contains_hash(&self, h: u64) -> bool {
        if self.added.contains(&h) {
            return true;
        }
        !self.removed.contains(&h) && self.base.binary_search(&h).is_ok()
    }

    /// Applies a change; true when it changed the set.
    fn apply(&mut self, add: bool, entry: &Entry) -> bool {
        match entry {
            Entry::Domain(d) if add => self.domains.insert(d.clone()),
            Entry::Domain(d) => self.domains.remove(d),
            Entry::Address(a) => {
                let h = hash(a);
                let present = self.contains_hash(h);
                if add && !present {
                    if !self.removed.remove(&h) || self.base.binary_search(&h).is_err() {
                        self.added.insert(h);
                    }
                } else if !add && present {
                    if !self.added.remove(&h) || self.base.binary_search(&h).is_ok() {
                        self.removed.insert(h);
                    }
                } else {
                    return false;
                }
                if self.added.len() + self.removed.len() >= MERGE_AT {
                    self.merge();
                }
                true
            }
        }
    }

    /// Folds the recent changes into `base`: one linear pass, so a large list is never re-sorted.
    fn merge(&mut self) {
        let removed = std::mem::take(&mut self.removed);
        if !removed.is_empty() {
            self.base.retain(|h| !removed.contains(h));
        }
        let mut added: Vec<u64> = self.added.drain().collect();
        self.merge_sorted(&mut added);
    }

    /// Merges hashes (any order, maybe repeated) into `base`.
    fn merge_sorted(&mut self, added: &mut Vec<u64>) {
        if added.is_empty() {
            return;
        }
        added.sort_unstable();
        added.dedup();
        let old = std::mem::take(&mut self.base);
        let mut merged = Vec::with_capacity(old.len() + added.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() && j < added.len() {
            match old[i].cmp(&added[j]) {
                std::cmp::Ordering::Less => {
                    merged.push(old[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(added[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push(old[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&old[i..]);
        merged.extend_from_slice(&added[j..]);
        self.base = merged;
    }

    fn len(&self) -> usize {
        self.base.len() + self.added.len() - self.removed.len() + self.domains.len()
    }
}

/// The global suppression list (see the module documentation).
pub struct SuppressionStore {
    path: PathBuf,
    sets: RwLock<Sets>,
    journal: Mutex<Journal>,
    /// Cluster mode: every change made here is published for the other nodes.
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

struct Journal {
    file: BufWriter<File>,
    lines: usize,
    /// Holds the exclusive lock for as long as the store is open; compaction locks the new file
    /// before renaming it over the old one, so no other process can slip in between.
    _lock: File,
}

/// What loading the journal found.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub entries: usize,
    pub lines: usize,
    /// Lines that were not a change, as `line number: problem`.
    pub bad_lines: Vec<String>,
}

impl SuppressionStore {
    /// Opens (creating if needed) the journal at `path` and loads it.
    pub fn open(path: &Path) -> Result<(SuppressionStore, LoadReport), StoreError> {
        let io = |source| StoreError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // One writer at a time: the daemon holds this lock while it runs, so `ember suppression`
        // edits the journal directly only when no daemon has it.
        let lock = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| StoreError::Locked(path.to_path_buf()))?;
        let mut sets = Sets::default();
        let mut report = LoadReport::default();
        if path.exists() {
            let reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
            let mut all: Vec<u64> = Vec::new();
            let mut pending_removals = false;
            for (n, line) in reader.split(b'\n').enumerate() {
                let line = line.map_err(io)?;
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                report.lines += 1;
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (add, text) = match line.split_at(1) {
                    ("+", rest) => (true, rest),
                    ("-", rest) => (false, rest),
                    _ => (true, line),
                };
                match Entry::parse(text) {
                    // Additions before any removal go straight into one vector, sorted once:
                    // the fast path for loading a large list.
                    Ok(Entry::Address(a)) if add && !pending_removals => all.push(hash(&a)),
                    Ok(Entry::Domain(d)) if add && !pending_removals => {
                        sets.domains.insert(d);
                    }
                    Ok(entry) => {
                        if !pending_removals {
                            pending_removals = true;
                            sets.base = std::mem::take(&mut all);
                            sets.base.sort_unstable();
                            sets.base.dedup();
                        }
                        sets.apply(add, &entry);
                    }
                    Err(e) => report.bad_lines.push(format!("{}:{}: {e}", path.display(), n + 1)),
                }
            }
            if !pending_removals {
                all.sort_unstable();
                all.dedup();
                all.shrink_to_fit();
                sets.base = all;
            } else {
                sets.merge();
            }
        }
        report.entries = sets.len();
        let store = SuppressionStore {
            path: path.to_path_buf(),
            sets: RwLock::new(sets),
            journal: Mutex::new(Journal {
                file: BufWriter::new(OpenOptions::new().append(true).open(path).map_err(io)?),
                lines: report.lines,
                _lock: lock,
            }),
            cluster: std::sync::OnceLock::new(),
        };
        if report.lines > 2 * report.entries + 10_000 {
            store.compact()?;
        }
        Ok((store, report))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `address` (any case) is suppressed, by itself or by its domain.
    pub fn contains(&self, address: &str) -> bool {
        let lower = address.trim().to_lowercase();
        let sets = self.sets.read().unwrap_or_else(|p| p.into_inner());
        if sets.contains_hash(hash(&lower)) {
            return true;
        }
        let Some((_, mut domain)) = lower.rsplit_once('@') else { return false };
        if sets.domains.is_empty() {
            return false;
        }
        loop {
            if sets.domains.contains(domain) {
                return true;
            }
            match domain.split_once('.') {
                Some((_, parent)) if parent.contains('.') => domain = parent,
                _ => return false,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.sets.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds entries durably (one fdatasync for the batch); how many were new.
    pub fn add(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        self.change(true, entries, true)
    }

    /// Removes entries durably; how many were present.
    pub fn remove(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        self.change(false, entries, true)
    }

    /// Cluster mode: from now on every change (API, complaint, bounce, unsubscribe, import) is
    /// also published for the other nodes.
    pub fn share_with(&self, cluster: crate::cluster::Cluster) {
        if self.cluster.set(cluster).is_err() {
            tracing::debug!("the suppression list is already shared");
        }
    }

    /// A change another node of the cluster made: applied here, not published again.
    pub fn apply_shared(&self, add: bool, entries: &[Entry]) -> Result<usize, StoreError> {
        self.change(add, entries, false)
    }

    fn publish(&self, add: bool, changed: &[&Entry]) {
        use crate::cluster::state::{CHUNK, Change};
        let Some(cluster) = self.cluster.get() else { return };
        for chunk in changed.chunks(CHUNK) {
            let entries: Vec<String> = chunk.iter().map(|e| e.text()).collect();
            cluster.publish(if add { Change::Suppress { entries } } else { Change::Unsuppress { entries } });
        }
    }

    fn change(&self, add: bool, entries: &[Entry], share: bool) -> Result<usize, StoreError> {
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        // The journal lock is held across the write and the in-memory change, so the journal's
        // order is the order the changes were applied in.
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        {
            let sets = self.sets.read().unwrap_or_else(|p| p.into_inner());
            let mut seen = HashSet::with_capacity(entries.len());
            for e in entries {
                let (present, key) = match e {
                    Entry::Address(a) => {
                        let h = hash(a);
                        (sets.contains_hash(h), h)
                    }
                    Entry::Domain(d) => (sets.domains.contains(d), hash(&format!("@{d}"))),
                };
                if present != add && seen.insert(key) {
                    changed.push(e);
                }
            }
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let sign = if add { '+' } else { '-' };
        for e in &changed {
            writeln!(journal.file, "{sign}{}", e.text()).map_err(io)?;
        }
        journal.file.flush().map_err(io)?;
        rustix::fs::fdatasync(journal.file.get_ref()).map_err(|e| io(e.into()))?;
        journal.lines += changed.len();
        let mut sets = self.sets.write().unwrap_or_else(|p| p.into_inner());
        if add && changed.len() >= MERGE_AT {
            // A bulk import: one merge instead of one set insertion per address.
            sets.merge();
            let mut hashes = Vec::with_capacity(changed.len());
            for e in &changed {
                match e {
                    Entry::Address(a) => hashes.push(hash(a)),
                    Entry::Domain(_) => {
                        sets.apply(true, e);
                    }
                }
            }
            sets.merge_sorted(&mut hashes);
        } else {
            for e in &changed {
                sets.apply(add, e);
            }
        }
        drop(sets);
        if share {
            self.publish(add, &changed);
        }
        Ok(changed.len())
    }

    /// Every entry, as text, in journal order (what `export` writes).
    pub fn export(&self, each: impl FnMut(&str) -> std::io::Result<()>) -> Result<usize, StoreError> {
        let _journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        self.export_locked(each)
    }

    /// `export` with the journal lock held by the caller.
    fn export_locked(&self, mut each: impl FnMut(&str) -> std::io::Result<()>) -> Result<usize, StoreError> {
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        let sets = self.sets.read().unwrap_or_else(|p| p.into_inner());
        let reader = BufReader::with_capacity(1 << 20, File::open(&self.path).map_err(io)?);
        let mut seen: HashSet<u64> = HashSet::new();
        let mut count = 0;
        for line in reader.split(b'\n') {
            let line = line.map_err(io)?;
            let line = String::from_utf8_lossy(&line);
            let text = line.trim_end_matches('\r').trim_start_matches('+');
            if line.starts_with('-') || line.starts_with('#') {
                continue;
            }
            let Ok(entry) = Entry::parse(text) else { continue };
            let live = match &entry {
                Entry::Address(a) => {
                    let h = hash(a);
                    sets.contains_hash(h) && seen.insert(h)
                }
                Entry::Domain(d) => sets.domains.contains(d) && seen.insert(hash(&format!("@{d}"))),
            };
            if live {
                each(&entry.text()).map_err(io)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Rewrites the journal with the live entries only (a temporary file renamed over it).
    pub fn compact(&self) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        let tmp = self.path.with_extension("compact");
        // Held throughout: no change may land between the copy and the rename.
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let file = File::create(&tmp).map_err(io)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| StoreError::Locked(tmp.clone()))?;
        let mut out = BufWriter::new(file);
        self.export_locked(|e| writeln!(out, "+{e}"))?;
        out.flush().map_err(io)?;
        rustix::fs::fdatasync(out.get_ref()).map_err(|e| io(e.into()))?;
        let lock = out.into_inner().map_err(|e| io(e.into_error()))?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        journal.file = BufWriter::new(OpenOptions::new().append(true).open(&self.path).map_err(io)?);
        journal._lock = lock;
        journal.lines = self.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Entry {
        Entry::parse(s).unwrap()
    }

    #[test]
    fn entries_are_normalised_and_garbage_refused() {
        assert_eq!(a("<Bob@Example.COM>"), Entry::Address("bob@example.com".into()));
        assert_eq!(a("@Blocked.Example"), Entry::Domain("blocked.example".into()));
        for bad in ["", "two words@x.com", "noat", "a@", "a@b@c.com", "a@-x.com", "a@x..com", "\"q\"@x.com"] {
            assert!(Entry::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn changes_survive_a_reopen_and_domains_cover_subdomains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suppressed.journal");
        let (s, _) = SuppressionStore::open(&path).unwrap();
        assert_eq!(s.add(&[a("x@a.com"), a("y@a.com"), a("x@a.com"), a("@spam.example")]).unwrap(), 3);
        assert_eq!(s.add(&[a("X@A.com")]).unwrap(), 0);
        assert_eq!(s.remove(&[a("y@a.com"), a("never@a.com")]).unwrap(), 1);
        assert!(s.contains("X@a.COM") && !s.contains("y@a.com"));
        assert!(s.contains("u@mx.spam.example") && !s.contains("u@notspam.example"));
        drop(s);
        let (s, report) = SuppressionStore::open(&path).unwrap();
        assert_eq!(report.entries, 2);
        assert!(s.contains("x@a.com") && !s.contains("y@a.com") && s.contains("z@spam.example"));
        // Re-adding a removed address works after the reopen, too.
        s.add(&[a("y@a.com")]).unwrap();
        assert!(s.contains("y@a.com"));
        let mut out = Vec::new();
        s.export(|e| {
            out.push(e.to_string());
            Ok(())
        })
        .unwrap();
        out.sort();
        assert_eq!(out, ["@spam.example", "x@a.com", "y@a.com"]);
    }

    #[test]
    fn merging_keeps_the_set_and_compaction_shrinks_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (s, _) = SuppressionStore::open(&path).unwrap();
        let many: Vec<Entry> = (0..MERGE_AT + 10).map(|i| a(&format!("u{i}@x.com"))).collect();
        s.add(&many).unwrap();
        s.remove(&many[..MERGE_AT / 2]).unwrap();
        assert_eq!(s.len(), MERGE_AT + 10 - MERGE_AT / 2);
        assert!(!s.contains("u0@x.com") && s.contains(&format!("u{}@x.com", MERGE_AT + 9)));
        s.compact().unwrap();
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, s.len());
        // The compacted file is locked too: no second writer while this store is open.
        assert!(matches!(SuppressionStore::open(&path), Err(StoreError::Locked(_))));
        let live = s.len();
        drop(s);
        let (s2, report) = SuppressionStore::open(&path).unwrap();
        assert_eq!(report.entries, live);
        assert!(!s2.contains("u1@x.com") && s2.contains("u40000@x.com"));
    }

    #[test]
    fn bad_journal_lines_are_reported_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, "+a@x.com\nnot an address\n# note\nb@x.com\n").unwrap();
        let (s, report) = SuppressionStore::open(&path).unwrap();
        assert_eq!(report.entries, 2);
        assert_eq!(report.bad_lines.len(), 1);
        assert!(report.bad_lines[0].ends_with("j:2: not an address or @domain: \"not an address\""), "{report:?}");
        assert!(s.contains("b@x.com"));
    }
}
