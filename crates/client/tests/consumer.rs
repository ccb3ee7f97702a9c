//! The consumer against an in-process broker: assign/seek/pause, a group of
//! two sharing partitions with committed offsets, read_committed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strom_broker::ServerHandle;
use strom_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, RebalanceEvent};
use strom_client::producer::{Producer, ProducerConfig, ProducerRecord};
use strom_protocol::alloc::GuardedAlloc;

mod common;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

async fn start(dir: &std::path::Path) -> ServerHandle {
    common::start(
        dir,
        &[
            ("num.partitions", "4"),
            ("group.initial.rebalance.delay.ms", "100"),
        ],
    )
    .await
}

async fn fill(addr: &str, topic: &str, n: usize) {
    let p = Producer::new(ProducerConfig::new(addr))
        .await
        .expect("producer");
    for i in 0..n {
        p.send(
            ProducerRecord::new(topic)
                .key(format!("k{i}"))
                .value(format!("{i}")),
        )
        .await
        .expect("queued");
    }
    p.close().await.expect("flushed");
}

fn config(addr: &str, group: Option<&str>) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(addr);
    c.set("auto.offset.reset", "earliest").expect("valid");
    c.set("heartbeat.interval.ms", "200").expect("valid");
    c.set("session.timeout.ms", "6000").expect("valid");
    if let Some(g) = group {
        c.set("group.id", g).expect("valid");
    }
    c
}

async fn drain(c: &mut Consumer, want: usize, limit: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_seek_pause_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let addr = server.local_addr.to_string();
    fill(&addr, "a", 400).await;
    let mut c = Consumer::new(config(&addr, None)).expect("consumer");
    c.assign((0..4).map(|p| ("a".to_string(), p)).collect())
        .await
        .expect("assign");
    let all = drain(&mut c, 400, Duration::from_secs(20)).await;
    let values: BTreeSet<String> = all
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values.len(), 400);
    for p in 0..4 {
        let offsets: Vec<i64> = all
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p} in order"
        );
        assert_eq!(c.position("a", p), Some(offsets.len() as i64));
    }
    c.seek("a", 0, 1).expect("seek");
    c.pause(&[
        ("a".to_string(), 1),
        ("a".to_string(), 2),
        ("a".to_string(), 3),
    ]);
    let again = drain(&mut c, 1, Duration::from_secs(10)).await;
    assert!(again.iter().all(|r| r.partition == 0) && again[0].offset == 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_two_shares_partitions_and_resumes_from_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let addr = server.local_addr.to_string();
    fill(&addr, "g", 800).await;
    let mut one = Consumer::new(config(&addr, Some("grp"))).expect("consumer");
    let mut two = Consumer::new(config(&addr, Some("grp"))).expect("consumer");
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    one.set_rebalance_listener(move |e| ev.lock().expect("lock").push(e));
    one.subscribe(&["g"]).await.expect("subscribe");
    two.subscribe(&["g"]).await.expect("subscribe");
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.len() < 800 && Instant::now() < deadline {
        let (a, b) = tokio::join!(
            one.poll(Duration::from_millis(200)),
            two.poll(Duration::from_millis(200))
        );
        for r in a.expect("poll").into_iter().chain(b.expect("poll")) {
            seen.insert(
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
                r.partition,
            );
        }
    }
    assert_eq!(seen.len(), 800, "every record read");
    let (x, y) = (one.assignment(), two.assignment());
    assert_eq!(x.len() + y.len(), 4, "{x:?} {y:?}");
    assert!(x.iter().all(|tp| !y.contains(tp)), "disjoint: {x:?} {y:?}");
    assert!(events
        .lock()
        .expect("lock")
        .iter()
        .any(|e| matches!(e, RebalanceEvent::Assigned(_))));
    one.commit().await.expect("commit");
    two.commit().await.expect("commit");
    one.close().await.expect("close");
    two.close().await.expect("close");

    fill(&addr, "g", 40).await;
    let mut three = Consumer::new(config(&addr, Some("grp"))).expect("consumer");
    three.subscribe(&["g"]).await.expect("subscribe");
    let rest = drain(&mut three, 40, Duration::from_secs(20)).await;
    assert_eq!(rest.len(), 40, "resumed from the committed offsets");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_skips_aborted_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let addr = server.local_addr.to_string();
    let mut pc = ProducerConfig::new(&addr);
    pc.set("transactional.id", "rc").expect("valid");
    let p = Producer::new(pc).await.expect("producer");
    p.init_transactions().await.expect("init");
    for (label, commit) in [("x", false), ("y", true)] {
        p.begin_transaction().await.expect("begin");
        for i in 0..5 {
            p.send(
                ProducerRecord::new("tx")
                    .partition(0)
                    .value(format!("{label}{i}")),
            )
            .await
            .expect("queued");
        }
        if commit {
            p.commit_transaction().await.expect("commit");
        } else {
            p.abort_transaction().await.expect("abort");
        }
    }
    let mut cfg = config(&addr, None);
    cfg.set("isolation.level", "read_committed").expect("valid");
    let mut c = Consumer::new(cfg).expect("consumer");
    c.assign(vec![("tx".to_string(), 0)]).await.expect("assign");
    let got = drain(&mut c, 5, Duration::from_secs(10)).await;
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, (0..5).map(|i| format!("y{i}")).collect::<Vec<_>>());
    assert_eq!(c.position("tx", 0), Some(12), "past both markers");
    server.shutdown().await;
}
