//! The file sink: events appended to a file as JSON lines (one event a line), synced before the
//! cursor moves. When a batch would take the file past `max-size`, the file is first renamed
//! `NAME.YYYY-MM-DD-HHMMSS` (the time of the rotation) and a new one started.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use super::{Batch, SinkError};

pub struct FileSink {
    path: PathBuf,
    max_size: Option<u64>,
}

impl FileSink {
    pub fn new(path: PathBuf, max_size: Option<u64>) -> FileSink {
        FileSink { path, max_size }
    }

    pub async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut lines = Vec::with_capacity(batch.events.iter().map(|e| e.json.len() + 1).sum());
        for e in &batch.events {
            lines.extend_from_slice(&e.json);
            lines.push(b'\n');
        }
        let (path, max_size) = (self.path.clone(), self.max_size);
        let write = move || -> Result<(), SinkError> {
            let failed = |source| SinkError::File { path: path.clone(), source };
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if max_size.is_some_and(|max| size > 0 && size + lines.len() as u64 > max) {
                std::fs::rename(&path, rotated_name(&path)).map_err(failed)?;
            }
            let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(failed)?;
            file.write_all(&lines).map_err(failed)?;
            file.sync_data().map_err(failed)
        };
        tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| SinkError::File { path: self.path.clone(), source: std::io::Error::other(e) })?
    }
}

/// `NAME.YYYY-MM-DD-HHMMSS`, with `.N` added if that name is taken.
fn rotated_name(path: &std::path::Path) -> PathBuf {
    let stamp = crate::time::file_stamp(crate::time::now_secs());
    let base = format!("{}.{stamp}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::log::Stored;

    #[tokio::test]
    async fn lines_are_appended_and_the_file_rotates_at_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut sink = FileSink::new(path.clone(), Some(30));
        let batch = |id: u64| Batch {
            first: id,
            last: id,
            events: vec![Stored { id, time_ms: 0, json: format!(r#"{{"id":{id:>10}}}"#).into_bytes() }],
        };
        sink.deliver(&batch(1)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":         1}\n");
        sink.deliver(&batch(2)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":         2}\n", "rotated first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
