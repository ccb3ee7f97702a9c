//! The group coordinator: Kafka's classic rebalance protocol, protocol
//! agnostic (consumer groups, Connect-style groups), with committed offsets
//! and group metadata kept in `__consumer_offsets`.
//!
//! All groups live behind one mutex; requests that must wait (JoinGroup
//! until the rebalance completes, SyncGroup until the leader's assignment)
//! get a oneshot receiver and wait outside the lock. A ticker
//! ([`GroupCoordinator::tick`]) expires sessions, ends rebalances at their
//! deadline and expires old offsets.

pub mod consumer;
pub mod state;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use strom_record::{BatchBuilder, OwnedRecord};
use tokio::sync::oneshot;

use crate::topics::{TopicError, Topics};
use crate::txn::producer_state::Marker;
use state::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use store::{Committed, Entry, OFFSETS_TOPIC};

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
    /// `offsets.topic.num.partitions`.
    pub offsets_partitions: i32,
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

/// A ConsumerGroupHeartbeat request (KIP-848), decoupled from the wire.
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeat {
    /// Group id.
    pub group: String,
    /// Member id ("" on a v0 join).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave, else the current epoch.
    pub member_epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// New subscription, `None` when unchanged.
    pub subscribed: Option<Vec<String>>,
    /// Requested assignor, `None` for the default.
    pub assignor: Option<String>,
    /// Partitions the member owns, `None` when unchanged.
    pub owned: Option<Vec<(uuid::Uuid, i32)>>,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeatReply {
    /// Kafka error code.
    pub error: i16,
    /// Member id.
    pub member_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// Heartbeat interval to use.
    pub heartbeat_interval_ms: i32,
    /// New assignment, `None` when unchanged.
    pub assignment: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
}

/// A JoinGroup request, decoupled from the wire version.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Group id.
    pub group: String,
    /// Member id ("" for a new member).
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Client id from the header.
    pub client_id: String,
    /// Peer address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Protocols with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// True from JoinGroup v4: new members must rejoin with the given id (KIP-394).
    pub require_known_member_id: bool,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct Described {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment).
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Committed offsets of one topic: (partition, commit if any).
pub type TopicOffsets = (String, Vec<(i32, Option<Committed>)>);

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
    groups: Mutex<HashMap<String, Group>>,
}

impl GroupCoordinator {
    /// Creates `__consumer_offsets` if needed and rebuilds groups from it.
    pub fn open(topics: Arc<Topics>, config: GroupConfig) -> Result<GroupCoordinator, TopicError> {
        if topics.get(OFFSETS_TOPIC).is_none() {
            let mut cfg = BTreeMap::new();
            cfg.insert("cleanup.policy".to_string(), "compact".to_string());
            cfg.insert(
                "segment.bytes".to_string(),
                config.offsets_segment_bytes.to_string(),
            );
            topics.create(OFFSETS_TOPIC, config.offsets_partitions, cfg)?;
        }
        let c = GroupCoordinator {
            topics,
            config,
            groups: Mutex::new(HashMap::new()),
        };
        c.replay();
        Ok(c)
    }

