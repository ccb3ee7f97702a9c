//! JoinGroup and the rebalance it drives: members join, the coordinator
//! waits for every member (or the rebalance deadline), picks the protocol
//! and the leader, and answers every waiting JoinGroup.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::membership::remove_member;
use super::state::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::{code, now_ms, GroupCoordinator, Pending};

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

impl GroupCoordinator {
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
}

/// Starts a rebalance: members must rejoin before the longest rebalance timeout.
pub(super) fn prepare_rebalance(g: &mut Group, now: Instant) {
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
pub(super) fn try_complete(g: &mut Group, now: Instant) {
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
pub(super) fn current_join(g: &Group, member: &str) -> JoinOutcome {
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
