//! The lead-controller lease on a real nats-server: one leader at a time,
//! a clean release hands over at once, a dead leader's lease expires, and
//! the old leader has stopped believing it leads before anyone else can.

use std::time::{Duration, Instant};
use trawl_controller::leader::Leader;

async fn jetstream(nats: &trawl_testkit::NatsServer) -> async_nats::jetstream::Context {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    trawl_protocol::definitions::ensure_all(&js).await.unwrap();
    js
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_release_hands_over_at_once() {
    let nats = trawl_testkit::NatsServer::start().expect("start nats-server (run scripts/setup)");
    let js = jetstream(&nats).await;
    let mut a = Leader::new(&js, "controller-a").await.unwrap();
    let mut b = Leader::new(&js, "controller-b").await.unwrap();
    assert!(a.renew().await, "the first candidate takes the free lease");
    assert!(!b.renew().await, "the lease is taken");
    for _ in 0..3 {
        assert!(a.renew().await && !b.renew().await, "renewing keeps it");
    }
    assert_eq!(b.current().await.unwrap().as_deref(), Some("controller-a"));
    a.release().await;
    assert!(!a.is_leader());
    assert!(b.renew().await, "a released lease is free at once");
    assert!(!a.renew().await, "and the old leader cannot take it back");
    assert_eq!(a.current().await.unwrap().as_deref(), Some("controller-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_lease_expires_and_leaderships_never_overlap() {
    let nats = trawl_testkit::NatsServer::start().expect("start nats-server (run scripts/setup)");
    let js = jetstream(&nats).await;
    let mut a = Leader::new(&js, "controller-a").await.unwrap();
    let mut b = Leader::new(&js, "controller-b").await.unwrap();
    assert!(a.renew().await);
    let last_renewal = Instant::now();
    // `a` stops renewing, as a crashed or frozen leader does.
    let deadline = last_renewal + Duration::from_secs(30);
    loop {
        if b.renew().await {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = last_renewal.elapsed();
    assert!(waited >= Duration::from_secs(5), "taken over after {waited:?}: before the lease could have expired");
    assert!(waited < Duration::from_secs(20), "failover took {waited:?}");
    assert!(!a.is_leader(), "the old leader stopped acting before the new one started");
    assert!(!a.renew().await, "the old leader, back, finds the lease taken");
}
