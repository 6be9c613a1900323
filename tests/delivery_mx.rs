//! Delivery through real DNS: dnsmasq serves MX records for test domains, and Ember follows
//! them: preference order, the next MX when the first refuses connections, implicit MX (an A
//! record and no MX), null MX (RFC 7505) and NXDOMAIN (with `bounce-upon-no-mx yes`) bounce.

use crate::support::dns;

use crate::support::Ember;
use crate::support::peers::{Receiver, read_acct};
use serde_json::json;

#[test]
fn mx_preference_fallback_implicit_and_null_mx() {
    let dir = tempfile::tempdir().unwrap();
    // Two receivers on the same port, on two loopback addresses, as two MX hosts would be.
    let a = Receiver::start("127.0.0.20", &json!({"hostname": "mx-a"}), dir.path(), None);
    let port = a.addr.port();
    let b = Receiver::start_on(&format!("127.0.0.21:{port}"), &json!({"hostname": "mx-b"}), dir.path(), None);
    let dns = dns::Dnsmasq::start(&[
        "--mx-host=pref.test,mx-b.pref.test,20",
        "--mx-host=pref.test,mx-a.pref.test,10",
        "--host-record=mx-a.pref.test,127.0.0.20",
        "--host-record=mx-b.pref.test,127.0.0.21",
        "--mx-host=fallback.test,dead.fallback.test,10",
        "--mx-host=fallback.test,live.fallback.test,20",
        "--host-record=dead.fallback.test,127.0.0.22",
        "--host-record=live.fallback.test,127.0.0.21",
        "--host-record=implicit.test,127.0.0.20",
        "--mx-host=null.test,.,0",
    ]);
    let config = format!(
        "smtp-listener 127.0.0.1:0\nname-server {}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<domain *>\n    default-smtp-port {port}\n    retry-after 1h\n</domain>\n<domain nosuch.test>\n    bounce-upon-no-mx yes\n</domain>\n<spool spool>\n</spool>\n<acct-file acct.csv>\n    records d,b\n</acct-file>\n",
        dns.addr
    );
    let e = Ember::start(&config);
    for rcpt in ["x@pref.test", "y@fallback.test", "z@implicit.test", "n@null.test", "q@nosuch.test"] {
        // The sender's domain has no MX: its DSNs wait in their queue and do not disturb the count.
        let out = crate::support::swaks(&["--server", &e.smtp().to_string(), "--from", "s@sender.test", "--to", rcpt]);
        assert!(out.status.success());
    }
    e.wait_log_count("delivered ", 3);
    e.wait_log_count("bounced ", 2);
    let to = |r: &Receiver| -> Vec<String> {
        r.events("message").iter().map(|m| m["rcpts"][0].as_str().unwrap().to_string()).collect()
    };
    let mut at_a = to(&a);
    at_a.sort();
    assert_eq!(at_a, ["x@pref.test", "z@implicit.test"], "preference 10 and the implicit MX");
    assert_eq!(to(&b), ["y@fallback.test"], "the second MX after the first refused");
    let (_, rows) = read_acct(&e.path("acct.csv"));
    let bounce = |rcpt: &str| {
        rows.iter()
            .find(|r| r["type"] == "b" && r["rcpt"] == rcpt)
            .cloned()
            .unwrap_or_else(|| panic!("no b record for {rcpt}: {rows:?}"))
    };
    assert!(bounce("n@null.test")["dsnStatus"].starts_with("5.1.10"), "{:?}", bounce("n@null.test"));
    assert!(bounce("q@nosuch.test")["dsnStatus"].starts_with("5.1.2"), "{:?}", bounce("q@nosuch.test"));
    let d = rows.iter().find(|r| r["type"] == "d" && r["rcpt"] == "y@fallback.test").unwrap();
    assert_eq!(d["dlvDestinationIp"], "127.0.0.21");
    assert!(d["dsnMta"].starts_with("live.fallback.test"), "{d:?}");
}
