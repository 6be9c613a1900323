//! `run-as-root no`: after the listening sockets are bound (ports below 1024 need root), the
//! daemon gives up root for good and runs as the owner of its first spool directory, the one
//! place it must be able to write. No `run-as-user` directive exists in PowerMTA, so the spool's
//! owner is the operator's statement of which user Ember runs as; a spool owned by root (or
//! missing) is refused rather than guessed at.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::{Config, Dir};

/// Why privileges could not be given up; the daemon does not start then.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error(
        "run-as-root no: cannot read the owner of the spool directory {dir}: {source} (create it, owned by the user Ember should run as)"
    )]
    NoSpool { dir: String, source: std::io::Error },
    #[error(
        "run-as-root no: the spool directory {dir} is owned by root; chown it to the user Ember should run as (or say run-as-root yes)"
    )]
    RootOwned { dir: String },
    #[error("run-as-root no: {call} failed: {source}")]
    Call { call: &'static str, source: std::io::Error },
    #[error("run-as-root no: root privileges could be regained after switching to uid {uid}; refusing to run")]
    NotDropped { uid: u32 },
}

/// The user and group to run as: the owner of `spool_dir`.
pub fn target(spool_dir: &Path) -> Result<(u32, u32), DropError> {
    let dir = spool_dir.display().to_string();
    let meta = std::fs::metadata(spool_dir).map_err(|source| DropError::NoSpool { dir: dir.clone(), source })?;
    if meta.uid() == 0 {
        return Err(DropError::RootOwned { dir });
    }
    Ok((meta.uid(), meta.gid()))
}

/// Gives up root when the configuration says `run-as-root no` and the process is root; returns
/// the user and group it now runs as. Does nothing when `run-as-root yes` (PowerMTA's default) or
/// when Ember was started unprivileged.
pub fn drop_if_asked(config: &Config, spool_dir: &Path) -> Result<Option<(u32, u32)>, DropError> {
    if config.global.flag(Dir::RunAsRoot) || !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let (uid, gid) = target(spool_dir)?;
    let check = |call: &'static str, rc: libc::c_int| {
        if rc == 0 { Ok(()) } else { Err(DropError::Call { call, source: std::io::Error::last_os_error() }) }
    };
    let groups = [gid as libc::gid_t];
    // SAFETY: plain system calls with a valid pointer to one group id. glibc applies setgid and
    // setuid to every thread of the process (the runtime's threads already exist), which is why
    // these are the libc wrappers and not the raw per-thread system calls.
    unsafe {
        check("setgroups", libc::setgroups(1, groups.as_ptr()))?;
        check("setgid", libc::setgid(gid as libc::gid_t))?;
        check("setuid", libc::setuid(uid as libc::uid_t))?;
    }
    // setuid from root to another user is permanent; make sure of it.
    // SAFETY: a system call without pointers; it must fail now.
    if unsafe { libc::setuid(0) } == 0 || rustix::process::geteuid().as_raw() != uid {
        return Err(DropError::NotDropped { uid });
    }
    Ok(Some((uid, gid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_owner_is_the_user_and_root_or_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let me = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        match target(dir.path()) {
            Ok(owner) => assert_eq!(owner, me),
            Err(e) => {
                assert_eq!(me.0, 0, "only a root-owned directory is refused: {e}");
                assert!(e.to_string().contains("is owned by root"), "{e}");
            }
        }
        let err = target(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, DropError::NoSpool { .. }) && err.to_string().contains("missing"), "{err}");
    }
}
