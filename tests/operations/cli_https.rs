//! The CLI against a management API served over HTTPS (`http-tls-certificate`): with the
//! certificate's CA given by `--mgmt-ca`, through `--mgmt https://…` and through `--config`;
//! a wrong CA, or plain HTTP to a port that redirects to HTTPS, fails with a message that says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{config, inject, mgmt, until};
use crate::support::peers::free_port;
use crate::support::{EMBER, Ember};

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ember failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "ember succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ember ARGS --mgmt-ca CA` with no API key from the environment.
fn ember(args: &[&str], ca: &Path) -> Output {
    Command::new(EMBER).args(args).arg("--mgmt-ca").arg(ca).env_remove("EMBER_API_KEY").output().unwrap()
}

/// A daemon whose management port (fixed, so that `--config` finds it) speaks HTTPS with a
/// self-signed certificate for `localhost`; its certificate (as a CA file) and another one.
fn start() -> (Ember, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("mgmt.pem"), format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem())).unwrap();
    let (ca, other) = (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"));
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&other, stranger.cert.pem()).unwrap();
    let port = free_port("127.0.0.1");
    let conf = config("operator", "http-tls-certificate mgmt.pem\nhttp-redirect-to-https yes\n")
        .replace("http-mgmt-port 127.0.0.1:0", &format!("http-mgmt-port 127.0.0.1:{port}"));
    (Ember::start_in(dir, &conf), ca, other)
}

#[test]
fn cli_commands_over_https_with_the_ca_of_mgmt_ca() {
    let (e, ca, _) = start();
    let url = format!("https://localhost:{}", mgmt(&e).port());
    inject(&e, "x@held.example", &[]);
    let queues = until("the queue over https", || {
        let out = ember(&["show", "queues", "--json", "--mgmt", &url], &ca);
        let v: serde_json::Value = serde_json::from_str(&ok(&out)).ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    });
    assert_eq!(queues[0]["queue"], "held.example/{default}");
    // A POST, and the suppression commands (their own text bodies) over the same client.
    assert!(ok(&ember(&["pause", "queue", "held.example", "--mgmt", &url], &ca)).contains("1 queue changed"));
    assert!(ok(&ember(&["suppression", "add", "a@tls.example", "--mgmt", &url], &ca)).contains("added 1 of 1"));
    let export = ok(&ember(&["suppression", "export", "--mgmt", &url], &ca));
    assert_eq!(export.trim(), "a@tls.example");
    // --config: the configuration's http-tls-certificate makes the CLI use https://localhost:PORT.
    let config = e.config.to_str().unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&ok(&ember(&["show", "status", "--json", "--config", config], &ca))).unwrap();
    assert_eq!(status["queue"]["smtp"]["rcp"], 1, "{status}");
}

#[test]
fn a_wrong_ca_or_plain_http_to_an_https_port_is_a_clear_error() {
    let (e, _, other) = start();
    let port = mgmt(&e).port();
    let url = format!("https://localhost:{port}");
    let untrusted = failed(&ember(&["show", "status", "--mgmt", &url], &other));
    assert!(untrusted.contains(&format!("the daemon's certificate at {url} is not trusted")), "{untrusted}");
    assert!(untrusted.contains("--mgmt-ca"), "{untrusted}");
    // The suppression commands fail the same way (and do not fall back to the journal: the
    // daemon holds it).
    let suppression = failed(&ember(&["suppression", "check", "a@tls.example", "--mgmt", &url], &other));
    assert!(suppression.contains("is not trusted"), "{suppression}");
    // Plain HTTP is redirected by the daemon; the CLI says where to go instead of following.
    let plain = failed(&ember(&["show", "status", "--mgmt", &format!("http://127.0.0.1:{port}")], &other));
    assert!(plain.contains(&format!("redirects to https://127.0.0.1:{port}/api/v1/status")), "{plain}");
    assert!(plain.contains(&format!("use --mgmt https://127.0.0.1:{port}")), "{plain}");
}
