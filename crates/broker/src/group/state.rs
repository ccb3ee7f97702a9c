//! Groups and members of the classic rebalance protocol.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::store::Committed;

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment handed out; members heartbeat.
    Stable,
    /// Removed.
    Dead,
}

impl GroupState {
    /// Kafka's name, as ListGroups and DescribeGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup waiter receives when the rebalance completes.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    /// Kafka error code.
    pub error: i16,
    /// New generation.
    pub generation: i32,
    /// Chosen protocol (assignor).
    pub protocol: Option<String>,
    /// Protocol type ("consumer", "connect", ...).
    pub protocol_type: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// The member's own id.
    pub member_id: String,
    /// For the leader: every member's id, instance id and metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814 (JoinGroup v9+): the leader already has the group's
    /// assignment (a static leader came back) and must not compute a new one.
    pub skip_assignment: bool,
}

/// What a SyncGroup waiter receives.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// Kafka error code.
    pub error: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Protocol name.
    pub protocol: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// One member.
#[derive(Debug)]
pub struct Member {
    /// Member id given by the coordinator.
    pub id: String,
    /// Static membership id (KIP-345).
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// How long without heartbeat before removal.
    pub session_timeout_ms: i32,
    /// How long a rebalance may wait for this member.
    pub rebalance_timeout_ms: i32,
    /// Supported protocols in preference order, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Assignment from the last sync.
    pub assignment: Bytes,
    /// Last heartbeat (or join/sync).
    pub last_seen: Instant,
    /// Pending JoinGroup response.
    pub awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    /// Pending SyncGroup response.
    pub awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// Metadata for `protocol`, if the member supports it.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m)
    }
}

/// One group.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// Protocol type of the members.
    pub protocol_type: Option<String>,
    /// Chosen protocol of the current generation.
    pub protocol: Option<String>,
    /// Generation id.
    pub generation: i32,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members in join order.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, awaiting the rejoin (KIP-394).
    pub pending: HashMap<String, Instant>,
    /// When the current rebalance gives up on members that did not rejoin.
    pub rebalance_deadline: Option<Instant>,
    /// Committed offsets by (topic, partition).
    pub offsets: HashMap<(String, i32), Committed>,
    /// Offsets committed inside open transactions, by producer id; they
    /// join `offsets` when the commit marker is written (TxnOffsetCommit).
    pub txn_offsets: HashMap<i64, HashMap<(String, i32), Committed>>,
    /// When the group last became empty (ms), for offset expiry.
    pub empty_since_ms: Option<i64>,
    /// True while the first rebalance after Empty waits out the initial delay.
    pub initial_join: bool,
    /// KIP-848 state, when the group uses the consumer protocol.
    pub consumer: Option<super::consumer::ConsumerGroup>,
}

impl Group {
    /// A new empty group.
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            offsets: HashMap::new(),
            txn_offsets: HashMap::new(),
            empty_since_ms: Some(now_ms),
            initial_join: false,
            consumer: None,
        }
    }

    /// A member by id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// A member by id, mutably.
    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// The member holding a static instance id.
    pub fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// The first protocol (in the first member's order) every member supports.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .find(|n| self.members.iter().all(|m| m.metadata(n).is_some()))
            .cloned()
    }

    /// True when a member with these protocols could join.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != protocol_type)
        {
            return false;
        }
        protocols
            .iter()
            .any(|(n, _)| self.members.iter().all(|m| m.metadata(n).is_some()))
    }
}
