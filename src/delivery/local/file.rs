//! `type file`: writing one recipient's copy of a message to disk in one of PowerMTA's
//! `file-format`s.
//!
//! - `newfile-plain`: `file-destination` names a directory; each copy is a new file holding the
//!   message.
//! - `newfile-pickup`: the same, with `x-sender:`/`x-receiver:` (and `x-envid:`, `x-job:`) lines
//!   first: the format a pickup directory reads, so the file can be injected again.
//! - `append-mbox`: `file-destination` names a file; each copy is appended in mboxrd form
//!   (`From ` line, `>From ` quoting) under an exclusive `flock`, as mail readers expect.
//!
//! New files are written under a hidden temporary name and renamed when complete, so a pickup
//! directory never sees half a message. Lines end in LF: these are local Unix files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `file-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    NewfilePlain,
    NewfilePickup,
    AppendMbox,
}

impl FileFormat {
    pub fn parse(word: &str) -> Option<FileFormat> {
        match word {
            "newfile-plain" => Some(FileFormat::NewfilePlain),
            "newfile-pickup" => Some(FileFormat::NewfilePickup),
            "append-mbox" => Some(FileFormat::AppendMbox),
            _ => None,
        }
    }
}

/// The envelope of one copy.
pub struct Copy<'a> {
    pub sender: &'a str,
    pub rcpt: &'a str,
    pub env_id: &'a str,
    pub job_id: &'a str,
    /// The message with CRLF line endings.
    pub body: &'a [u8],
    /// Unix seconds, for the mbox `From ` line.
    pub now: u64,
    /// Unique among the copies Ember writes: names a new file.
    pub unique: &'a str,
}

/// Writes `copy` to `destination` (a directory for the `newfile` formats, a file for
/// `append-mbox`); missing directories are created. Returns the file written.
pub fn write(format: FileFormat, destination: &Path, copy: &Copy<'_>) -> std::io::Result<PathBuf> {
    match format {
        FileFormat::AppendMbox => {
            if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            append_mbox(destination, copy)?;
            Ok(destination.to_path_buf())
        }
        FileFormat::NewfilePlain | FileFormat::NewfilePickup => {
            std::fs::create_dir_all(destination)?;
            let mut content = Vec::with_capacity(copy.body.len() + 256);
            if format == FileFormat::NewfilePickup {
                content.extend_from_slice(pickup_lines(copy).as_bytes());
            }
            content.extend_from_slice(&to_lf(copy.body));
            let name = format!("{}.eml", copy.unique);
            let tmp = destination.join(format!(".{name}.tmp"));
            let path = destination.join(name);
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&content)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            Ok(path)
        }
    }
}

/// The `x-` lines a pickup directory reads before the message.
fn pickup_lines(copy: &Copy<'_>) -> String {
    let mut s = format!("x-sender: <{}>\nx-receiver: <{}>\n", copy.sender, copy.rcpt);
    if !copy.env_id.is_empty() {
        s.push_str(&format!("x-envid: {}\n", copy.env_id));
    }
    if !copy.job_id.is_empty() {
        s.push_str(&format!("x-job: {}\n", copy.job_id));
    }
    s
}

/// The message with LF line endings, as local files and programs hold mail.
pub fn to_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for (i, &b) in body.iter().enumerate() {
        if !(b == b'\r' && body.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// One mboxrd entry: the `From ` line, the message with every `>*From ` line quoted once more,
/// and the blank line that separates entries.
pub fn mbox_entry(copy: &Copy<'_>) -> Vec<u8> {
    let sender = if copy.sender.is_empty() { "MAILER-DAEMON" } else { copy.sender };
    let mut out = format!("From {sender} {}\n", crate::time::asctime(copy.now)).into_bytes();
    let body = to_lf(copy.body);
    for line in body.split_inclusive(|&b| b == b'\n') {
        let unquoted = line.iter().position(|&b| b != b'>').map_or(&[][..], |p| &line[p..]);
        if unquoted.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

fn append_mbox(path: &Path, copy: &Copy<'_>) -> std::io::Result<()> {
    let entry = mbox_entry(copy);
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    // Mail readers and local delivery agents lock the mailbox with flock; so does Ember, which
    // also keeps two of its own connections from interleaving their copies.
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
    let before = f.metadata()?.len();
    let result = f.write_all(&entry).and_then(|()| f.sync_data());
    if result.is_err() {
        // A partial entry would corrupt the mailbox for every later reader: cut it off.
        let _ = f.set_len(before);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy<'a>(body: &'a [u8], unique: &'a str) -> Copy<'a> {
        Copy { sender: "s@ex.com", rcpt: "r@ex.org", env_id: "E1", job_id: "J1", body, now: 1_549_662_845, unique }
    }

    #[test]
    fn newfile_pickup_writes_a_file_the_pickup_directory_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/dir");
        let path = write(FileFormat::NewfilePickup, &dest, &copy(b"Subject: hi\r\n\r\nbody\r\n", "m1")).unwrap();
        assert_eq!(path, dest.join("m1.eml"));
        let parsed = crate::ingress::pickup::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(parsed.sender, "s@ex.com");
        assert_eq!(parsed.recipients, vec!["r@ex.org".to_string()]);
        assert_eq!(parsed.env_id.as_deref(), Some("E1"));
        assert_eq!(parsed.job_id.as_deref(), Some("J1"));
        assert_eq!(parsed.message, b"Subject: hi\r\n\r\nbody\r\n");
        // Nothing else is left in the directory: no temporary file.
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[test]
    fn newfile_plain_is_just_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(FileFormat::NewfilePlain, dir.path(), &copy(b"Subject: hi\r\n\r\nbody\r\n", "m2")).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"Subject: hi\n\nbody\n");
    }

    #[test]
    fn append_mbox_appends_quoted_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("mail/r");
        write(FileFormat::AppendMbox, &mbox, &copy(b"Subject: a\r\n\r\nFrom here\r\n>From there\r\n", "x")).unwrap();
        let second = Copy { sender: "", ..copy(b"Subject: b\r\n\r\nno newline", "y") };
        write(FileFormat::AppendMbox, &mbox, &second).unwrap();
        let text = String::from_utf8(std::fs::read(&mbox).unwrap()).unwrap();
        assert_eq!(
            text,
            "From s@ex.com Fri Feb  8 21:54:05 2019\nSubject: a\n\n>From here\n>>From there\n\n\
             From MAILER-DAEMON Fri Feb  8 21:54:05 2019\nSubject: b\n\nno newline\n\n"
        );
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(FileFormat::parse("append-mbox"), Some(FileFormat::AppendMbox));
        assert_eq!(FileFormat::parse("mbox"), None);
    }
}
