//! `ember run`: the daemon starts on the embedded default or a given file, says where it listens,
//! refuses configs that are broken or need missing files, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const EMBER: &str = env!("CARGO_BIN_EXE_ember");

/// Starts `ember run` in `dir` and collects its stdout lines until it reports ready.
fn start(dir: &Path, args: &[&str]) -> (Child, Vec<String>, mpsc::Receiver<String>) {
    let (child, lines, rx, _) = start_with_stderr(dir, args);
    (child, lines, rx)
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Like `start`, also handing back the stderr lines.
fn start_with_stderr(
    dir: &Path,
    args: &[&str],
) -> (Child, Vec<String>, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(EMBER)
        .arg("run")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ember");
    let rx = lines_of(child.stdout.take().unwrap());
    let errors = lines_of(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    loop {
        // The ready line is the event we wait for; the timeout only bounds a hung test.
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let ready = line.starts_with("ember ready");
                lines.push(line);
                if ready {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let stderr: Vec<String> = errors.try_iter().collect();
                panic!("ember did not get ready ({e}): {lines:?}\n{stderr:?}");
            }
        }
    }
    (child, lines, rx, errors)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

#[test]
fn runs_on_the_embedded_default_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, rx) = start(dir.path(), &[]);
    assert!(lines.iter().any(|l| l == "smtp listener 127.0.0.1:2525"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "management http 127.0.0.1:8080"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("<embedded default>")), "{lines:?}");
    // The daemon owns ./ember-data: spool and log directories exist once it is up.
    assert!(dir.path().join("ember-data/spool").is_dir());
    assert!(dir.path().join("ember-data/log").is_dir());
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let rest: Vec<String> = rx.iter().collect();
    assert!(rest.iter().any(|l| l == "ember stopping"), "{rest:?}");
}

/// The SIZE a new session is offered, read from EHLO.
fn ehlo_size(lines: &[String]) -> String {
    use std::io::{Read, Write};
    let addr = lines.iter().find_map(|l| l.strip_prefix("smtp listener ")).unwrap().split_whitespace().next().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"EHLO t.example\r\nQUIT\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines().find_map(|l| l.strip_prefix("250-SIZE ")).unwrap_or("none").to_string()
}

#[test]
fn sighup_reloads_and_a_broken_reload_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ember.conf");
    let base = "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\n<spool spool>\n</spool>\n";
    std::fs::write(&conf, format!("{base}<source 127.0.0.1>\n max-message-size 2M\n</source>\n")).unwrap();
    let (child, lines, rx, errors) = start_with_stderr(dir.path(), &["--config", conf.to_str().unwrap()]);
    assert_eq!(ehlo_size(&lines), "2097152");

    std::fs::write(&conf, format!("{base}<source 127.0.0.1>\n max-message-size 1M\n</source>\n")).unwrap();
    signal(&child, "HUP");
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line == "configuration reloaded";
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(seen.iter().any(|l| l == "configuration reloaded"), "{seen:?}");
    // New sessions run on the new generation.
    assert_eq!(ehlo_size(&lines), "1048576");

    std::fs::write(&conf, format!("{base}max-smtp-out 5\n")).unwrap();
    signal(&child, "HUP");
    let mut stderr = Vec::new();
    while let Ok(line) = errors.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("reload refused");
        stderr.push(line);
        if done {
            break;
        }
    }
    assert!(
        stderr.iter().any(|l| l.contains("ember.conf:5:1: error: max-smtp-out is not allowed at top level")),
        "{stderr:?}"
    );
    assert!(stderr.iter().any(|l| l.contains("reload refused; the running configuration is unchanged")), "{stderr:?}");
    // The refused file changed nothing.
    assert_eq!(ehlo_size(&lines), "1048576");
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
}

#[test]
fn refuses_to_start_without_a_file_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ember.conf");
    std::fs::write(
        &conf,
        "<spool spool>\n</spool>\n<virtual-mta v1>\n    domain-key s1,example.com,keys/s1.pem\n</virtual-mta>\n",
    )
    .unwrap();
    let out = Command::new(EMBER).args(["run", "--config"]).arg(&conf).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let key = dir.path().join("keys/s1.pem");
    assert!(
        stderr.contains(&format!("ember.conf:4:5: error: domain-key: file {} does not exist", key.display())),
        "{stderr}"
    );

    // check-config only warns: the config may be checked away from its host…
    let out = Command::new(EMBER).arg("check-config").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // …unless --strict asks for the host's view.
    let out = Command::new(EMBER).args(["check-config", "--strict"]).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn refuses_to_start_on_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ember.conf");
    std::fs::write(&conf, "<domain *>\n    max-smtp-ot 5\n</domain>\n").unwrap();
    let out = Command::new(EMBER).args(["run", "--config"]).arg(&conf).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":2:5: error: unknown directive \"max-smtp-ot\" (did you mean \"max-smtp-out\"?)"),
        "{stderr}"
    );
    assert!(!dir.path().join("spool").exists());
}
