//! A `<acct-file |COMMAND>` output: the command is started with `/bin/sh -c`, fed the header
//! line, then the records on its standard input, for a real-time feed.
//!
//! - `write-timeout` (default 1m): a write the command does not take within this time (it stopped
//!   reading) fails the pipe.
//! - `retry-interval` (default 5m): after a failure (write error, timeout, the command exited)
//!   the command is stopped (killed if it still runs) and started again this long after; the
//!   new instance gets the header line first. Records that arrive while it is down are lost
//!   (counted in `/metrics`), as accounting never holds up delivery.
//!
//! Runs on the output's writer thread.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

use crate::config::settings::Settings;
use crate::config::{Dir, policy};

use super::AcctError;

/// The pipe options of an `<acct-file |COMMAND>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PipeOptions {
    pub write_timeout: Duration,
    pub retry_interval: Duration,
}

impl PipeOptions {
    pub fn from_settings(settings: &Settings) -> PipeOptions {
        PipeOptions {
            write_timeout: policy::interval(settings, Dir::WriteTimeout),
            retry_interval: policy::interval(settings, Dir::RetryInterval),
        }
    }
}

/// A running (or, after a failure, waiting to be restarted) pipe command.
pub(super) struct PipeSink {
    command: String,
    header: Vec<u8>,
    options: PipeOptions,
    /// The running command and its standard input; `None` while down.
    running: Option<(Child, ChildStdin)>,
    /// When a failed command may be started again.
    restart_at: Option<Instant>,
}

impl PipeSink {
    /// Starts the command (an error starting it refuses the configuration).
    pub fn start(command: &str, header: &[u8], options: PipeOptions) -> Result<PipeSink, AcctError> {
        let mut sink = PipeSink {
            command: command.to_string(),
            header: header.to_vec(),
            options,
            running: None,
            restart_at: None,
        };
        sink.launch()?;
        Ok(sink)
    }

    fn launch(&mut self) -> Result<(), AcctError> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|source| AcctError::PipeStart { command: self.command.clone(), source })?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AcctError::PipeStdin { command: self.command.clone() });
        };
        // Non-blocking, so a write can give up after write-timeout.
        let nonblocking = fcntl_getfl(stdin.as_fd()).and_then(|f| fcntl_setfl(stdin.as_fd(), f | OFlags::NONBLOCK));
        if let Err(e) = nonblocking {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AcctError::PipeStart { command: self.command.clone(), source: e.into() });
        }
        self.running = Some((child, stdin));
        self.restart_at = None;
        let header = self.header.clone();
        if self.send(&header) { Ok(()) } else { Err(AcctError::PipeHeader { command: self.command.clone() }) }
    }

    /// Restarts a failed command once `retry-interval` has passed.
    pub fn tick(&mut self) {
        if self.running.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            match self.launch() {
                Ok(()) => tracing::info!("accounting: \"{}\" restarted", self.command),
                // The header could not be written: `send` has already stopped it again.
                Err(_) if self.restart_at.is_some_and(|t| t > Instant::now()) => {}
                Err(e) => self.failed(&e),
            }
        }
    }

    /// Whether the rows were written.
    pub fn write(&mut self, rows: &[u8]) -> bool {
        self.tick();
        self.running.is_some() && self.send(rows)
    }

    /// Writes everything within `write-timeout`, else fails the pipe.
    fn send(&mut self, mut bytes: &[u8]) -> bool {
        let deadline = Instant::now() + self.options.write_timeout;
        let result = loop {
            let Some((_, stdin)) = self.running.as_mut() else { return false };
            if bytes.is_empty() {
                break Ok(());
            }
            match stdin.write(bytes) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let timeout = self.options.write_timeout.as_secs();
                        break Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the command took nothing for {timeout}s (write-timeout)"),
                        ));
                    }
                    let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
                    let mut fds = [PollFd::new(stdin, PollFlags::OUT)];
                    if let Err(e) = poll(&mut fds, Some(&timeout))
                        && e != rustix::io::Errno::INTR
                    {
                        break Err(e.into());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                self.failed(&format!("Error writing to \"{}\": {e}", self.command));
                false
            }
        }
    }

    /// Stops the command and schedules the restart.
    fn failed(&mut self, why: &dyn std::fmt::Display) {
        let retry = self.options.retry_interval;
        tracing::error!("accounting: {why}; records are lost until the command is restarted in {}s", retry.as_secs());
        if let Some((mut child, stdin)) = self.running.take() {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.restart_at = Some(Instant::now() + retry);
    }

    /// Closes the command's input and waits for it to finish.
    pub fn close(mut self) {
        if let Some((mut child, stdin)) = self.running.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(write_timeout_ms: u64, retry_ms: u64) -> PipeOptions {
        PipeOptions {
            write_timeout: Duration::from_millis(write_timeout_ms),
            retry_interval: Duration::from_millis(retry_ms),
        }
    }

    fn lines(path: &std::path::Path) -> usize {
        std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
    }

    /// Calls `step` until `done`, failing after 10 seconds.
    fn until(what: &str, mut step: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !step() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn options_come_from_the_acct_file_block() {
        let dir = tempfile::tempdir().unwrap();
        let text = "<acct-file \"|cat\">\n write-timeout 10s\n retry-interval 2m\n</acct-file>\n<acct-file |true>\n</acct-file>\n";
        let loaded = crate::config::load_str("p.conf", text, dir.path(), crate::config::FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.sorted());
        let blocks: Vec<_> = loaded.config.blocks_of("acct-file").collect();
        assert_eq!(PipeOptions::from_settings(&blocks[0].settings), options(10_000, 120_000));
        assert_eq!(PipeOptions::from_settings(&blocks[1].settings), options(60_000, 300_000));
    }

    #[test]
    fn a_command_that_exits_is_started_again_after_retry_interval_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Each instance takes one line (the header) and exits.
        let command = format!("read line; echo \"$line\" >> {}", out.display());
        let mut sink = PipeSink::start(&command, b"type,rcpt\n", options(5_000, 200)).unwrap();
        until("the first header", || lines(&out) == 1);
        until("a write error once the command is gone", || !sink.write(b"d,a@x\n"));
        assert!(sink.running.is_none());
        let failed_at = Instant::now();
        until("the restart", || {
            sink.tick();
            lines(&out) == 2
        });
        assert!(failed_at.elapsed() >= Duration::from_millis(200), "not before retry-interval");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "type,rcpt\ntype,rcpt\n");
        sink.close();
    }

    #[test]
    fn a_command_that_stops_reading_fails_after_write_timeout_and_is_killed() {
        let mut sink = PipeSink::start("exec sleep 60", b"h\n", options(300, 60_000)).unwrap();
        let pid = sink.running.as_ref().unwrap().0.id();
        let started = Instant::now();
        // More than any pipe buffer holds.
        assert!(!sink.write(&vec![b'x'; 4 << 20]));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{took:?}");
        assert!(sink.running.is_none());
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the command was killed and reaped");
        // Down until retry-interval: records are refused at once.
        let started = Instant::now();
        assert!(!sink.write(b"d\n"));
        assert!(started.elapsed() < Duration::from_millis(100));
        sink.close();
    }
}
