//! The group coordinator: Kafka's classic rebalance protocol, protocol
//! agnostic (consumer groups, Connect-style groups), with committed offsets
//! and group metadata kept in `__consumer_offsets`.
//!
//! Each group lives behind its own mutex ([`table`]), so one group's
//! appends to `__consumer_offsets` hold up no other group; requests that
//! must wait (JoinGroup until the rebalance completes, SyncGroup until the
//! leader's assignment) get a oneshot receiver and wait outside the lock. A ticker
//! ([`GroupCoordinator::tick`]) expires sessions, ends rebalances at their
//! deadline and expires old offsets.
//!
//! One job per module: [`join`] (JoinGroup and the rebalance it drives),
//! [`membership`] (SyncGroup, Heartbeat, LeaveGroup), [`offsets`] (commits
//! and fetches), [`admin`] (ListGroups, DescribeGroups, DeleteGroups),
//! [`consumer_protocol`] (KIP-848 ConsumerGroupHeartbeat),
//! [`consumer_describe`] (KIP-848 ConsumerGroupDescribe), [`expiry`] (the
//! ticker), [`replay`] (loading and unloading the groups of a
//! `__consumer_offsets` partition as its leadership arrives or leaves).

mod admin;
pub mod consumer;
pub mod consumer_describe;
mod consumer_protocol;
mod expiry;
mod group_value;
mod join;
mod membership;
mod offsets;
mod replay;
pub mod state;
#[cfg(test)]
mod static_membership_tests;
pub mod store;
mod table;

use crate::net::log::Escaped;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use strom_record::{BatchBuilder, OwnedRecord};
use tokio::sync::oneshot;

use crate::replication::coordinator_write::Written;
use crate::topics::{TopicError, Topics};
use state::Group;
use store::{Entry, OFFSETS_TOPIC};

pub use admin::Described;
pub use consumer_describe::{ConsumerGroupDescription, DescribeError};
pub use consumer_protocol::{ConsumerHeartbeat, ConsumerHeartbeatReply};
pub use join::JoinRequest;
pub use offsets::TopicOffsets;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// Coordinator settings (Kafka's broker config names).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: JoinGroup past it gets GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// `offsets.topic.num.partitions`.
    pub offsets_partitions: i32,
    /// `offsets.topic.replication.factor` (1 on a single-node server).
    pub offsets_replication_factor: i32,
    /// `offsets.commit.timeout.ms`: how long a write waits for the in-sync
    /// replicas of its `__consumer_offsets` partition.
    pub commit_timeout: std::time::Duration,
    /// `offsets.topic.segment.bytes`: small segments let the cleaner reach
    /// old commits sooner.
    pub offsets_segment_bytes: i64,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval_ms: i32,
}

/// Outcome of a join: either an immediate answer or one to wait for.
pub enum Pending<T> {
    /// Answer now.
    Ready(T),
    /// Wait for the rebalance.
    Wait(oneshot::Receiver<T>),
}

/// The coordinator of every group on this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    topics: Arc<Topics>,
    config: GroupConfig,
    /// Every group, each behind its own lock.
    groups: table::GroupTable,
    /// The `__consumer_offsets` partitions whose groups are loaded, and
    /// the leader epoch they were loaded at.
    loaded: Mutex<HashMap<i32, crate::metadata::LeaderEpoch>>,
}

impl GroupCoordinator {
    /// Broker time in ms since the epoch (commit and expiry timestamps).
    fn wall_ms(&self) -> i64 {
        self.topics.clock().wall_ms()
    }

    /// Monotonic broker time (sessions, rebalance deadlines).
    fn now(&self) -> std::time::Instant {
        self.topics.clock().now()
    }

    /// Creates `__consumer_offsets` if needed and rebuilds groups from it.
    ///
    /// In a cluster the topic is created on the first FindCoordinator
    /// instead ([`GroupCoordinator::ensure_offsets_topic`]), as Kafka does,
    /// so its partitions spread over the brokers registered by then.
    pub fn open(
        topics: Arc<Topics>,
        config: GroupConfig,
        create_now: bool,
    ) -> Result<GroupCoordinator, TopicError> {
        let c = GroupCoordinator {
            topics,
            config,
            groups: table::GroupTable::default(),
            loaded: Mutex::new(HashMap::new()),
        };
        if create_now {
            c.ensure_offsets_topic()?;
        }
        c.replay();
        Ok(c)
    }

    /// Creates `__consumer_offsets` if it does not exist yet. Blocking.
    pub fn ensure_offsets_topic(&self) -> Result<(), TopicError> {
        if self.topics.get(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let mut cfg = BTreeMap::new();
        cfg.insert("cleanup.policy".to_string(), "compact".to_string());
        cfg.insert(
            "segment.bytes".to_string(),
            self.config.offsets_segment_bytes.to_string(),
        );
        match self.topics.create_replicated(
            OFFSETS_TOPIC,
            self.config.offsets_partitions,
            self.config.offsets_replication_factor,
            cfg,
        ) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn offsets_partitions(&self) -> i32 {
        self.topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partition_count() as i32)
            .unwrap_or(1)
    }

    /// The `__consumer_offsets` partition holding `group`.
    fn offsets_partition(&self, group: &str) -> Result<Arc<crate::topics::Partition>, i16> {
        self.topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partition(store::partition_for(group, self.offsets_partitions())))
            .ok_or(code(ResponseError::CoordinatorNotAvailable))
    }

