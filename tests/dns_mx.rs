//! MX resolution against real DNS servers: a dnsmasq serving the records each test gives it, and
//! a scripted responder for what dnsmasq cannot serve (CNAME loops, SERVFAIL, SOA negative TTLs).
//! Needs the `dnsmasq` package.

use crate::support::dns;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use dns::{Dnsmasq, Scripted, ScriptedDns};
use ember::delivery::mx::{MxOptions, MxPlan, MxResolver, PlanSource, ResolveError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;

/// Short timeouts: a dead server is noticed in about a second.
fn options() -> MxOptions {
    MxOptions {
        timeout: Duration::from_millis(300),
        attempts: 1,
        deadline: Duration::from_secs(5),
        ..MxOptions::default()
    }
}

fn resolver(server: SocketAddr) -> MxResolver {
    MxResolver::with_options(&[server], &options()).unwrap()
}

fn names(plan: &MxPlan) -> Vec<&str> {
    plan.hosts.iter().map(|h| h.name.as_str()).collect()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tiers(s: &str) -> Vec<Vec<String>> {
    s.split(';').map(|t| t.split(',').map(|h| h.trim().to_string()).collect()).collect()
}

#[tokio::test]
async fn mx_records_are_tried_in_preference_order() {
    let dns = Dnsmasq::start(&[
        "--mx-host=example.test,mx2.example.test,20",
        "--mx-host=example.test,mx1.example.test,10",
        "--host-record=mx1.example.test,127.0.0.2",
        "--host-record=mx2.example.test,127.0.0.3,::3",
    ]);
    let plan = resolver(dns.addr).plan("example.test", None, 2525).await.unwrap();
    assert_eq!(plan.source, PlanSource::Mx);
    assert_eq!(names(&plan), ["mx1.example.test", "mx2.example.test"]);
    assert_eq!(plan.hosts[0].preference, 10);
    assert_eq!(plan.hosts[0].addrs, [sa("127.0.0.2:2525")]);
    assert_eq!(plan.hosts[1].addrs, [sa("127.0.0.3:2525"), sa("[::3]:2525")]);
}

#[tokio::test]
async fn equal_preferences_are_all_used() {
    let dns = Dnsmasq::start(&[
        "--local-ttl=300",
        "--mx-host=example.test,a.example.test,10",
        "--mx-host=example.test,b.example.test,10",
        "--mx-host=example.test,c.example.test,20",
        "--host-record=a.example.test,127.0.0.2",
        "--host-record=b.example.test,127.0.0.3",
        "--host-record=c.example.test,127.0.0.4",
    ]);
    let r = resolver(dns.addr);
    let mut firsts = HashSet::new();
    for _ in 0..100 {
        let plan = r.plan("example.test", None, 25).await.unwrap();
        assert_eq!(plan.hosts.len(), 3);
        assert_eq!(plan.hosts[2].name, "c.example.test");
        firsts.insert(plan.hosts[0].name.clone());
    }
    assert_eq!(firsts.len(), 2, "{firsts:?}");
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_mx() {
    let dns = Dnsmasq::start(&["--host-record=plain.test,127.0.0.9"]);
    let plan = resolver(dns.addr).plan("plain.test", None, 25).await.unwrap();
    assert_eq!(plan.source, PlanSource::Implicit);
    assert_eq!(names(&plan), ["plain.test"]);
    assert_eq!(plan.hosts[0].addrs, [sa("127.0.0.9:25")]);
}

#[tokio::test]
async fn nxdomain_is_no_such_domain() {
    let dns = Dnsmasq::start(&["--host-record=other.test,127.0.0.9"]);
    let e = resolver(dns.addr).plan("nowhere.test", None, 25).await.unwrap_err();
    assert_eq!(e, ResolveError::NoSuchDomain);
    assert_eq!((e.reply().code, &*e.reply().enhanced), (550, "5.1.2"));
}

#[tokio::test]
async fn a_null_mx_refuses_mail() {
    let dns = Dnsmasq::start(&["--mx-host=null.test,.,0", "--host-record=null.test,127.0.0.9"]);
    let e = resolver(dns.addr).plan("null.test", None, 25).await.unwrap_err();
    assert_eq!(e, ResolveError::NullMx);
    assert_eq!((e.reply().code, &*e.reply().enhanced), (556, "5.1.10"));
}

#[tokio::test]
async fn mx_hosts_without_addresses_are_skipped() {
    let dns = Dnsmasq::start(&[
        "--mx-host=example.test,ghost.example.test,10",
        "--mx-host=example.test,mx.example.test,20",
        "--host-record=mx.example.test,127.0.0.5",
        "--mx-host=dead.test,ghost.example.test,10",
    ]);
    let r = resolver(dns.addr);
    assert_eq!(names(&r.plan("example.test", None, 25).await.unwrap()), ["mx.example.test"]);
    let Err(ResolveError::Temporary(why)) = r.plan("dead.test", None, 25).await else { panic!() };
    assert_eq!(why, "MX hosts have no addresses (ghost.example.test: no such domain)");
}

#[tokio::test]
async fn cnames_are_followed() {
    let dns = Dnsmasq::start(&[
        "--host-record=target.test,127.0.0.7",
        "--cname=alias.test,target.test",
        "--cname=mxalias.test,target.test",
        "--mx-host=viacname.test,mxalias.test,10",
    ]);
    let r = resolver(dns.addr);
    // No MX at alias.test (nor at target.test): the alias's address is used.
    let plan = r.plan("alias.test", None, 25).await.unwrap();
    assert_eq!((plan.source, names(&plan)), (PlanSource::Implicit, vec!["alias.test"]));
    assert_eq!(plan.hosts[0].addrs, [sa("127.0.0.7:25")]);
    // An MX host that is an alias.
    let plan = r.plan("viacname.test", None, 25).await.unwrap();
    assert_eq!(names(&plan), ["mxalias.test"]);
    assert_eq!(plan.hosts[0].addrs, [sa("127.0.0.7:25")]);
}

#[tokio::test]
async fn smtp_hosts_override_the_mx() {
    let dns = Dnsmasq::start(&[
        "--mx-host=example.test,mx.example.test,10",
        "--host-record=mx.example.test,127.0.0.2",
        "--host-record=relay.test,127.0.0.3",
        "--mx-host=relay.test,mx.example.test,10",
        "--mx-host=backup.test,mx.backup.test,10",
        "--host-record=mx.backup.test,127.0.0.4",
    ]);
    let r = resolver(dns.addr);
    let hosts = tiers("[127.0.0.10]:2526,relay.test:587;lookup-mx:backup.test;[IPv6:::1]");
    let plan = r.plan("example.test", Some(&hosts), 25).await.unwrap();
    assert_eq!(plan.source, PlanSource::SmtpHosts);
    let mut tier0: Vec<(String, u16, Vec<SocketAddr>)> =
        plan.hosts[..2].iter().map(|h| (h.name.clone(), h.preference, h.addrs.clone())).collect();
    tier0.sort();
    assert_eq!(
        tier0,
        [
            ("127.0.0.10".to_string(), 0, vec![sa("127.0.0.10:2526")]),
            // A plain host is resolved by address, not by MX.
            ("relay.test".to_string(), 0, vec![sa("127.0.0.3:587")]),
        ]
    );
    assert_eq!((plan.hosts[2].name.as_str(), plan.hosts[2].preference), ("mx.backup.test", 1));
    assert_eq!(plan.hosts[2].addrs, [sa("127.0.0.4:25")]);
    assert_eq!((plan.hosts[3].name.as_str(), &plan.hosts[3].addrs), ("::1", &vec![sa("[::1]:25")]));
    assert_eq!(plan.hosts.len(), 4);
}

#[tokio::test]
async fn a_second_plan_is_answered_from_the_cache() {
    let dns = Dnsmasq::start(&[
        "--local-ttl=300",
        "--mx-host=example.test,mx.example.test,10",
        "--host-record=mx.example.test,127.0.0.2",
    ]);
    let r = resolver(dns.addr);
    r.plan("example.test", None, 25).await.unwrap();
    let first = r.stats();
    // MX of the domain, A and AAAA of its host.
    assert_eq!((first.queries, first.hits, first.cached), (3, 0, 3));
    let plan = r.plan("example.test", None, 25).await.unwrap();
    assert_eq!(plan.hosts[0].addrs, [sa("127.0.0.2:25")]);
    let second = r.stats();
    assert_eq!((second.queries, second.hits, second.cached, second.pending), (3, 3, 3, 0));
}

#[tokio::test]
async fn ttl_zero_answers_are_not_cached() {
    // dnsmasq gives local records TTL 0 unless told otherwise.
    let dns = Dnsmasq::start(&["--mx-host=example.test,mx.example.test,10", "--host-record=mx.example.test,127.0.0.2"]);
    let r = resolver(dns.addr);
    r.plan("example.test", None, 25).await.unwrap();
    r.plan("example.test", None, 25).await.unwrap();
    // The MX and A answers are asked again; "no AAAA" (no SOA) is kept as a negative answer.
    assert_eq!(r.stats().queries, 5);
}

#[tokio::test]
async fn concurrent_plans_share_one_lookup() {
    let dns = Dnsmasq::start(&[
        "--local-ttl=300",
        "--mx-host=example.test,mx.example.test,10",
        "--host-record=mx.example.test,127.0.0.2",
    ]);
    let r = resolver(dns.addr);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.plan("example.test", None, 25).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(names(&t.await.unwrap().unwrap()), ["mx.example.test"]);
    }
    assert_eq!(r.stats().queries, 3);
}

/// `lookup`, which must end by itself: a minute is far beyond any timeout the resolver uses.
async fn no_hang<T>(lookup: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), lookup).await.expect("the lookup hung")
}

