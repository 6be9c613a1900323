//! Rotation and file handling of the main log, on a fake clock, and the writer thread. The
//! process-wide target is not touched: each test works on its own `OpenLog` or `Writer`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::config::{FileCheck, load_str};

struct Story {
    dir: tempfile::TempDir,
    now: Arc<AtomicU64>,
}

/// 2026-11-29 23:00 UTC.
const LATE: u64 = 1_795_993_200;

impl Story {
    fn new() -> Story {
        Story { dir: tempfile::tempdir().unwrap(), now: Arc::new(AtomicU64::new(LATE)) }
    }

    fn open(&self, extra: &str) -> OpenLog {
        let text = format!("log-file {}/logs/ember.log\n{extra}", self.dir.path().display());
        let loaded = load_str("t.conf", &text, self.dir.path(), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let now = Arc::clone(&self.now);
        let prepared = prepare_with_clock(&loaded.config, Arc::new(move || now.load(Ordering::Relaxed))).unwrap();
        prepared.0.expect("a log file is configured")
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join("logs").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn exists(&self, name: &str) -> bool {
        self.dir.path().join("logs").join(name).exists()
    }
}

#[test]
fn lines_append_to_a_new_file_in_a_new_directory_with_a_private_mode() {
    let s = Story::new();
    let mut log = s.open("");
    log.write_line(b"first\n", false).unwrap();
    log.write_line(b"second\n", false).unwrap();
    assert_eq!(s.read("ember.log"), "first\nsecond\n");
    let mode = fs::metadata(s.dir.path().join("logs/ember.log")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // Reopening appends; world-readable changes the mode of the existing file.
    let mut again = s.open("log-file-world-readable yes\n");
    again.write_line(b"third\n", false).unwrap();
    assert_eq!(s.read("ember.log"), "first\nsecond\nthird\n");
    let mode = fs::metadata(s.dir.path().join("logs/ember.log")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn midnight_moves_the_days_lines_aside_and_keeps_log_rotate_files() {
    let s = Story::new();
    let mut log = s.open("log-rotate 2\n");
    log.write_line(b"day 0\n", false).unwrap();
    for day in 1..=3 {
        s.now.fetch_add(DAY, Ordering::Relaxed);
        log.write_line(format!("day {day}\n").as_bytes(), false).unwrap();
    }
    assert_eq!(s.read("ember.log"), "day 3\n");
    assert_eq!(s.read("ember.log.1"), "day 2\n");
    assert_eq!(s.read("ember.log.2"), "day 1\n");
    assert!(!s.exists("ember.log.3"), "only log-rotate files are kept");
    // Within a day nothing moves.
    s.now.fetch_add(60, Ordering::Relaxed);
    log.write_line(b"day 3 later\n", false).unwrap();
    assert_eq!(s.read("ember.log"), "day 3\nday 3 later\n");
}

#[test]
fn without_auto_rotation_only_a_command_rotates() {
    let s = Story::new();
    let mut log = s.open("log-auto-rotation no\n");
    log.write_line(b"one\n", false).unwrap();
    s.now.fetch_add(3 * DAY, Ordering::Relaxed);
    log.write_line(b"two\n", false).unwrap();
    assert_eq!(s.read("ember.log"), "one\ntwo\n");
    assert!(!s.exists("ember.log.1"));
    let moved = log.rotate().unwrap().unwrap();
    assert!(moved.ends_with("ember.log.1"));
    assert_eq!(s.read("ember.log.1"), "one\ntwo\n");
    assert_eq!(s.read("ember.log"), "");
    // An empty log is not rotated (no empty FILE.1 pushing real days out).
    assert_eq!(log.rotate().unwrap(), None);
    assert_eq!(s.read("ember.log.1"), "one\ntwo\n");
}

#[test]
fn log_rotate_zero_keeps_no_old_lines() {
    let s = Story::new();
    let mut log = s.open("log-rotate 0\n");
    log.write_line(b"gone\n", false).unwrap();
    assert_eq!(log.rotate().unwrap(), None);
    log.write_line(b"kept\n", false).unwrap();
    assert_eq!(s.read("ember.log"), "kept\n");
    assert!(!s.exists("ember.log.1"));
}

#[test]
fn colour_codes_stay_out_of_files() {
    assert_eq!(without_colour(b"\x1b[2m2026\x1b[0m \x1b[32m INFO\x1b[0m ready\n"), b"2026  INFO ready\n");
    // A lone escape that starts no colour code is kept.
    assert_eq!(without_colour(b"a\x1bb\n"), b"a\x1bb\n");
    let s = Story::new();
    let mut log = s.open("");
    log.write_line(b"\x1b[32mgreen\x1b[0m\n", true).unwrap();
    assert_eq!(s.read("ember.log"), "green\n");
}

#[test]
fn an_unwritable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("file"), "").unwrap();
    let text = format!("log-file {}/file/ember.log\n", dir.path().display());
    let loaded = load_str("t.conf", &text, dir.path(), FileCheck::Warn);
    let err = prepare(&loaded.config).err().expect("a file is not a directory").to_string();
    assert!(err.contains("file/ember.log") && err.contains("cannot create its directory"), "{err}");
}

#[test]
fn no_log_file_means_stderr() {
    let loaded = load_str("t.conf", "host-name a.example\n", Path::new("/"), FileCheck::Warn);
    assert!(LogSettings::from_config(&loaded.config).is_none());
    assert!(prepare(&loaded.config).unwrap().path().is_none());
}

#[test]
fn a_file_moved_away_by_logrotate_is_reopened_not_rotated_again() {
    let s = Story::new();
    let mut log = s.open("");
    log.write_line(b"before\n", false).unwrap();
    let logs = s.dir.path().join("logs");
    fs::rename(logs.join("ember.log"), logs.join("ember.log-20261129")).unwrap();
    // Until told, lines follow the open file, as they would for any daemon.
    log.write_line(b"still there\n", false).unwrap();
    assert_eq!(log.rotate().unwrap(), None, "nothing of ours was renamed");
    log.write_line(b"after\n", false).unwrap();
    assert_eq!(s.read("ember.log-20261129"), "before\nstill there\n");
    assert_eq!(s.read("ember.log"), "after\n");
    assert!(!s.exists("ember.log.1"));
}

#[test]
fn the_writer_keeps_order_and_says_where_it_dropped_lines() {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink_out = Arc::clone(&out);
    let mut first = true;
    let writer = Writer::start(4, move |batch: &[u8]| {
        if std::mem::take(&mut first) {
            // The first batch stands for a disk that stalls: the channel fills up meanwhile.
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }
        sink_out.lock().unwrap().extend_from_slice(batch);
    });
    writer.line(b"0\n");
    entered.recv().unwrap();
    // Four lines fill the channel; the three after them are dropped, and logging them does not
    // wait for the stalled writer.
    for n in 1..=7 {
        writer.line(format!("{n}\n").as_bytes());
    }
    release.send(()).unwrap();
    // Once the writer has caught up, the next line gets through and carries the count.
    writer.flush();
    writer.line(b"8\n");
    writer.flush();
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text, "0\n1\n2\n3\n4\nember: 3 log lines dropped here: the log writer fell behind\n8\n",
        "lines in order, the gap counted where it is"
    );
}