    /// Where the writes for `group` so far end, to wait for its in-sync
    /// replicas ([`crate::replication::coordinator_write`]).
    pub fn written(&self, group: &str) -> Option<Written> {
        self.offsets_partition(group).ok().map(Written::now)
    }

    /// `offsets.commit.timeout.ms`.
    pub fn commit_timeout(&self) -> std::time::Duration {
        self.config.commit_timeout
    }

    /// Appends entries of one group to its `__consumer_offsets` partition.
    fn persist(&self, group: &str, entries: &[Entry]) -> Result<(), i16> {
        if entries.is_empty() {
            return Ok(());
        }
        let p = self.offsets_partition(group)?;
        let ts = self.wall_ms();
        let bytes = push_entries(BatchBuilder::new(ts), entries, ts).build();
        p.append(&bytes).map_err(|e| {
            tracing::error!(group = %Escaped(group), error = %e, "cannot write __consumer_offsets");
            code(ResponseError::CoordinatorNotAvailable)
        })?;
        Ok(())
    }

    /// Writes the group's metadata: protocol and generation, and once its
    /// rebalance is complete (Stable) its members with their assignments,
    /// so a coordinator taking the group over keeps it Stable.
    fn persist_group(&self, g: &Group) {
        let members = if g.state == state::GroupState::Stable {
            let protocol = g.protocol.as_deref().unwrap_or_default();
            g.members
                .iter()
                .map(|m| store::StoredMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol).map(|b| b.to_vec()).unwrap_or_default(),
                    assignment: m.assignment.to_vec(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let value = Some(store::GroupValue {
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            generation: g.generation,
            protocol: g.protocol.clone(),
            leader: g.leader.clone().filter(|_| !members.is_empty()),
            members,
        });
        let _ = self.persist(
            &g.id,
            &[Entry::Group {
                group: g.id.clone(),
                value,
            }],
        );
    }
}

/// `entries` encoded as records of `b`, stamped `ts`: a commit's or a
/// group's write to `__consumer_offsets`.
fn push_entries(mut b: BatchBuilder, entries: &[Entry], ts: i64) -> BatchBuilder {
    for e in entries {
        let (key, value) = store::encode(e);
        b = b.push(OwnedRecord {
            key: Some(key),
            value,
            headers: Vec::new(),
            timestamp: ts,
        });
    }
    b
}

/// The state to report: KIP-848 groups have their own names (Stable, Reconciling).
fn state_name(g: &Group) -> &'static str {
    match &g.consumer {
        Some(c) if !c.members.is_empty() => c.state(),
        _ => g.state.name(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A coordinator over a temporary data directory, for the modules' tests.
    use super::*;
    use crate::config::BrokerConfig;

    pub(crate) fn config(retention_ms: i64) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 1,
            max_session_timeout_ms: 1_000_000,
            max_size: usize::MAX,
            offsets_partitions: 3,
            offsets_replication_factor: 1,
            commit_timeout: std::time::Duration::from_secs(5),
            offsets_segment_bytes: 104_857_600,
            offsets_retention_ms: retention_ms,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }

    pub(crate) fn coordinator(dir: &std::path::Path, retention_ms: i64) -> GroupCoordinator {
        coordinator_with(dir, config(retention_ms))
    }

    pub(crate) fn coordinator_with(dir: &std::path::Path, config: GroupConfig) -> GroupCoordinator {
        coordinator_on(dir, config, crate::clock::system())
    }

    /// A KIP-848 heartbeat of dynamic member `member` of group "g" on topic "t".
    pub(crate) fn consumer_beat(
        c: &GroupCoordinator,
        member: &str,
        epoch: i32,
        owned: Option<Vec<super::consumer::Tp>>,
    ) -> super::ConsumerHeartbeatReply {
        c.consumer_heartbeat(super::ConsumerHeartbeat {
            group: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            client_id: "cli".into(),
            host: "/127.0.0.1".into(),
            subscribed: Some(vec!["t".into()]),
            assignor: Some("range".into()),
            owned,
        })
    }

    /// The topics `c` keeps its groups in.
    pub(crate) fn topics_of(c: &GroupCoordinator) -> Arc<Topics> {
        c.topics.clone()
    }

    /// A coordinator whose time is `clock`'s.
    pub(crate) fn coordinator_on(
        dir: &std::path::Path,
        config: GroupConfig,
        clock: crate::clock::SharedClock,
    ) -> GroupCoordinator {
        let topics = Topics::open(dir, Arc::new(BrokerConfig::default()), clock).expect("topics");
        if topics.get("t").is_none() {
            topics.create("t", 2, BTreeMap::new()).expect("topic");
        }
        GroupCoordinator::open(topics, config, true).expect("coordinator")
    }
}
