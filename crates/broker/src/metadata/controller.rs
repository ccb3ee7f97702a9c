//! The controller: the quorum leader's service that decides every metadata
//! change, one at a time, against its image (KRaft's `QuorumController`).
//!
//! Brokers reach it with [`ControllerRequest`]s through
//! [`Quorum::call_leader`](strom_quorum::Quorum::call_leader), so a request
//! sent to any node runs on the leader. The decisions are pure functions of
//! the image and the request ([`decide`]), tested without a quorum; the
//! [`Controller`] driver runs them serially and commits what they return.
//!
//! Broker lifecycle as in KRaft: a broker registers (fenced in a cluster),
//! heartbeats every `broker.heartbeat.interval.ms`, is unfenced once its
//! image has caught up with its own registration, and is fenced again when
//! it asks to shut down (controlled shutdown) or stops heartbeating for
//! `broker.session.timeout.ms`. A fenced broker leads nothing: its
//! partitions without another in-sync replica go offline (leader -1) until
//! it comes back.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use strom_quorum::{ProposeError, Quorum};

use uuid::Uuid;

use super::election::{self, ElectError, ElectionType};
use super::image::MetadataImage;
use super::reassignment::{self, ReassignError};
use super::records::{encode_batch, BrokerRegistration, MetadataRecord, PartitionChange};
use super::{LeaderEpoch, NodeId};
use crate::clock::SharedClock;

/// A request to the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Commit this batch if it fits the controller's image.
    Commit(Vec<MetadataRecord>),
    /// A broker starting (BrokerRegistration): its endpoints, rack and
    /// incarnation; `cluster_id` is the id it has on disk, adopted if the
    /// cluster has none yet.
    Register {
        /// The registration (its `epoch` and `fenced` are decided here).
        broker: BrokerRegistration,
        /// The broker's cluster id candidate.
        cluster_id: String,
        /// False for the single-node default: its one broker starts unfenced.
        fence_first: bool,
    },
    /// A broker's heartbeat (BrokerHeartbeat).
    Heartbeat {
        /// Its node id.
        id: NodeId,
        /// The registration epoch it was given.
        epoch: i64,
        /// The last metadata offset its image has applied.
        metadata_offset: u64,
        /// It is shutting down and wants to be fenced first.
        shutting_down: bool,
    },
    /// A block of `count` producer ids for `broker` (AllocateProducerIds).
    AllocateProducerIds {
        /// The asking broker.
        broker: NodeId,
        /// Ids wanted.
        count: i64,
    },
    /// Move partitions to new replicas, or cancel their moves
    /// (AlterPartitionReassignments): per partition, the target or `None`.
    Reassign(Vec<(String, i32, Option<Vec<NodeId>>)>),
    /// A partition leader's new ISR (AlterPartition).
    AlterPartition {
        /// The topic's id.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The asking leader.
        leader: NodeId,
        /// Its leader epoch.
        epoch: LeaderEpoch,
        /// The ISR it wants.
        isr: Vec<NodeId>,
    },
    /// Elect leaders (ElectLeaders): `None` elects every partition whose
    /// preferred replica could lead and does not.
    Elect {
        /// How.
        how: ElectionType,
        /// Which partitions, by topic name and index.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// The quorum as its leader sees it (DescribeQuorum: only the leader
    /// knows every replica's progress).
    DescribeQuorum,
}

/// The controller's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControllerReply {
    /// Committed at this metadata offset.
    Committed {
        /// The batch's offset.
        offset: u64,
    },
    /// Registered.
    Registered {
        /// The registration epoch to heartbeat with.
        epoch: i64,
        /// The cluster's id.
        cluster_id: String,
        /// The offset of the registration.
        offset: u64,
    },
    /// A heartbeat's answer.
    Heartbeat {
        /// The broker is (still) fenced.
        fenced: bool,
        /// The registration is unknown or stale: register again.
        stale: bool,
    },
    /// Ids `first..first + count` are the broker's.
    ProducerIds {
        /// First id of the block.
        first: i64,
        /// Ids in the block.
        count: i64,
    },
    /// Reassignments or an ISR change: per partition, done or why not.
    Reassigned {
        /// The batch's offset (the image's when nothing was committed).
        offset: u64,
        /// One result per partition asked about, in order.
        results: Vec<Result<(), ReassignError>>,
    },
    /// Elections: per partition, elected or why not.
    Elected {
        /// The batch's offset (the image's when nothing was committed).
        offset: u64,
        /// The partitions asked about (all elected ones for `None`), in order.
        results: Vec<(String, i32, Result<(), ElectError>)>,
    },
    /// The request does not fit the image (a name taken meanwhile, …).
    Refused(String),
    /// The commit failed (quorum unavailable, …).
    Failed(String),
    /// The node that ran the request was not the leader after all (a
    /// restarted node that led before, a leader just deposed): ask again.
    NotLeader,
    /// The leader's description of the quorum.
    Quorum(strom_quorum::QuorumDescription),
}

