//! Incremental rebalances against an in-process broker: with the classic
//! protocol's cooperative-sticky assignor and with KIP-848
//! (`group.protocol=consumer`), a member joining or leaving moves only the
//! partitions that must move, and every record is read.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::consumer::{Consumer, ConsumerConfig, RebalanceEvent, TopicPartition};
use strom_client::producer::{Producer, ProducerConfig, ProducerRecord};
use strom_protocol::alloc::GuardedAlloc;

mod common;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

const PARTITIONS: usize = 6;

async fn fill(addr: &str, topic: &str, from: usize, n: usize) {
    let p = Producer::new(ProducerConfig::new(addr))
        .await
        .expect("producer");
    for i in from..from + n {
        p.send(
            ProducerRecord::new(topic)
                .partition((i % PARTITIONS) as i32)
                .value(format!("{i}")),
        )
        .await
        .expect("queued");
    }
    p.close().await.expect("flushed");
}

/// A member polling in its own task, as an application would; the test
/// watches what it reads, owns and hears from its rebalance listener.
struct Member {
    seen: Arc<Mutex<BTreeSet<String>>>,
    owned: Arc<Mutex<Vec<TopicPartition>>>,
    revoked: Arc<Mutex<Vec<Vec<TopicPartition>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn start(addr: &str, props: &[(&str, &str)], seen: Arc<Mutex<BTreeSet<String>>>) -> Member {
        let mut c = ConsumerConfig::new(addr);
        for (k, v) in [
            ("group.id", "inc"),
            ("auto.offset.reset", "earliest"),
            ("heartbeat.interval.ms", "200"),
            ("session.timeout.ms", "6000"),
        ]
        .iter()
        .chain(props)
        {
            c.set(k, v).expect("valid");
        }
        let mut c = Consumer::new(c).expect("consumer");
        let revoked: Arc<Mutex<Vec<Vec<TopicPartition>>>> = Arc::default();
        let r = revoked.clone();
        c.set_rebalance_listener(move |e| {
            if let RebalanceEvent::Revoked(list) = e {
                r.lock().expect("lock").push(list);
            }
        });
        let owned: Arc<Mutex<Vec<TopicPartition>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, o, st) = (seen.clone(), owned.clone(), stop.clone());
        let task = tokio::spawn(async move {
            c.subscribe(&["inc"]).await.expect("subscribe");
            while !st.load(std::sync::atomic::Ordering::Acquire) {
                let got = c.poll(Duration::from_millis(100)).await.expect("poll");
                {
                    let mut seen = s.lock().expect("lock");
                    for r in got {
                        seen.insert(
                            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                                .into_owned(),
                        );
                    }
                }
                *o.lock().expect("lock") = c.assignment();
            }
            c.close().await.expect("close");
        });
        Member {
            seen,
            owned,
            revoked,
            stop,
            task,
        }
    }

    fn owned(&self) -> Vec<TopicPartition> {
        self.owned.lock().expect("lock").clone()
    }

    fn revoked(&self) -> Vec<Vec<TopicPartition>> {
        self.revoked.lock().expect("lock").clone()
    }

    async fn close(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.task.await.expect("member task");
    }
}

/// Waits until `done` holds for the members' assignments and the records read.
async fn wait_until(members: &[&Member], done: impl Fn(&[Vec<TopicPartition>], usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let owned: Vec<Vec<TopicPartition>> = members.iter().map(|m| m.owned()).collect();
        let seen = members[0].seen.lock().expect("lock").len();
        if done(&owned, seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {owned:?}, {seen} records"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join_and_leave_move_only_what_must_move(props: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(
        dir.path(),
        &[
            ("num.partitions", &PARTITIONS.to_string()),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    )
    .await;
    let addr = server.local_addr.to_string();
    fill(&addr, "inc", 0, 600).await;

    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let one = Member::start(&addr, props, seen.clone());
    wait_until(&[&one], |o, n| o[0].len() == PARTITIONS && n == 600).await;
    let before: BTreeSet<TopicPartition> = one.owned().into_iter().collect();

    // A second member joins: the first gives up half and keeps the rest.
    let two = Member::start(&addr, props, seen.clone());
    fill(&addr, "inc", 600, 600).await;
    let half = PARTITIONS / 2;
    wait_until(&[&one, &two], |o, n| {
        o[0].len() == half && o[1].len() == half && n == 1200
    })
    .await;
    let (a, b) = (one.owned(), two.owned());
    assert!(a.iter().all(|tp| !b.contains(tp)), "disjoint: {a:?} {b:?}");
    assert!(a.iter().all(|tp| before.contains(tp)));
    let revocations = one.revoked();
    assert!(
        !revocations.is_empty()
            && revocations
                .iter()
                .all(|r| r.len() <= half && r.iter().all(|tp| b.contains(tp))),
        "only the moved partitions were revoked: {revocations:?}"
    );

    // The second leaves: the first takes its partitions back without losing its own.
    two.close().await;
    fill(&addr, "inc", 1200, 600).await;
    wait_until(&[&one], |o, n| o[0].len() == PARTITIONS && n == 1800).await;
    assert_eq!(
        one.revoked().len(),
        revocations.len(),
        "nothing revoked when partitions were only added"
    );
    one.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_moves_only_what_must_move() {
    join_and_leave_move_only_what_must_move(&[(
        "partition.assignment.strategy",
        "cooperative-sticky",
    )])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_moves_only_what_must_move() {
    join_and_leave_move_only_what_must_move(&[("group.protocol", "consumer")]).await;
}