#[tokio::test]
async fn a_stopped_server_is_a_temporary_failure() {
    let mut dns = Dnsmasq::start(&["--mx-host=example.test,mx.example.test,10"]);
    let r = resolver(dns.addr);
    dns.stop();
    // A deadline against a hang, not a measurement: the resolver's own timeouts end the lookup.
    let e = no_hang(r.plan("example.test", None, 25)).await.unwrap_err();
    let ResolveError::Temporary(why) = &e else { panic!("{e:?}") };
    assert!(why.starts_with("MX lookup for example.test: "), "{why}");
    assert_eq!((e.reply().code, &*e.reply().enhanced), (451, "4.4.3"));
}

#[tokio::test]
async fn a_dead_name_server_among_two_costs_a_retry_not_a_failure() {
    let records =
        ["--local-ttl=0", "--mx-host=example.test,mx.example.test,10", "--host-record=mx.example.test,127.0.0.2"];
    let alive = Dnsmasq::start(&records);
    let mut dead = Dnsmasq::start(&records);
    dead.stop();
    let r = MxResolver::with_options(&[dead.addr, alive.addr], &MxOptions { attempts: 2, ..options() }).unwrap();
    for _ in 0..4 {
        assert_eq!(names(&r.plan("example.test", None, 25).await.unwrap()), ["mx.example.test"]);
    }
}

