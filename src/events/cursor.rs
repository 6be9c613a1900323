//! A sink's durable cursor: the id of the last event it delivered, in `cursors/NAME` beside the
//! log. Written atomically (a temporary file, fsync, rename, fsync of the directory), so after a
//! restart or a SIGKILL the sink resumes after the last batch it was sure of; at worst it sends
//! that batch again (at-least-once; receivers de-duplicate by event id).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("event sink cursor {}: {source}", path.display())]
pub struct CursorError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    /// The cursor of sink `name` in the log directory `dir`.
    pub fn new(dir: &Path, name: &str) -> Cursor {
        Cursor { path: dir.join("cursors").join(name) }
    }

    /// The last delivered id; `None` for a sink that never delivered (it starts at the head of
    /// the log, not at its retained past). Blocking.
    pub fn load(&self) -> Result<Option<u64>, CursorError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.error(std::io::Error::other(format!("not a number: {text:?}")))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records `id` as delivered. Blocking.
    pub fn store(&self, id: u64) -> Result<(), CursorError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{id}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| self.error(e))
    }

    fn error(&self, source: std::io::Error) -> CursorError {
        CursorError { path: self.path.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_reopening_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cursor::new(dir.path(), "hooks");
        assert_eq!(c.load().unwrap(), None);
        c.store(41).unwrap();
        c.store(42).unwrap();
        assert_eq!(Cursor::new(dir.path(), "hooks").load().unwrap(), Some(42));
        std::fs::write(dir.path().join("cursors/hooks"), "garbage").unwrap();
        assert!(c.load().unwrap_err().to_string().contains("cursors/hooks"));
    }
}