/// What [`decide`] wants done: records to commit and the reply to give once
/// they are (or at once when there are none).
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// Records to commit as one batch (may be empty).
    pub records: Vec<MetadataRecord>,
    /// The reply; `offset` fields are filled in after the commit.
    pub reply: ControllerReply,
}

/// In-memory controller state: when each broker last heartbeat, and the
/// offset its registration was committed at. Lost on failover; a new
/// controller gives every broker a full session before fencing it.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: HashMap<NodeId, (i64, Instant)>,
    registered_at: HashMap<NodeId, u64>,
    since: Option<Instant>,
}

impl Liveness {
    /// Brokers to fence at `now`: unfenced, and silent for longer than
    /// `session` (counted from when this controller started watching).
    pub fn expired(
        &mut self,
        image: &MetadataImage,
        now: Instant,
        session: Duration,
    ) -> Vec<NodeId> {
        let since = *self.since.get_or_insert(now);
        image
            .brokers()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let last = match self.seen.get(&b.id) {
                    Some((epoch, at)) if *epoch == b.epoch => *at,
                    _ => since,
                };
                now.saturating_duration_since(last) > session
            })
            .map(|b| b.id)
            .collect()
    }
}

/// The records that fence `id` (KRaft's `handleBrokerFenced`): the fence,
/// `id` out of every ISR it is in but the last member of, and a new
/// leader from the rest of the ISR for the partitions it led (none: the
/// partition is offline, leader -1, until an ISR member comes back;
/// `unclean.leader.election.enable=false`).
pub fn fence_records(image: &MetadataImage, id: NodeId, epoch: i64) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::FenceBroker { id, epoch }];
    for t in image.topics() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader != id && !p.isr.contains(&id) {
                continue;
            }
            let rest: Vec<NodeId> = p.isr.iter().copied().filter(|r| *r != id).collect();
            let isr = (!rest.is_empty() && rest.len() < p.isr.len()).then(|| rest.clone());
            let leader = (p.leader == id).then(|| {
                rest.iter()
                    .copied()
                    .find(|r| image.broker(*r).is_some_and(|b| !b.fenced))
                    .unwrap_or(NodeId::NONE)
            });
            if leader.is_none() && isr.is_none() {
                continue;
            }
            out.push(MetadataRecord::PartitionChange(PartitionChange {
                topic_id: t.id,
                partition: i as i32,
                leader,
                isr,
                ..Default::default()
            }));
        }
    }
    out
}

/// The records that unfence `id`: the unfence, and the offline partitions
/// it is a replica of led by it again.
pub fn unfence_records(image: &MetadataImage, id: NodeId, epoch: i64) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::UnfenceBroker { id, epoch }];
    for t in image.topics() {
        for (i, p) in t.partitions.iter().enumerate() {
            if p.leader == NodeId::NONE && p.isr.contains(&id) {
                out.push(MetadataRecord::PartitionChange(PartitionChange {
                    topic_id: t.id,
                    partition: i as i32,
                    leader: Some(id),
                    ..Default::default()
                }));
            }
        }
    }
    out
}

