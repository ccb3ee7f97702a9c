//! Helpers shared by the quorum integration tests.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use strom_quorum::{ProposeError, Quorum, QuorumConfig};

#[path = "../../examples/recording_sm.rs"]
mod recording_sm;
#[allow(unused_imports)] // sigkill.rs uses only the port helper
pub use recording_sm::RecordingSm;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// `n` loopback addresses with ports free right now.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// Test timings: 1–2 s elections (loaded CI machines must not see spurious ones), 100 ms
/// heartbeats.
pub fn config(
    node_id: u64,
    voters: &BTreeMap<u64, SocketAddr>,
    listen: SocketAddr,
    dir: &Path,
) -> QuorumConfig {
    let mut c = QuorumConfig::new(
        node_id,
        voters.clone(),
        listen,
        dir.join(format!("node-{node_id}")),
    );
    c.election_timeout_ms = (1000, 2000);
    c.heartbeat_interval_ms = 100;
    c
}

/// Voters 1..=n on free ports.
pub fn voters(n: usize) -> BTreeMap<u64, SocketAddr> {
    free_addrs(n)
        .into_iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, a))
        .collect()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node agrees on one leader, returns it.
pub async fn agreed_leader(nodes: &[&Quorum]) -> u64 {
    let mut leader = None;
    wait_until(
        "a leader all nodes agree on",
        Duration::from_secs(15),
        || {
            let first = nodes[0].leader();
            leader = first;
            first.is_some() && nodes.iter().all(|n| n.leader() == first)
        },
    )
    .await;
    leader.unwrap()
}

/// Proposes on whichever node leads, retrying through elections.
pub async fn propose_anywhere(nodes: &[&Quorum], entry: Vec<u8>) -> u64 {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no leader took the proposal"
        );
        let leader = nodes.iter().find_map(|n| n.leader());
        if let Some(node) = leader.and_then(|l| nodes.iter().find(|n| n.node_id() == l)) {
            match node.propose(entry.clone()).await {
                Ok(i) => return i,
                Err(ProposeError::NotLeader { .. }) => {}
                Err(e) => panic!("propose: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
