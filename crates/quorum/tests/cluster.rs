//! Multi-node behaviour of the metadata quorum on loopback.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use strom_quorum::{ProposeError, Quorum};
use tokio::task::JoinSet;

async fn start_all(
    voters: &BTreeMap<u64, SocketAddr>,
    dir: &std::path::Path,
    every: u64,
) -> Vec<(Quorum, RecordingSm)> {
    let mut set = JoinSet::new();
    for (&id, &addr) in voters {
        let mut cfg = config(id, voters, addr, dir);
        cfg.snapshot_every = every;
        set.spawn(async move {
            let sm = RecordingSm::default();
            (Quorum::start(cfg, sm.clone()).await.expect("start"), sm)
        });
    }
    let mut nodes = set.join_all().await;
    nodes.sort_by_key(|(q, _)| q.node_id());
    nodes
}

struct Cluster {
    dir: tempfile::TempDir,
    voters: BTreeMap<u64, SocketAddr>,
    nodes: Vec<(Quorum, RecordingSm)>,
    leader: u64,
}

/// Three voters on loopback, started together, with an agreed leader.
async fn cluster(snapshot_every: u64) -> Cluster {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(3);
    let nodes = start_all(&voters, dir.path(), snapshot_every).await;
    let refs: Vec<&Quorum> = nodes.iter().map(|(q, _)| q).collect();
    let leader = agreed_leader(&refs).await;
    Cluster {
        dir,
        voters,
        nodes,
        leader,
    }
}

fn sm_of(nodes: &[(Quorum, RecordingSm)], id: u64) -> RecordingSm {
    nodes
        .iter()
        .find(|(q, _)| q.node_id() == id)
        .expect("node is running")
        .1
        .clone()
}

async fn shutdown_all(nodes: impl IntoIterator<Item = Quorum>) {
    for q in nodes {
        q.shutdown().await;
    }
}