/// Decides `req` against `image` (pure: no I/O, time passed in).
pub fn decide(
    image: &MetadataImage,
    live: &mut Liveness,
    req: ControllerRequest,
    now: Instant,
) -> Decision {
    let refuse = |m: String| Decision {
        records: Vec::new(),
        reply: ControllerReply::Refused(m),
    };
    match req {
        ControllerRequest::Commit(records) => {
            if let Err(e) = image.apply(image.offset + 1, &records) {
                return refuse(e.to_string());
            }
            Decision {
                records,
                reply: ControllerReply::Committed { offset: 0 },
            }
        }
        ControllerRequest::Register {
            broker,
            cluster_id,
            fence_first,
        } => {
            let cluster_id = image.cluster_id.clone().unwrap_or(cluster_id);
            // A retry of the same process's registration gets the same answer.
            if let Some(b) = image.broker(broker.id) {
                if b.incarnation == broker.incarnation {
                    live.seen.insert(b.id, (b.epoch, now));
                    return Decision {
                        records: Vec::new(),
                        reply: ControllerReply::Registered {
                            epoch: b.epoch,
                            cluster_id,
                            offset: image.offset,
                        },
                    };
                }
            }
            let epoch = image
                .broker(broker.id)
                .map_or(0, |b| b.epoch)
                .max(image.offset as i64)
                + 1;
            let mut records = Vec::new();
            // A new process under a registered id (the old one crashed and
            // restarted within its session): the old registration is
            // fenced first, so its partitions get new leaders from their
            // ISRs and it rejoins them by catching up.
            if fence_first {
                if let Some(old) = image.broker(broker.id).filter(|b| !b.fenced) {
                    records.extend(fence_records(image, old.id, old.epoch));
                }
            }
            if image.cluster_id.is_none() {
                records.push(MetadataRecord::ClusterId {
                    id: cluster_id.clone(),
                });
            }
            let id = broker.id;
            records.push(MetadataRecord::RegisterBroker(BrokerRegistration {
                epoch,
                fenced: fence_first,
                ..broker
            }));
            if !fence_first {
                // Alone, it leads its partitions again at once.
                if let Ok((next, _)) = image.apply(image.offset + 1, &records) {
                    records.extend(unfence_records(&next, id, epoch).into_iter().skip(1));
                }
            }
            live.seen.insert(id, (epoch, now));
            Decision {
                records,
                reply: ControllerReply::Registered {
                    epoch,
                    cluster_id,
                    offset: 0,
                },
            }
        }
        ControllerRequest::Heartbeat {
            id,
            epoch,
            metadata_offset,
            shutting_down,
        } => {
            let Some(b) = image.broker(id).filter(|b| b.epoch == epoch) else {
                return Decision {
                    records: Vec::new(),
                    reply: ControllerReply::Heartbeat {
                        fenced: true,
                        stale: true,
                    },
                };
            };
            live.seen.insert(id, (epoch, now));
            let caught_up = metadata_offset >= live.registered_at.get(&id).copied().unwrap_or(0);
            let records = match (b.fenced, shutting_down) {
                (false, true) => fence_records(image, id, epoch),
                (true, false) if caught_up => unfence_records(image, id, epoch),
                _ => Vec::new(),
            };
            let fenced = if records.is_empty() {
                b.fenced
            } else {
                shutting_down
            };
            Decision {
                records,
                reply: ControllerReply::Heartbeat {
                    fenced,
                    stale: false,
                },
            }
        }
        ControllerRequest::AllocateProducerIds { broker, count } => {
            if image.broker(broker).is_none() || count <= 0 {
                return refuse(format!(
                    "broker {broker} may not allocate {count} producer ids"
                ));
            }
            let first = image.next_producer_id;
            Decision {
                records: vec![MetadataRecord::ProducerIds {
                    broker,
                    next_producer_id: first.saturating_add(count),
                }],
                reply: ControllerReply::ProducerIds { first, count },
            }
        }
        ControllerRequest::Reassign(items) => {
            // Each partition is decided against the image with the earlier ones applied.
            let mut work = image.clone();
            let mut records = Vec::new();
            let mut results = Vec::with_capacity(items.len());
            for (topic, partition, target) in items {
                let decided = reassignment::reassign(&work, &topic, partition, target.as_deref())
                    .and_then(|r| {
                        work.apply(work.offset, &r)
                            .map(|(next, _)| (next, r))
                            .map_err(|e| ReassignError::InvalidReplicaAssignment(e.to_string()))
                    });
                results.push(decided.map(|(next, r)| {
                    work = next;
                    records.extend(r);
                }));
            }
            Decision {
                records,
                reply: ControllerReply::Reassigned {
                    offset: image.offset,
                    results,
                },
            }
        }
        ControllerRequest::AlterPartition {
            topic_id,
            partition,
            leader,
            epoch,
            isr,
        } => {
            let (records, result) =
                match reassignment::alter_isr(image, topic_id, partition, leader, epoch, &isr) {
                    Ok(r) => (r, Ok(())),
                    Err(e) => (Vec::new(), Err(e)),
                };
            Decision {
                records,
                reply: ControllerReply::Reassigned {
                    offset: image.offset,
                    results: vec![result],
                },
            }
        }
        ControllerRequest::Elect { how, partitions } => {
            let partitions = partitions.unwrap_or_else(|| election::all_partitions(image));
            let mut records = Vec::new();
            let mut results = Vec::with_capacity(partitions.len());
            for (topic, partition) in partitions {
                let r = election::elect(image, &topic, partition, how).map(|r| records.push(r));
                results.push((topic, partition, r));
            }
            Decision {
                records,
                reply: ControllerReply::Elected {
                    offset: image.offset,
                    results,
                },
            }
        }
        // Answered by the driver, which has the quorum.
        ControllerRequest::DescribeQuorum => refuse("DescribeQuorum is not a change".into()),
    }
}

