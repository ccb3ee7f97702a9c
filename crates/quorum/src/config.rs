//! [`QuorumConfig`]: who the voters are, where to listen, where to keep the files, timings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::QuorumError;

/// Configuration of one quorum node.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id (Kafka's `node.id`).
    pub node_id: u64,
    /// The voters and their quorum addresses (Kafka's `controller.quorum.voters`); the same on
    /// every node. A node whose id is not here is an observer: it receives the log but does not
    /// vote.
    pub voters: BTreeMap<u64, SocketAddr>,
    /// Where this node accepts quorum RPCs. An observer also gives this address to the leader,
    /// so it must be reachable from the voters.
    pub listen: SocketAddr,
    /// Directory for the log, vote and snapshot (created if missing; one node per directory).
    pub dir: PathBuf,
    /// Election timeout range in ms; each election waits a random time in `[min, max)`
    /// (Kafka's `controller.quorum.election.timeout.ms` is the minimum).
    pub election_timeout_ms: (u64, u64),
    /// How often the leader sends heartbeats, ms; must be below the election timeout.
    pub heartbeat_interval_ms: u64,
    /// Take a snapshot, and compact the log, after this many entries since the last one.
    pub snapshot_every: u64,
}

impl QuorumConfig {
    /// Kafka-like defaults for a node: 1–2 s elections, 200 ms heartbeats, a snapshot every
    /// 10 000 entries.
    pub fn new(
        node_id: u64,
        voters: BTreeMap<u64, SocketAddr>,
        listen: SocketAddr,
        dir: impl Into<PathBuf>,
    ) -> Self {
        QuorumConfig {
            node_id,
            voters,
            listen,
            dir: dir.into(),
            election_timeout_ms: (1000, 2000),
            heartbeat_interval_ms: 200,
            snapshot_every: 10_000,
        }
    }

    /// The single-node default: this node is the only voter.
    pub fn single(node_id: u64, listen: SocketAddr, dir: impl Into<PathBuf>) -> Self {
        Self::new(node_id, BTreeMap::from([(node_id, listen)]), listen, dir)
    }

    /// Whether this node votes.
    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }

    pub(crate) fn raft_config(&self) -> Result<openraft::Config, QuorumError> {
        let bad = |m: String| Err(QuorumError::Config(m));
        if self.voters.is_empty() {
            return bad("controller.quorum.voters is empty".into());
        }
        let (min, max) = self.election_timeout_ms;
        if min == 0 || min >= max {
            return bad(format!("election timeout range {min}..{max} ms is empty"));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= min {
            return bad(format!(
                "heartbeat interval {} ms must be positive and below the election timeout {min} ms",
                self.heartbeat_interval_ms
            ));
        }
        if self.snapshot_every == 0 {
            return bad("snapshot_every must be positive".into());
        }
        let cfg = openraft::Config {
            cluster_name: "strom-metadata".into(),
            election_timeout_min: min,
            election_timeout_max: max,
            heartbeat_interval: self.heartbeat_interval_ms,
            install_snapshot_timeout: 5_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            snapshot_max_chunk_size: 1024 * 1024,
            max_in_snapshot_log_to_keep: self.snapshot_every,
            purge_batch_size: 1,
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_timings() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut c = QuorumConfig::single(1, addr, "/tmp/x");
        assert!(c.raft_config().is_ok());
        c.heartbeat_interval_ms = 1500;
        assert!(matches!(c.raft_config(), Err(QuorumError::Config(_))));
        c.heartbeat_interval_ms = 100;
        c.election_timeout_ms = (2000, 2000);
        assert!(matches!(c.raft_config(), Err(QuorumError::Config(_))));
        c.election_timeout_ms = (1000, 2000);
        c.voters.clear();
        assert!(matches!(c.raft_config(), Err(QuorumError::Config(_))));
    }
}