    fn offsets_partitions(&self) -> i32 {
        self.topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partition_count() as i32)
            .unwrap_or(1)
    }

    /// Reads every `__consumer_offsets` partition and rebuilds the groups.
    fn replay(&self) {
        let Some(t) = self.topics.get(OFFSETS_TOPIC) else {
            return;
        };
        let now = now_ms();
        let mut groups = self.groups.lock();
        let mut records = 0usize;
        let n = t.partition_count() as i32;
        for p in t.partitions.read().iter() {
            let scanned = crate::partition::scan_batches(&p.log, 0, |h, bytes| {
                if h.is_control() {
                    // A transaction marker: its offsets join the committed ones or go.
                    let mut marker = None;
                    let _ = strom_record::for_each_record(bytes, |rec| {
                        marker = marker.or(rec.key.and_then(Marker::from_key));
                    });
                    for g in groups.values_mut() {
                        if store::partition_for(&g.id, n) != p.index {
                            continue;
                        }
                        if let Some(o) = g.txn_offsets.remove(&h.producer_id) {
                            if marker == Some(Marker::Commit) {
                                g.offsets.extend(o);
                            }
                        }
                    }
                    return;
                }
                let txn = h.is_transactional().then_some(h.producer_id);
                let res = strom_record::for_each_record(bytes, |rec| {
                    records += 1;
                    match rec.key.and_then(|k| store::decode(k, rec.value)) {
                        Some(Entry::Offset {
                            group,
                            topic,
                            partition,
                            value,
                        }) => {
                            let g = groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now));
                            match value {
                                Some(c) => match txn {
                                    Some(pid) => {
                                        g.txn_offsets
                                            .entry(pid)
                                            .or_default()
                                            .insert((topic, partition), c);
                                    }
                                    None => {
                                        g.offsets.insert((topic, partition), c);
                                    }
                                },
                                None => {
                                    g.offsets.remove(&(topic, partition));
                                }
                            }
                        }
                        Some(Entry::Group {
                            group,
                            value: Some((ptype, generation, protocol)),
                        }) => {
                            let g = groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now));
                            g.protocol_type = (!ptype.is_empty()).then_some(ptype);
                            g.generation = generation;
                            g.protocol = protocol;
                        }
                        Some(Entry::Group { group, value: None }) => {
                            groups.remove(&group);
                        }
                        None => {}
                    }
                });
                if let Err(e) = res {
                    tracing::warn!(partition = p.index, error = %e, "skipping unreadable __consumer_offsets batch");
                }
            });
            if let Err(e) = scanned {
                tracing::error!(partition = p.index, error = %e, "cannot replay __consumer_offsets");
            }
        }
        groups.retain(|_, g| {
            !g.offsets.is_empty() || !g.txn_offsets.is_empty() || g.protocol_type.is_some()
        });
        tracing::info!(
            groups = groups.len(),
            records,
            "rebuilt consumer groups from __consumer_offsets"
        );
    }

    /// Appends entries of one group to its `__consumer_offsets` partition.
    fn persist(&self, group: &str, entries: &[Entry]) -> Result<(), i16> {
        if entries.is_empty() {
            return Ok(());
        }
        let p = self
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partition(store::partition_for(group, self.offsets_partitions())))
            .ok_or(code(ResponseError::CoordinatorNotAvailable))?;
        let ts = now_ms();
        let mut b = BatchBuilder::new(ts);
        for e in entries {
            let (key, value) = store::encode(e);
            b = b.push(OwnedRecord {
                key: Some(key),
                value,
                headers: Vec::new(),
                timestamp: ts,
            });
        }
        let bytes = b.build();
        p.log.append(&bytes).map_err(|e| {
            tracing::error!(group, error = %e, "cannot write __consumer_offsets");
            code(ResponseError::CoordinatorNotAvailable)
        })?;
        Ok(())
    }

    fn persist_group(&self, g: &Group) {
        let value = Some((
            g.protocol_type.clone().unwrap_or_default(),
            g.generation,
            g.protocol.clone(),
        ));
        let _ = self.persist(
            &g.id,
            &[Entry::Group {
                group: g.id.clone(),
                value,
            }],
        );
    }

    /// JoinGroup.
    pub fn join(&self, req: JoinRequest) -> Pending<JoinOutcome> {
        let now = Instant::now();
        let fail = |e: ResponseError, member_id: &str| {
            Pending::Ready(JoinOutcome {
                error: code(e),
                generation: -1,
                member_id: member_id.to_string(),
                ..Default::default()
            })
        };
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return fail(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        let mut groups = self.groups.lock();
        let g = groups
            .entry(req.group.clone())
            .or_insert_with(|| Group::new(&req.group, now_ms()));
        let kip848 = g.consumer.as_ref().is_some_and(|c| !c.members.is_empty());
        if kip848 || !g.supports(&req.protocol_type, &req.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }
        let new_member = |id: String| Member {
            id,
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            last_seen: now,
            awaiting_join: None,
            awaiting_sync: None,
        };
        let member_id = if let Some(inst) = &req.instance_id {
            match g.by_instance(inst).map(|m| m.id.clone()) {
                Some(existing) if !req.member_id.is_empty() && req.member_id != existing => {
                    return fail(ResponseError::FencedInstanceId, &req.member_id);
                }
                Some(existing) if req.member_id.is_empty() => {
                    // A restarted static member takes over its old slot; the old id is fenced.
                    let fresh = format!("{inst}-{}", uuid::Uuid::new_v4());
                    if let Some(m) = g.member_mut(&existing) {
                        m.id = fresh.clone();
                        if let Some(w) = m.awaiting_join.take() {
                            let _ = w.send(JoinOutcome {
                                error: code(ResponseError::FencedInstanceId),
                                generation: -1,
                                ..Default::default()
                            });
                        }
                        if let Some(w) = m.awaiting_sync.take() {
                            let _ = w.send(SyncOutcome {
                                error: code(ResponseError::FencedInstanceId),
                                ..Default::default()
                            });
                        }
                    }
                    if g.leader.as_deref() == Some(existing.as_str()) {
                        g.leader = Some(fresh.clone());
                    }
                    fresh
                }
                Some(existing) => existing,
                None if !req.member_id.is_empty() => {
                    return fail(ResponseError::UnknownMemberId, &req.member_id)
                }
                None => {
                    let id = format!("{inst}-{}", uuid::Uuid::new_v4());
                    g.members.push(new_member(id.clone()));
                    id
                }
            }
        } else if req.member_id.is_empty() {
            let id = format!(
                "{}-{}",
                if req.client_id.is_empty() {
                    "member"
                } else {
                    &req.client_id
                },
                uuid::Uuid::new_v4()
            );
            if req.require_known_member_id {
                g.pending.insert(
                    id.clone(),
                    now + Duration::from_millis(req.session_timeout_ms.max(0) as u64),
                );
                return fail(ResponseError::MemberIdRequired, &id);
            }
            g.members.push(new_member(id.clone()));
            id
        } else if g.pending.remove(&req.member_id).is_some() {
            g.members.push(new_member(req.member_id.clone()));
            req.member_id.clone()
        } else if let Some(m) = g.member(&req.member_id) {
            // Kafka's rule: a known member rejoining with unchanged metadata
            // (it lost the JoinGroup answer, or a follower re-syncs) gets the
            // current generation back instead of starting a rebalance.
            let unchanged = m.protocols == req.protocols;
            let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
            let quiet = match g.state {
                GroupState::CompletingRebalance => unchanged,
                GroupState::Stable => unchanged && !is_leader,
                _ => false,
            };
            if quiet {
                let id = req.member_id.clone();
                if let Some(m) = g.member_mut(&id) {
                    m.last_seen = now;
                }
                return Pending::Ready(current_join(g, &id));
            }
            req.member_id.clone()
        } else {
            return fail(ResponseError::UnknownMemberId, &req.member_id);
        };

        let (tx, rx) = oneshot::channel();
        if let Some(m) = g.member_mut(&member_id) {
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.last_seen = now;
            m.awaiting_join = Some(tx);
        }
        if g.protocol_type.is_none() || g.members.len() == 1 {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                g.state = GroupState::PreparingRebalance;
                let delay = Duration::from_millis(self.config.initial_rebalance_delay_ms);
                let cap = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
                g.rebalance_deadline = Some(now + delay.min(cap));
                g.initial_join = true;
                g.empty_since_ms = None;
            }
            GroupState::Stable | GroupState::CompletingRebalance => prepare_rebalance(g, now),
            GroupState::PreparingRebalance => {}
        }
        try_complete(g, now);
        if g.state == GroupState::CompletingRebalance {
            self.persist_group(g);
        }
        Pending::Wait(rx)
    }

    /// SyncGroup.
    pub fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncOutcome> {
        let fail = |e: ResponseError| {
            Pending::Ready(SyncOutcome {
                error: code(e),
                ..Default::default()
            })
        };
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if let Err(e) = check_member(g, member_id, instance_id) {
            return fail(e);
        }
        if generation != g.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let m = g
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Pending::Ready(SyncOutcome {
                    error: 0,
                    protocol_type: g.protocol_type.clone(),
                    protocol: g.protocol.clone(),
                    assignment: m,
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.member_mut(member_id) {
                    m.last_seen = Instant::now();
                    m.awaiting_sync = Some(tx);
                }
                if g.leader.as_deref() == Some(member_id) {
                    let map: HashMap<String, Bytes> = assignments.into_iter().collect();
                    g.state = GroupState::Stable;
                    let (pt, proto) = (g.protocol_type.clone(), g.protocol.clone());
                    for m in g.members.iter_mut() {
                        m.assignment = map.get(&m.id).cloned().unwrap_or_default();
                        if let Some(w) = m.awaiting_sync.take() {
                            let _ = w.send(SyncOutcome {
                                error: 0,
                                protocol_type: pt.clone(),
                                protocol: proto.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    tracing::info!(group, generation, members = g.members.len(), "group stable");
                }
                Pending::Wait(rx)
            }
        }
    }

    /// Heartbeat: returns the error code.
    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return code(ResponseError::UnknownMemberId);
        };
        if let Err(e) = check_member(g, member_id, instance_id) {
            return code(e);
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_seen = Instant::now();
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ if generation != g.generation => code(ResponseError::IllegalGeneration),
            _ => 0,
        }
    }

    /// LeaveGroup for (member id, instance id) pairs; per-member error codes.
    pub fn leave(&self, group: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return members
                .iter()
                .map(|_| code(ResponseError::UnknownMemberId))
                .collect();
        };
        let now = Instant::now();
        let mut out = Vec::new();
        let mut removed = false;
        for (id, inst) in members {
            let target = match inst {
                Some(i) => match g.by_instance(i) {
                    Some(m) if id.is_empty() || *id == m.id => Ok(m.id.clone()),
                    Some(_) => Err(ResponseError::FencedInstanceId),
                    None => Err(ResponseError::UnknownMemberId),
                },
                None if g.pending.remove(id).is_some() => {
                    out.push(0);
                    continue;
                }
                None => g
                    .member(id)
                    .map(|m| m.id.clone())
                    .ok_or(ResponseError::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    remove_member(g, &id);
                    removed = true;
                    out.push(0);
                }
                Err(e) => out.push(code(e)),
            }
        }
        if removed {
            tracing::info!(group, "member left; rebalancing");
            after_removal(g, now);
            if g.state == GroupState::CompletingRebalance || g.state == GroupState::Empty {
                self.persist_group(g);
            }
        }
        out
    }

    /// OffsetCommit. Returns per-(topic, partition) codes, or one code for all.
    pub fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.groups.lock();
        let g = groups
            .entry(group.to_string())
            .or_insert_with(|| Group::new(group, now_ms()));
        check_committer(g, generation, member_id, instance_id)?;
        let (codes, entries, accepted) = self.accept_offsets(group, offsets);
        self.persist(group, &entries)?;
        g.offsets.extend(accepted);
        Ok(codes)
    }

    /// TxnOffsetCommit: offsets written inside producer `pid`'s transaction;
    /// they become visible when the transaction commits.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit(
        &self,
        group: &str,
        pid: i64,
        epoch: i16,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.groups.lock();
        let g = groups
            .entry(group.to_string())
            .or_insert_with(|| Group::new(group, now_ms()));
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            check_committer(g, generation, member_id, instance_id)?;
        }
        let (codes, entries, accepted) = self.accept_offsets(group, offsets);
        if !entries.is_empty() {
            let p = self
                .topics
                .get(OFFSETS_TOPIC)
                .and_then(|t| t.partition(store::partition_for(group, self.offsets_partitions())))
                .ok_or(code(ResponseError::CoordinatorNotAvailable))?;
            let ts = now_ms();
            let mut b = BatchBuilder::new(ts)
                .producer(pid, epoch, -1)
                .transactional(false);
            for e in &entries {
                let (key, value) = store::encode(e);
                b = b.push(OwnedRecord {
                    key: Some(key),
                    value,
                    headers: Vec::new(),
                    timestamp: ts,
                });
            }
            p.append_coordinator(&mut b.build()).map_err(|e| {
                tracing::error!(group, error = %e, "cannot write __consumer_offsets");
                code(ResponseError::CoordinatorNotAvailable)
            })?;
        }
        g.txn_offsets.entry(pid).or_default().extend(accepted);
        Ok(codes)
    }

    /// Applies (commit) or drops (abort) the transactional offsets of `pid`
    /// in the groups stored on `__consumer_offsets` partition `partition`.
    pub fn complete_txn(&self, partition: i32, pid: i64, commit: bool) {
        let n = self.offsets_partitions();
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            if store::partition_for(&g.id, n) != partition {
                continue;
            }
            if let Some(offsets) = g.txn_offsets.remove(&pid) {
                if commit {
                    g.offsets.extend(offsets);
                }
            }
        }
    }

    /// True when `group` has transactional offsets not yet committed for the
    /// partition (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let groups = self.groups.lock();
        let key = (topic.to_string(), partition);
        groups
            .get(group)
            .is_some_and(|g| g.txn_offsets.values().any(|o| o.contains_key(&key)))
    }

    /// Checks offsets to commit; returns the codes, the entries to write and the accepted offsets.
    #[allow(clippy::type_complexity)]
    fn accept_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> (Vec<i16>, Vec<Entry>, Vec<((String, i32), Committed)>) {
        let mut codes = Vec::with_capacity(offsets.len());
        let mut entries = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, c) in offsets {
            let exists = self
                .topics
                .get(&topic)
                .and_then(|t| t.partition(partition))
                .is_some();
            if !exists {
                codes.push(code(ResponseError::UnknownTopicOrPartition));
            } else if c.metadata.len() > self.config.offset_metadata_max_bytes {
                codes.push(code(ResponseError::OffsetMetadataTooLarge));
            } else {
                codes.push(0);
                entries.push(Entry::Offset {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition,
                    value: Some(c.clone()),
                });
                accepted.push(((topic, partition), c));
            }
        }
        (codes, entries, accepted)
    }

    /// OffsetFetch: `None` topics means every committed partition.
    pub fn fetch_offsets(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<TopicOffsets> {
        let groups = self.groups.lock();
        let g = groups.get(group);
        match topics {
            Some(list) => list
                .into_iter()
                .map(|(t, parts)| {
                    let ps = parts
                        .into_iter()
                        .map(|p| (p, g.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned())))
                        .collect();
                    (t, ps)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
                if let Some(g) = g {
                    for ((t, p), c) in &g.offsets {
                        by_topic
                            .entry(t.clone())
                            .or_default()
                            .push((*p, Some(c.clone())));
                    }
                }
                for v in by_topic.values_mut() {
                    v.sort_by_key(|(p, _)| *p);
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// ListGroups: (group id, protocol type, state, group type "classic" or "consumer"), filtered by state names.
    pub fn list(&self, states: &[String]) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.groups.lock();
        let mut v: Vec<_> = groups
            .values()
            .filter(|g| {
                states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state_name(g)))
            })
            .map(|g| {
                let kind = if g.consumer.is_some() {
                    "consumer"
                } else {
                    "classic"
                };
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    state_name(g),
                    kind,
                )
            })
            .collect();
        v.sort();
        v
    }

    /// DescribeGroups for one group (`None`: unknown, reported as Dead).
    pub fn describe(&self, group: &str) -> Option<Described> {
        let groups = self.groups.lock();
        let g = groups.get(group)?;
        let proto = g.protocol.clone().unwrap_or_default();
        let show_protocol = matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        );
        if let Some(cg) = g.consumer.as_ref().filter(|c| !c.members.is_empty()) {
            let members = cg
                .members
                .values()
                .map(|m| {
                    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (id, p) in m.sent.iter().flatten() {
                        if let Some(t) = self.topics.get_by_id(*id) {
                            by_topic.entry(t.name.clone()).or_default().push(*p);
                        }
                    }
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.host.clone(),
                        Bytes::new(),
                        encode_assignment(by_topic),
                    )
                })
                .collect();
            return Some(Described {
                state: cg.state(),
                protocol_type: "consumer".into(),
                protocol: cg.assignor.clone(),
                members,
            });
        }
        Some(Described {
            state: state_name(g),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if show_protocol {
                proto.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|m| {
                    let meta = m.metadata(&proto).cloned().unwrap_or_default();
                    let assignment = if g.state == GroupState::Stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    };
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        assignment,
                    )
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group.
    pub fn delete(&self, group: &str) -> i16 {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get(group) else {
            return code(ResponseError::GroupIdNotFound);
        };
        let consumer_members = g.consumer.as_ref().map_or(0, |c| c.members.len());
        if !g.members.is_empty() || consumer_members > 0 || g.state != GroupState::Empty {
            return code(ResponseError::NonEmptyGroup);
        }
        let mut entries: Vec<Entry> = g
            .offsets
            .keys()
            .map(|(t, p)| Entry::Offset {
                group: group.to_string(),
                topic: t.clone(),
                partition: *p,
                value: None,
            })
            .collect();
        entries.push(Entry::Group {
            group: group.to_string(),
            value: None,
        });
        if let Err(e) = self.persist(group, &entries) {
            return e;
        }
        groups.remove(group);
        tracing::info!(group, "deleted group");
        0
    }

    /// OffsetDelete: removes committed offsets the group is not subscribed to.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.groups.lock();
        let g = groups
            .get_mut(group)
            .ok_or(code(ResponseError::GroupIdNotFound))?;
        let subscribed = subscribed_topics(g)?;
        let mut codes = Vec::new();
        let mut entries = Vec::new();
        for (t, p) in &partitions {
            if subscribed.iter().any(|s| s == t) {
                codes.push(code(ResponseError::GroupSubscribedToTopic));
            } else {
                codes.push(0);
                entries.push(Entry::Offset {
                    group: group.to_string(),
                    topic: t.clone(),
                    partition: *p,
                    value: None,
                });
            }
        }
        self.persist(group, &entries)?;
        for e in entries {
            if let Entry::Offset {
                topic, partition, ..
            } = e
            {
                g.offsets.remove(&(topic, partition));
            }
        }
        Ok(codes)
    }

    /// ConsumerGroupHeartbeat (KIP-848): join, leave, or report and receive assignments.
    pub fn consumer_heartbeat(&self, req: ConsumerHeartbeat) -> ConsumerHeartbeatReply {
        let fail = |e: ResponseError| ConsumerHeartbeatReply {
            error: code(e),
            member_id: req.member_id.clone(),
            member_epoch: -1,
            ..Default::default()
        };
        let assignor = req.assignor.clone().unwrap_or_else(|| "uniform".into());
        if assignor != "uniform" && assignor != "range" {
            return fail(ResponseError::UnsupportedAssignor);
        }
        let mut groups = self.groups.lock();
        let g = groups
            .entry(req.group.clone())
            .or_insert_with(|| Group::new(&req.group, now_ms()));
        if !g.members.is_empty() {
            return fail(ResponseError::GroupIdNotFound);
        }
        let cg = g.consumer.get_or_insert_with(|| consumer::ConsumerGroup {
            assignor: assignor.clone(),
            ..Default::default()
        });
        let now = Instant::now();
        let topics = &self.topics;
        let lookup = |t: &str| topics.get(t).map(|t| (t.id, t.partition_count() as i32));
        let member_id;
        match req.member_epoch {
            0 => {
                let Some(subscribed) = req.subscribed.clone() else {
                    return fail(ResponseError::InvalidRequest);
                };
                member_id = if req.member_id.is_empty() {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    req.member_id.clone()
                };
                // A static member that restarts replaces its old incarnation.
                if let Some(inst) = &req.instance_id {
                    let old: Vec<String> = cg
                        .members
                        .values()
                        .filter(|m| m.instance_id.as_deref() == Some(inst))
                        .map(|m| m.id.clone())
                        .collect();
                    for id in old {
                        cg.members.remove(&id);
                    }
                }
                cg.members.insert(
                    member_id.clone(),
                    consumer::CMember {
                        id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        client_id: req.client_id.clone(),
                        host: req.host.clone(),
                        epoch: 0,
                        subscribed,
                        owned: req.owned.clone().unwrap_or_default().into_iter().collect(),
                        target: Default::default(),
                        sent: None,
                        last_seen: now,
                    },
                );
                cg.group_epoch += 1;
                cg.assignor = assignor;
                cg.recompute(lookup);
                g.protocol_type = Some("consumer".into());
                g.state = GroupState::Stable;
                g.empty_since_ms = None;
                tracing::info!(group = %req.group, member = %member_id, epoch = cg.group_epoch, "consumer joined (KIP-848)");
            }
            -1 | -2 => {
                if cg.members.remove(&req.member_id).is_some() {
                    cg.group_epoch += 1;
                    cg.recompute(lookup);
                    tracing::info!(group = %req.group, member = %req.member_id, "consumer left (KIP-848)");
                }
                if cg.members.is_empty() {
                    g.state = GroupState::Empty;
                    g.empty_since_ms = Some(now_ms());
                }
                return ConsumerHeartbeatReply {
                    member_id: req.member_id.clone(),
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
                    ..Default::default()
                };
            }
            epoch => {
                let Some(m) = cg.members.get_mut(&req.member_id) else {
                    return fail(ResponseError::UnknownMemberId);
                };
                if epoch != m.epoch {
                    return fail(ResponseError::FencedMemberEpoch);
                }
                m.last_seen = now;
                if let Some(owned) = &req.owned {
                    m.owned = owned.iter().copied().collect();
                }
                let resubscribed = req.subscribed.as_ref().is_some_and(|s| *s != m.subscribed);
                if let Some(s) = &req.subscribed {
                    m.subscribed = s.clone();
                }
                if resubscribed {
                    cg.group_epoch += 1;
                    cg.recompute(lookup);
                }
                member_id = req.member_id.clone();
            }
        }
        let (now_assigned, _) = cg.current_assignment(&member_id);
        let group_epoch = cg.group_epoch;
        let assignor_name = cg.assignor.clone();
        let Some(m) = cg.members.get_mut(&member_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        // The member reaches the group epoch once it has nothing left to
        // revoke; partitions others still hold arrive later in that epoch.
        if m.owned.is_subset(&m.target) {
            m.epoch = group_epoch;
        }
        let changed = m.sent.as_ref() != Some(&now_assigned);
        let assignment = changed.then(|| {
            let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in &now_assigned {
                by_topic.entry(*t).or_default().push(*p);
            }
            by_topic.into_iter().collect()
        });
        m.sent = Some(now_assigned);
        let reply = ConsumerHeartbeatReply {
            error: 0,
            member_id: member_id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment,
        };
        if req.member_epoch == 0 {
            let value = Some(("consumer".to_string(), group_epoch, Some(assignor_name)));
            let _ = self.persist(
                &req.group,
                &[Entry::Group {
                    group: req.group.clone(),
                    value,
                }],
            );
        }
        reply
    }

    /// Expires sessions, completes rebalances past their deadline, expires offsets.
    pub fn tick(&self) {
        let now = Instant::now();
        let wall = now_ms();
        let mut groups = self.groups.lock();
        let mut dead = Vec::new();
        let session = Duration::from_millis(self.config.consumer_session_timeout_ms.max(0) as u64);
        for g in groups.values_mut() {
            if let Some(cg) = g.consumer.as_mut() {
                let expired: Vec<String> = cg
                    .members
                    .values()
                    .filter(|m| now.duration_since(m.last_seen) > session)
                    .map(|m| m.id.clone())
                    .collect();
                if !expired.is_empty() {
                    for id in &expired {
                        tracing::info!(group = %g.id, member = %id, "session expired; removing member (KIP-848)");
                        cg.members.remove(id);
                    }
                    cg.group_epoch += 1;
                    let topics = &self.topics;
                    cg.recompute(|t| topics.get(t).map(|t| (t.id, t.partition_count() as i32)));
                    if cg.members.is_empty() {
                        g.state = GroupState::Empty;
                        g.empty_since_ms = Some(wall);
                    }
                }
            }
            g.pending.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
                .filter(|m| {
                    now.duration_since(m.last_seen)
                        > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %g.id, member = %id, "session expired; removing member");
                remove_member(g, id);
            }
            if !expired.is_empty() {
                after_removal(g, now);
            }
            if g.state == GroupState::PreparingRebalance {
                try_complete(g, now);
                if matches!(g.state, GroupState::CompletingRebalance | GroupState::Empty) {
                    self.persist_group(g);
                }
            }
            if g.state == GroupState::Empty {
                let since = g.empty_since_ms.unwrap_or(wall);
                let retention = self.config.offsets_retention_ms;
                let doomed: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(_, c)| {
                        let base = if g.protocol_type.is_some() {
                            since
                        } else {
                            c.commit_timestamp
                        };
                        wall - base > retention
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                if !doomed.is_empty() {
                    let entries: Vec<Entry> = doomed
                        .iter()
                        .map(|(t, p)| Entry::Offset {
                            group: g.id.clone(),
                            topic: t.clone(),
                            partition: *p,
                            value: None,
                        })
                        .collect();
                    if self.persist(&g.id, &entries).is_ok() {
                        for k in &doomed {
                            g.offsets.remove(k);
                        }
                        tracing::info!(group = %g.id, partitions = doomed.len(), "expired committed offsets (offsets.retention.minutes)");
                    }
                }
                if g.offsets.is_empty() && g.members.is_empty() && wall - since > retention {
                    dead.push(g.id.clone());
                }
            }
        }
        for id in dead {
            if self
                .persist(
                    &id,
                    &[Entry::Group {
                        group: id.clone(),
                        value: None,
                    }],
                )
                .is_ok()
            {
                groups.remove(&id);
            }
        }
    }
}

/// The state to report: KIP-848 groups have their own names (Stable, Reconciling).
fn state_name(g: &Group) -> &'static str {
    match &g.consumer {
        Some(c) if !c.members.is_empty() => c.state(),
        _ => g.state.name(),
    }
}

/// Fencing and membership checks shared by sync, heartbeat and commit.
/// Checks that the committer is a current member (or, with no member id and
/// generation -1, that the group has no members: a standalone commit).
fn check_committer(
    g: &mut Group,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), i16> {
    let consumer_members = g.consumer.as_ref().map_or(0, |c| c.members.len());
    if generation < 0 && member_id.is_empty() && instance_id.is_none() {
        if !g.members.is_empty() || consumer_members > 0 {
            return Err(code(ResponseError::UnknownMemberId));
        }
    } else if let Some(cg) = g.consumer.as_ref().filter(|c| !c.members.is_empty()) {
        let m = cg
            .members
            .get(member_id)
            .ok_or(code(ResponseError::UnknownMemberId))?;
        if generation != m.epoch {
            return Err(code(ResponseError::StaleMemberEpoch));
        }
    } else {
        check_member(g, member_id, instance_id).map_err(code)?;
        if generation != g.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(code(ResponseError::RebalanceInProgress));
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_seen = Instant::now();
        }
    }
    Ok(())
}

