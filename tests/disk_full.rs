//! Disk full during reception: the spool is a 16 MiB tmpfs; another process fills it to the
//! last megabyte while a feeder injects 256 KiB messages. Writes then fail with ENOSPC: Ember
//! answers `452 4.3.1` (not a generic 451), the spool stays consistent (a restart after SIGKILL
//! recovers every acknowledged message and quarantines nothing), and acceptance resumes as soon
//! as space returns. (The `min-free-space` floor, which refuses before the disk is full, is
//! covered in tests/ingress.rs.)
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test says so and passes vacuously.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Ember;

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Injects `count` messages of `kib` KiB over one connection, tagged `tag`; stops at the first
/// refusal. Returns the acknowledged senders and the refusal, if any.
fn inject(e: &Ember, tag: &str, count: usize, kib: usize) -> (Vec<String>, Option<String>) {
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
tag, count, kib = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
filler = ("y" * 1022 + "\r\n") * kib
s = smtplib.SMTP(host, int(port), timeout=60)
for i in range(count):
    sender = "%s%d@full.test" % (tag, i)
    try:
        s.sendmail(sender, ["r@example.com"], "From: %s\r\nSubject: %d\r\n\r\n%s" % (sender, i, filler))
        print("ok " + sender, flush=True)
    except smtplib.SMTPResponseException as r:
        print("refused %d %s" % (r.smtp_code, r.smtp_error.decode()), flush=True)
        break
s.quit()
"#;
    let out = crate::support::python(script, &[e.smtp().to_string(), tag.into(), count.to_string(), kib.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let acked = stdout.lines().filter_map(|l| l.strip_prefix("ok ")).map(str::to_string).collect();
    let refused = stdout.lines().find_map(|l| l.strip_prefix("refused ")).map(str::to_string);
    (acked, refused)
}

/// Fills the file system at `dir` with one file, leaving about `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let st = rustix::fs::statvfs(dir).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let path = dir.join("filler");
    let size = free.saturating_sub(leave);
    // Written, not fallocated: tmpfs counts written pages.
    std::fs::write(&path, vec![0u8; size as usize]).unwrap();
    path
}

#[test]
fn a_full_spool_disk_answers_452_keeps_the_spool_whole_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let _tmpfs = match Tmpfs::mount(&spool, "16m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs for the spool ({why}); this test needs root");
            return;
        }
    };
    // No min-free-space: the writes themselves hit ENOSPC. Delivery is held (nowhere to go).
    let mut e = Ember::start_in(
        dir,
        "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n",
    );
    let (before, refused) = inject(&e, "before", 4, 256);
    assert_eq!((before.len(), refused), (4, None));

    // Someone else fills the disk to its last megabyte; the feeder keeps going.
    let filler = fill(&spool, 1 << 20);
    let (during, refused) = inject(&e, "during", 20, 256);
    let refused = refused.expect("a refusal once the disk is full");
    assert!(refused.starts_with("452 4.3.1"), "{refused}");
    assert!(during.len() <= 4, "{} messages of 256 KiB fit in about 1 MiB", during.len());
    e.wait_log("No space left on device");

    // Space returns: acceptance resumes at once, no restart needed.
    std::fs::remove_file(&filler).unwrap();
    let (after, refused) = inject(&e, "after", 4, 256);
    assert_eq!((after.len(), refused), (4, None));

    // The spool is whole: a SIGKILL and a restart recover every acknowledged message.
    e.kill9();
    e.launch();
    let spooled: Vec<String> = e.spooled().iter().map(|m| m["sender"].as_str().unwrap().to_string()).collect();
    for sender in before.iter().chain(&during).chain(&after) {
        assert!(spooled.contains(sender), "{sender} was acknowledged and is not in the spool: {spooled:?}");
    }
    assert_eq!(spooled.len(), before.len() + during.len() + after.len(), "{spooled:?}");
    let log = e.stderr.lock().unwrap().clone();
    let recovered = log.iter().rev().find(|l| l.contains("spool recovered")).expect("a recovery line");
    assert!(recovered.contains("quarantined=0"), "recovery found damage: {recovered}");
    assert!(!log.iter().any(|l| l.contains("torn tail")), "a torn write was left behind: {log:?}");
    e.stop();
}