/// Restarts node `id` on its directory with a fresh state machine and waits until it has
/// applied exactly what `reference` has.
async fn restart_and_catch_up(
    id: u64,
    voters: &BTreeMap<u64, SocketAddr>,
    dir: &std::path::Path,
    every: u64,
    reference: &RecordingSm,
) -> (Quorum, RecordingSm) {
    let mut cfg = config(id, voters, voters[&id], dir);
    cfg.snapshot_every = every;
    let sm = RecordingSm::default();
    let q = Quorum::start(cfg, sm.clone()).await.expect("restart");
    let want = reference.entries();
    wait_until(
        "the restarted node caught up",
        Duration::from_secs(15),
        || sm.entries() == want,
    )
    .await;
    (q, sm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_in_order_and_followers_redirect() {
    let Cluster {
        dir: _dir,
        nodes,
        leader,
        ..
    } = cluster(10_000).await;
    let (lq, _) = nodes.iter().find(|(q, _)| q.node_id() == leader).unwrap();

    // 1000 entries, 50 in flight at a time, so the leader batches them.
    let lq: &Quorum = lq;
    let mut indexes = Vec::new();
    for chunk in 0..20 {
        let futs = (0..50).map(|i| lq.propose(format!("record-{}", chunk * 50 + i).into_bytes()));
        for r in join_all(futs).await {
            indexes.push(r.expect("propose on the leader"));
        }
    }
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 1000, "every proposal got its own index");

    for (_, sm) in &nodes {
        wait_until(
            "all entries applied everywhere",
            Duration::from_secs(20),
            || sm.len() == 1000,
        )
        .await;
    }
    let reference = nodes[0].1.entries();
    for (q, sm) in &nodes[1..] {
        assert_eq!(
            sm.entries(),
            reference,
            "node {} applied a different sequence",
            q.node_id()
        );
    }
    let applied_indexes: Vec<u64> = reference.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        applied_indexes, indexes,
        "applied at the indexes propose returned"
    );

    let follower = nodes
        .iter()
        .map(|(q, _)| q)
        .find(|q| q.node_id() != leader)
        .unwrap();
    assert_eq!(
        follower.propose(b"x".to_vec()).await,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );
    let too_big = vec![0u8; strom_quorum::MAX_ENTRY_BYTES + 1];
    assert!(matches!(
        lq.propose(too_big).await,
        Err(ProposeError::TooLarge { .. })
    ));

    // DescribeQuorum from the leader: everyone caught up to the high watermark.
    let last = *indexes.last().unwrap();
    let mut d = lq.describe();
    wait_until(
        "followers' progress reported",
        Duration::from_secs(5),
        || {
            d = lq.describe();
            d.voters.iter().all(|v| {
                v.log_end_offset == Some(d.high_watermark)
                    && v.last_caught_up_timestamp_ms.is_some()
            })
        },
    )
    .await;
    assert_eq!(d.leader_id, Some(leader));
    assert!(d.leader_epoch >= 1);
    assert!(d.high_watermark > last);
    assert_eq!(
        d.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(d.observers.is_empty());
    assert!(d.voters.iter().all(|v| v.last_fetch_timestamp_ms.is_some()));

    shutdown_all(nodes.into_iter().map(|(q, _)| q)).await;
}

/// Awaits all futures concurrently on this task.
async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futs.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_restarted_node_catches_up_from_its_log() {
    let Cluster {
        dir,
        voters,
        mut nodes,
        leader: old,
    } = cluster(10_000).await;
    let refs: Vec<&Quorum> = nodes.iter().map(|(q, _)| q).collect();
    for i in 0..20 {
        propose_anywhere(&refs, format!("before-{i}").into_bytes()).await;
    }
    let pos = nodes.iter().position(|(q, _)| q.node_id() == old).unwrap();
    let (old_q, old_sm) = nodes.remove(pos);
    let mut leader_changes = nodes[0].0.subscribe_leader();
    assert_eq!(old_sm.len(), 20);
    old_q.shutdown().await;

    let rest: Vec<&Quorum> = nodes.iter().map(|(q, _)| q).collect();
    let mut new = None;
    wait_until(
        "a new leader among the survivors",
        Duration::from_secs(10),
        || {
            new = rest[0]
                .leader()
                .filter(|l| *l != old && rest.iter().all(|n| n.leader() == Some(*l)));
            new.is_some()
        },
    )
    .await;
    let seen = tokio::time::timeout(
        Duration::from_secs(5),
        leader_changes.wait_for(|l| *l == new),
    )
    .await
    .expect("subscribe_leader saw the new leader")
    .map(|l| *l);
    assert_eq!(seen.ok(), Some(new));
    for i in 0..20 {
        propose_anywhere(&rest, format!("after-{i}").into_bytes()).await;
    }

    // The old leader comes back with a fresh in-memory state machine: it replays its own log
    // and fetches what it missed (the new leader applied all 40 before its proposes returned).
    let leader_sm = &sm_of(&nodes, new.unwrap());
    let (back, sm) = restart_and_catch_up(old, &voters, dir.path(), 10_000, leader_sm).await;
    assert_eq!(sm.restores(), 0, "caught up from the log, not a snapshot");
    assert_eq!(back.leader(), new);
    shutdown_all(nodes.into_iter().map(|(q, _)| q).chain([back])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_from_a_snapshot_after_compaction() {
    let Cluster {
        dir,
        voters,
        mut nodes,
        leader,
    } = cluster(40).await;
    let refs: Vec<&Quorum> = nodes.iter().map(|(q, _)| q).collect();
    for i in 0..5 {
        propose_anywhere(&refs, format!("early-{i}").into_bytes()).await;
    }
    let pos = nodes
        .iter()
        .position(|(q, _)| q.node_id() != leader)
        .unwrap();
    let (lagger, lag_sm) = nodes.remove(pos);
    let lag_id = lagger.node_id();
    wait_until(
        "the follower has the early entries",
        Duration::from_secs(5),
        || lag_sm.len() == 5,
    )
    .await;
    lagger.shutdown().await;

    let rest: Vec<&Quorum> = nodes.iter().map(|(q, _)| q).collect();
    let lq = rest.iter().find(|q| q.node_id() == leader).unwrap();
    for chunk in 0..6 {
        let futs = (0..25).map(|i| lq.propose(format!("late-{}", chunk * 25 + i).into_bytes()));
        for r in join_all(futs).await {
            r.expect("propose with one follower down");
        }
    }
    let leader_dir = dir.path().join(format!("node-{leader}"));
    assert!(
        leader_dir.join("snapshot").exists(),
        "the leader took a snapshot"
    );

    let leader_sm = &sm_of(&nodes, leader);
    let (back, sm) = restart_and_catch_up(lag_id, &voters, dir.path(), 40, leader_sm).await;
    assert!(sm.restores() >= 1, "it installed the leader's snapshot");
    shutdown_all(nodes.into_iter().map(|(q, _)| q).chain([back])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_receives_everything_without_voting() {
    let Cluster {
        dir,
        voters,
        nodes,
        leader,
    } = cluster(10_000).await;
    let refs: Vec<&Quorum> = nodes.iter().map(|(q, _)| q).collect();
    for i in 0..30 {
        propose_anywhere(&refs, format!("pre-{i}").into_bytes()).await;
    }

    let obs_addr = free_addrs(1)[0];
    let obs_sm = RecordingSm::default();
    let observer = Quorum::start(config(4, &voters, obs_addr, dir.path()), obs_sm.clone())
        .await
        .unwrap();
    for i in 0..30 {
        propose_anywhere(&refs, format!("post-{i}").into_bytes()).await;
    }
    wait_until(
        "the observer applied everything",
        Duration::from_secs(10),
        || obs_sm.len() == 60,
    )
    .await;
    // The leader applied every entry before its propose returned.
    let leader_sm = sm_of(&nodes, leader);
    assert_eq!(obs_sm.entries(), leader_sm.entries());
    assert_eq!(observer.leader(), Some(leader));
    assert_eq!(
        observer.propose(b"no".to_vec()).await,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );

    let lq = refs.iter().find(|q| q.node_id() == leader).unwrap();
    let d = lq.describe();
    assert_eq!(d.voters.len(), 3);
    assert_eq!(
        d.observers.iter().map(|o| o.node_id).collect::<Vec<_>>(),
        vec![4]
    );
    let follower = refs.iter().find(|q| q.node_id() != leader).unwrap();
    assert!(
        matches!(follower.add_observer(5, obs_addr).await, Err(ProposeError::NotLeader { leader: Some(l) }) if l == leader)
    );

    // Restarted on another port, it tells the leader, which replicates to
    // the new address.
    observer.shutdown().await;
    let obs_sm = RecordingSm::default();
    let observer = Quorum::start(
        config(4, &voters, free_addrs(1)[0], dir.path()),
        obs_sm.clone(),
    )
    .await
    .unwrap();
    for i in 0..10 {
        propose_anywhere(&refs, format!("moved-{i}").into_bytes()).await;
    }
    wait_until(
        "the restarted observer applied what came after",
        Duration::from_secs(10),
        || obs_sm.entries().last().map(|(_, e)| e.as_slice()) == Some(b"moved-9".as_slice()),
    )
    .await;

    shutdown_all(nodes.into_iter().map(|(q, _)| q).chain([observer])).await;
}

/// A service that answers with the id of the node that ran it and the request.
fn echo_service(id: u64) -> strom_quorum::LeaderService {
    std::sync::Arc::new(move |req: Vec<u8>| {
        Box::pin(async move {
            let mut out = format!("{id}:").into_bytes();
            out.extend(req);
            out
        }) as strom_quorum::ServiceFuture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_leader_runs_on_the_leader_from_any_node_and_follows_a_new_leader() {
    let Cluster {
        dir,
        voters,
        nodes,
        leader,
    } = cluster(10_000).await;
    for (q, _) in &nodes {
        q.set_leader_service(echo_service(q.node_id()));
    }
    let t = Duration::from_secs(10);
    for (q, _) in &nodes {
        let reply = q.call_leader(b"hello".to_vec(), t).await.unwrap();
        assert_eq!(
            reply,
            format!("{leader}:hello").into_bytes(),
            "from {}",
            q.node_id()
        );
    }
    // An observer reaches the leader too.
    let obs_sm = RecordingSm::default();
    let observer = Quorum::start(config(4, &voters, free_addrs(1)[0], dir.path()), obs_sm)
        .await
        .unwrap();
    wait_until("the observer knows the leader", t, || {
        observer.leader() == Some(leader)
    })
    .await;
    assert_eq!(
        observer.call_leader(b"obs".to_vec(), t).await.unwrap(),
        format!("{leader}:obs").into_bytes()
    );

    // The leader stops: the call waits for the election and reaches the new leader.
    let (rest, old): (Vec<_>, Vec<_>) = nodes.into_iter().partition(|(q, _)| q.node_id() != leader);
    shutdown_all(old.into_iter().map(|(q, _)| q)).await;
    let reply = rest[0]
        .0
        .call_leader(b"again".to_vec(), Duration::from_secs(20))
        .await
        .unwrap();
    let text = String::from_utf8(reply).unwrap();
    let (by, body) = text.split_once(':').unwrap();
    assert_ne!(by, leader.to_string());
    assert_eq!(body, "again");
    shutdown_all(rest.into_iter().map(|(q, _)| q).chain([observer])).await;
}