fn check_member(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(inst) = instance_id {
        if let Some(m) = g.by_instance(inst) {
            if m.id != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
        }
    }
    if g.member(member_id).is_none() {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(())
}

/// Removes a member and answers its waiters.
fn remove_member(g: &mut Group, id: &str) {
    if let Some(pos) = g.members.iter().position(|m| m.id == id) {
        let mut m = g.members.remove(pos);
        if let Some(w) = m.awaiting_join.take() {
            let _ = w.send(JoinOutcome {
                error: code(ResponseError::UnknownMemberId),
                generation: -1,
                member_id: m.id.clone(),
                ..Default::default()
            });
        }
        if let Some(w) = m.awaiting_sync.take() {
            let _ = w.send(SyncOutcome {
                error: code(ResponseError::UnknownMemberId),
                ..Default::default()
            });
        }
    }
    if g.leader.as_deref() == Some(id) {
        g.leader = None;
    }
}

/// After members left or expired: rebalance the rest, or become Empty.
fn after_removal(g: &mut Group, now: Instant) {
    if g.members.is_empty() && g.pending.is_empty() {
        g.state = GroupState::Empty;
        g.generation += 1;
        g.protocol = None;
        g.leader = None;
        g.rebalance_deadline = None;
        g.empty_since_ms = Some(now_ms());
        return;
    }
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => prepare_rebalance(g, now),
        GroupState::PreparingRebalance => try_complete(g, now),
        _ => {}
    }
}