/// The driver: runs [`decide`] serially on the leader and commits its records.
pub struct Controller {
    image: Arc<RwLock<Arc<MetadataImage>>>,
    quorum: Weak<Quorum>,
    state: tokio::sync::Mutex<Liveness>,
    /// What the session and election timers read.
    clock: SharedClock,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller over the node's `image`, committing to `quorum`.
    pub fn new(
        image: Arc<RwLock<Arc<MetadataImage>>>,
        quorum: Weak<Quorum>,
        clock: SharedClock,
    ) -> Controller {
        Controller {
            image,
            quorum,
            clock,
            state: tokio::sync::Mutex::new(Liveness::default()),
        }
    }

    async fn commit(&self, records: &[MetadataRecord]) -> Result<u64, ProposeError> {
        let q = self
            .quorum
            .upgrade()
            .ok_or_else(|| ProposeError::Stopped("the metadata quorum has stopped".into()))?;
        q.propose(encode_batch(records)).await
    }

    /// Handles one request (encoded); the reply, encoded.
    pub async fn handle(&self, bytes: Vec<u8>) -> Vec<u8> {
        let reply = match postcard::from_bytes::<ControllerRequest>(&bytes) {
            Ok(req) => self.run(req).await,
            Err(e) => ControllerReply::Refused(format!("undecodable controller request: {e}")),
        };
        postcard::to_allocvec(&reply).unwrap_or_default()
    }

    async fn run(&self, req: ControllerRequest) -> ControllerReply {
        if matches!(req, ControllerRequest::DescribeQuorum) {
            return match self.quorum.upgrade() {
                Some(q) => ControllerReply::Quorum(q.describe()),
                None => ControllerReply::Failed("the quorum has stopped".into()),
            };
        }
        let mut live = self.state.lock().await;
        let registering = match &req {
            ControllerRequest::Register { broker, .. } => Some(broker.id),
            _ => None,
        };
        let image = self.image.read().clone();
        let Decision { records, mut reply } = decide(&image, &mut live, req, self.clock.now());
        if records.is_empty() {
            return reply;
        }
        match self.commit(&records).await {
            Ok(at) => {
                if let Some(id) = registering {
                    live.registered_at.insert(id, at);
                }
                match &mut reply {
                    ControllerReply::Committed { offset }
                    | ControllerReply::Registered { offset, .. }
                    | ControllerReply::Reassigned { offset, .. }
                    | ControllerReply::Elected { offset, .. } => *offset = at,
                    _ => {}
                }
                reply
            }
            Err(ProposeError::NotLeader { .. }) => ControllerReply::NotLeader,
            Err(e) => ControllerReply::Failed(e.to_string()),
        }
    }

    /// Gives every partition whose preferred replica could lead and does
    /// not its preferred leader back (`auto.leader.rebalance.enable`); call
    /// every `leader.imbalance.check.interval.seconds` on every voter (a
    /// no-op unless this node leads).
    pub async fn balance_leaders(&self) {
        let Some(q) = self.quorum.upgrade() else {
            return;
        };
        if q.leader() != Some(q.node_id()) {
            return;
        }
        drop(q);
        let imbalanced = election::imbalanced(&self.image.read());
        if imbalanced.is_empty() {
            return;
        }
        let reply = self
            .run(ControllerRequest::Elect {
                how: ElectionType::Preferred,
                partitions: Some(imbalanced),
            })
            .await;
        if let ControllerReply::Elected { results, .. } = &reply {
            let moved: Vec<String> = results
                .iter()
                .filter(|(_, _, r)| r.is_ok())
                .map(|(t, p, _)| format!("{t}-{p}"))
                .collect();
            if !moved.is_empty() {
                tracing::info!(partitions = ?moved, "preferred replicas lead again (auto.leader.rebalance.enable)");
            }
        } else {
            tracing::warn!(reply = ?reply, "leader balancing failed");
        }
    }

    /// Fences brokers whose session expired; call periodically on every
    /// voter (a no-op unless this node leads).
    pub async fn fence_expired(&self, session: Duration) {
        let Some(q) = self.quorum.upgrade() else {
            return;
        };
        let mut live = self.state.lock().await;
        if q.leader() != Some(q.node_id()) {
            // A later leadership starts watching afresh.
            live.since = None;
            live.seen.clear();
            return;
        }
        drop(q);
        let image = self.image.read().clone();
        for id in live.expired(&image, self.clock.now(), session) {
            let Some(b) = image.broker(id) else { continue };
            let records = fence_records(&image, id, b.epoch);
            match self.commit(&records).await {
                Ok(_) => {
                    tracing::warn!(broker = %id, "fenced a broker that stopped heartbeating (broker.session.timeout.ms)")
                }
                Err(e) => {
                    tracing::warn!(broker = %id, error = %e, "fencing a silent broker failed")
                }
            }
            // Later fences see the image with this one applied.
            return;
        }
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
