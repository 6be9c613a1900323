//! Measures what cluster mode adds per acquisition: the time of one shared-rate reservation (one
//! script run in Redis over every limiter a message meets) and of one connection lease taken and
//! given back, against a running Redis. Used by `bench/cluster.sh`.
//!
//!     cluster-latency redis://127.0.0.1:PORT/0 ACQUISITIONS LIMITERS

use std::sync::Arc;
use std::time::{Duration, Instant};

use ember::cluster::membership::About;
use ember::cluster::{Cluster, Demand, NodeTotals};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms ({} acquisitions)",
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
        percentile(&samples, 1.0),
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(count), Some(limiters)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: cluster-latency REDIS-URL ACQUISITIONS LIMITERS");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("ACQUISITIONS is a number");
    let limiters: usize = limiters.parse().expect("LIMITERS is a number");
    let about = About { name: format!("latency-{}", std::process::id()), ..About::default() };
    let cluster = Cluster::new(url, about).expect("a Redis URL");
    cluster.start(Arc::new(NodeTotals::default));
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.degraded() {
        assert!(Instant::now() < deadline, "Redis at {url} does not answer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Rates so high that a reservation never waits: what is measured is the round trip.
    let mut demand = Demand::default();
    for i in 0..limiters {
        demand.push("bench|127.0.0.2|example.com", &format!("limiter-{i} 1000000000/s"), 1e-9, 1);
    }
    let mut reserve = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        cluster.permit(&demand).await;
        reserve.push(t.elapsed());
    }
    let connect = Demand::default();
    let mut lease = Vec::with_capacity(count / 10);
    for worker in 0..(count / 10).max(1) {
        let t = Instant::now();
        let held = cluster.lease("bench|127.0.0.2|example.com", 1_000_000, &connect, worker as u64).await;
        lease.push(t.elapsed());
        drop(held);
    }
    assert!(!cluster.degraded(), "Redis went away during the measurement");
    report(&format!("shared-rate reservation ({limiters} limiters, one script run)"), reserve);
    report("connection lease", lease);
}