/// Starts a rebalance: members must rejoin before the longest rebalance timeout.
fn prepare_rebalance(g: &mut Group, now: Instant) {
    let timeout = g
        .members
        .iter()
        .map(|m| m.rebalance_timeout_ms.max(0))
        .max()
        .unwrap_or(0);
    g.state = GroupState::PreparingRebalance;
    g.rebalance_deadline = Some(now + Duration::from_millis(timeout as u64));
    for m in g.members.iter_mut() {
        if let Some(w) = m.awaiting_sync.take() {
            let _ = w.send(SyncOutcome {
                error: code(ResponseError::RebalanceInProgress),
                ..Default::default()
            });
        }
    }
}

/// Completes the rebalance when every member has rejoined (or the deadline passed).
fn try_complete(g: &mut Group, now: Instant) {
    if g.state != GroupState::PreparingRebalance {
        return;
    }
    let deadline_passed = g.rebalance_deadline.is_none_or(|d| now >= d);
    let all_joined = g.members.iter().all(|m| m.awaiting_join.is_some()) && g.pending.is_empty();
    // A group forming from Empty waits out group.initial.rebalance.delay.ms
    // so members starting together land in one generation.
    if !deadline_passed && (!all_joined || g.initial_join) {
        return;
    }
    // Members that did not rejoin in time are out.
    let missing: Vec<String> = g
        .members
        .iter()
        .filter(|m| m.awaiting_join.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in missing {
        tracing::info!(group = %g.id, member = %id, "member did not rejoin in time; removing");
        remove_member(g, &id);
    }
    g.pending.clear();
    g.initial_join = false;
    if g.members.is_empty() {
        g.state = GroupState::Empty;
        g.generation += 1;
        g.empty_since_ms = Some(now_ms());
        return;
    }
    g.generation += 1;
    g.protocol = g.select_protocol();
    if g.leader.as_ref().is_none_or(|l| g.member(l).is_none()) {
        g.leader = g.members.first().map(|m| m.id.clone());
    }
    g.state = GroupState::CompletingRebalance;
    g.rebalance_deadline = None;
    let leader = g.leader.clone().unwrap_or_default();
    let protocol = g.protocol.clone().unwrap_or_default();
    let all: Vec<(String, Option<String>, Bytes)> = g
        .members
        .iter()
        .map(|m| {
            (
                m.id.clone(),
                m.instance_id.clone(),
                m.metadata(&protocol).cloned().unwrap_or_default(),
            )
        })
        .collect();
    for m in g.members.iter_mut() {
        m.last_seen = now;
        if let Some(w) = m.awaiting_join.take() {
            let _ = w.send(JoinOutcome {
                error: 0,
                generation: g.generation,
                protocol: g.protocol.clone(),
                protocol_type: g.protocol_type.clone(),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
            });
        }
    }
    tracing::info!(group = %g.id, generation = g.generation, members = g.members.len(), protocol = %protocol, "rebalance complete");
}

/// The JoinGroup answer of the current generation for `member` (the member
/// list goes to the leader only).
fn current_join(g: &Group, member: &str) -> JoinOutcome {
    let leader = g.leader.clone().unwrap_or_default();
    let protocol = g.protocol.clone().unwrap_or_default();
    let members = if member == leader {
        g.members
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata(&protocol).cloned().unwrap_or_default(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinOutcome {
        error: 0,
        generation: g.generation,
        protocol: g.protocol.clone(),
        protocol_type: g.protocol_type.clone(),
        leader,
        member_id: member.to_string(),
        members,
    }
}

/// A consumer-protocol assignment (v0) as classic DescribeGroups carries it.
fn encode_assignment(by_topic: BTreeMap<String, Vec<i32>>) -> Bytes {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;
    let a = kafka_protocol::messages::ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_string(t),
                        ))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    if a.encode(&mut out, 0).is_err() {
        return Bytes::new();
    }
    out.freeze()
}

/// Topics the members subscribe to (consumer protocol), for OffsetDelete.
fn subscribed_topics(g: &Group) -> Result<Vec<String>, i16> {
    if g.members.is_empty() {
        return Ok(Vec::new());
    }
    if g.protocol_type.as_deref() != Some("consumer") {
        return Err(code(ResponseError::NonEmptyGroup));
    }
    let proto = g.protocol.clone().unwrap_or_default();
    let mut topics = Vec::new();
    for m in &g.members {
        if let Some(meta) = m.metadata(&proto) {
            if meta.len() >= 2 {
                let version = i16::from_be_bytes([meta[0], meta[1]]);
                let mut body = meta.slice(2..);
                // Client-supplied bytes: decode defensively (see strom_protocol's decode docs).
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    <kafka_protocol::messages::ConsumerProtocolSubscription as kafka_protocol::protocol::Decodable>::decode(&mut body, version)
                }));
                if let Ok(Ok(sub)) = decoded {
                    topics.extend(sub.topics.iter().map(|t| t.to_string()));
                }
            }
        }
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn config(retention_ms: i64) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 1,
            max_session_timeout_ms: 1_000_000,
            offsets_partitions: 3,
            offsets_segment_bytes: 104_857_600,
            offsets_retention_ms: retention_ms,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }

    fn coordinator(dir: &std::path::Path, retention_ms: i64) -> GroupCoordinator {
        let topics =
            Arc::new(Topics::open(dir, Arc::new(BrokerConfig::default())).expect("topics"));
        if topics.get("t").is_none() {
            topics.create("t", 2, BTreeMap::new()).expect("topic");
        }
        GroupCoordinator::open(topics, config(retention_ms)).expect("coordinator")
    }

    fn commit(c: &GroupCoordinator, group: &str, offset: i64) {
        let committed = Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: now_ms(),
        };
        c.commit(group, -1, "", None, vec![("t".into(), 0, committed)])
            .expect("commit");
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = coordinator(dir.path(), 0);
        commit(&c, "old", 5);
        std::thread::sleep(Duration::from_millis(5));
        c.tick();
        assert!(c.fetch_offsets("old", None).is_empty(), "expired");
        assert!(c.list(&[]).is_empty(), "the group is gone too");
        // A long retention keeps them, across a restart (replayed from __consumer_offsets).
        let dir = tempfile::tempdir().expect("tempdir");
        let c = coordinator(dir.path(), 3_600_000);
        commit(&c, "kept", 7);
        c.tick();
        drop(c);
        let c = coordinator(dir.path(), 3_600_000);
        let got = c.fetch_offsets("kept", None);
        assert_eq!(got[0].1[0].1.as_ref().map(|c| c.offset), Some(7));
    }
}