#[tokio::test]
async fn servfail_is_temporary() {
    let dns = ScriptedDns::start(|_, _| Scripted::code(ResponseCode::ServFail));
    let e = resolver(dns.addr).plan("example.test", None, 25).await.unwrap_err();
    assert_eq!(e, ResolveError::Temporary("MX lookup for example.test: server failure (SERVFAIL)".into()));
}

#[tokio::test]
async fn a_cname_loop_is_an_error_not_a_hang() {
    let dns = ScriptedDns::start(|name, _| match name {
        "loop1.test" => Scripted::records(vec![dns::cname("loop1.test", "loop2.test", 60)]),
        "loop2.test" => Scripted::records(vec![dns::cname("loop2.test", "loop1.test", 60)]),
        "self.test" => Scripted::records(vec![dns::cname("self.test", "self.test", 60)]),
        _ => Scripted::code(ResponseCode::NXDomain),
    });
    let r = resolver(dns.addr);
    for domain in ["loop1.test", "self.test"] {
        let e = no_hang(r.plan(domain, None, 25)).await.unwrap_err();
        let ResolveError::Temporary(why) = &e else { panic!("{domain}: {e:?}") };
        assert!(why.contains("CNAME chain from") && why.contains("does not end"), "{why}");
    }
}

#[tokio::test]
async fn negative_answers_are_kept_for_the_soa_minimum() {
    let dns = ScriptedDns::start(|name, rtype| match (name, rtype) {
        ("soa0.test", _) => Scripted::nxdomain_with_soa("test", 0),
        ("soa60.test", _) => Scripted::nxdomain_with_soa("test", 60),
        ("nosoa.test", _) => Scripted::code(ResponseCode::NXDomain),
        ("mx.example.test", RecordType::A) => Scripted::records(vec![dns::a("mx.example.test", "127.0.0.2", 60)]),
        ("mx.example.test", RecordType::AAAA) => Scripted::records(vec![dns::aaaa("mx.example.test", "::2", 60)]),
        ("example.test", RecordType::MX) => Scripted::records(vec![dns::mx("example.test", 10, "mx.example.test", 60)]),
        _ => Scripted::code(ResponseCode::Refused),
    });
    let r = resolver(dns.addr);
    for domain in ["soa0.test", "soa60.test", "nosoa.test"] {
        assert_eq!(r.plan(domain, None, 25).await, Err(ResolveError::NoSuchDomain));
    }
    // soa0 is not kept; soa60 and nosoa (default negative TTL) are.
    assert_eq!(r.stats().cached, 2);
    let plan = r.plan("example.test", None, 25).await.unwrap();
    assert_eq!(plan.hosts[0].addrs, [sa("127.0.0.2:25"), sa("[::2]:25")]);
    assert_eq!(r.stats().cached, 5);
    assert_eq!(dns.questions(), 6);
}
