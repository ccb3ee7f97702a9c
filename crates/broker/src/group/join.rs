//! JoinGroup and the rebalance it drives: members join, the coordinator
//! waits for every member (or the rebalance deadline), picks the protocol
//! and the leader, and answers every waiting JoinGroup.

use crate::net::log::Escaped;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::membership::{check_member, remove_member};
use super::state::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::{code, GroupCoordinator, Pending};

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
    /// True from JoinGroup v9: a returning static leader can be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

impl GroupCoordinator {
    /// JoinGroup.
    pub fn join(&self, req: JoinRequest) -> Pending<JoinOutcome> {
        self.join_at(req, self.now())
    }

    /// JoinGroup at `now` (the coordinator's clock, passed in so tests can move it).
    pub(crate) fn join_at(&self, req: JoinRequest, now: Instant) -> Pending<JoinOutcome> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return join_error(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return join_error(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        let id = req.group.clone();
        self.groups.with_or_add(&id, || Group::new(&id, self.wall_ms()), |g| {
            if !accept_joining_member(g, &req, self.config.max_size) {
                // Kafka's rule: the member that would take the group past
                // group.max.size is refused (and, if it was a member that had
                // not rejoined yet, removed).
                tracing::info!(group = %g.id, member = %req.member_id, max = self.config.max_size, "group is full; refusing join (group.max.size)");
                if g.pending.remove(&req.member_id).is_none() && g.member(&req.member_id).is_some() {
                    remove_member(g, &req.member_id);
                    if g.state == GroupState::PreparingRebalance {
                        try_complete(g, now, self.wall_ms());
                    }
                }
                return join_error(ResponseError::GroupMaxSizeReached, "");
            }
            let kip848 = g.consumer.as_ref().is_some_and(|c| !c.members.is_empty());
            if kip848 || !g.supports(&req.protocol_type, &req.protocols) {
                return join_error(ResponseError::InconsistentGroupProtocol, &req.member_id);
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
            let member_id = if req.member_id.is_empty() {
                match &req.instance_id {
                    Some(inst) => match g.by_instance(inst).map(|m| m.id.clone()) {
                        // KIP-345: a static member back under a new member id
                        // takes over its old slot; the old id is fenced.
                        Some(old) => return self.replace_static_member(g, &req, &old, now),
                        None => {
                            let id = format!("{inst}-{}", uuid::Uuid::new_v4());
                            g.members.push(new_member(id.clone()));
                            id
                        }
                    },
                    None => {
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
                            return join_error(ResponseError::MemberIdRequired, &id);
                        }
                        g.members.push(new_member(id.clone()));
                        id
                    }
                }
            } else if req.instance_id.is_none() && g.pending.remove(&req.member_id).is_some() {
                g.members.push(new_member(req.member_id.clone()));
                req.member_id.clone()
            } else {
                if let Err(e) = check_member(g, &req.member_id, req.instance_id.as_deref()) {
                    return join_error(e, &req.member_id);
                }
                let Some(m) = g.member(&req.member_id) else {
                    return join_error(ResponseError::UnknownMemberId, &req.member_id);
                };
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
            };

            let rx = update_member(g, &member_id, &req, now);
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
            try_complete(g, now, self.wall_ms());
            if g.state == GroupState::CompletingRebalance {
                self.persist_group(g);
            }
            Pending::Wait(rx)
        })
    }

    /// A static member rejoining with no member id (a new process with the
    /// same `group.instance.id`): it replaces `old`, keeping its assignment.
    /// In a Stable group whose chosen protocol stays the same nothing is
    /// rebalanced: the member gets the current generation and its SyncGroup
    /// returns the assignment it had. Otherwise the group rebalances.
    fn replace_static_member(
        &self,
        g: &mut Group,
        req: &JoinRequest,
        old: &str,
        now: Instant,
    ) -> Pending<JoinOutcome> {
        let inst = req.instance_id.as_deref().unwrap_or_default();
        let fresh = format!("{inst}-{}", uuid::Uuid::new_v4());
        tracing::info!(group = %g.id, instance = inst, old, new = %fresh, state = g.state.name(), "static member rejoined; replacing its old member id");
        let previous_leader = g.leader.clone().unwrap_or_default();
        let Some(m) = g.member_mut(old) else {
            return join_error(ResponseError::UnknownMemberId, "");
        };
        m.id = fresh.clone();
        if let Some(w) = m.awaiting_join.take() {
            let _ = w.send(JoinOutcome {
                error: code(ResponseError::FencedInstanceId),
                generation: -1,
                member_id: old.to_string(),
                ..Default::default()
            });
        }
        if let Some(w) = m.awaiting_sync.take() {
            let _ = w.send(SyncOutcome {
                error: code(ResponseError::FencedInstanceId),
                ..Default::default()
            });
        }
        if g.leader.as_deref() == Some(old) {
            g.leader = Some(fresh.clone());
        }
        let rx = update_member(g, &fresh, req, now);
        match g.state {
            GroupState::Stable if g.protocol == g.select_protocol() => {
                // No rebalance: answer now, as Kafka does once the group is stored.
                if let Some(m) = g.member_mut(&fresh) {
                    m.awaiting_join = None;
                }
                let mut out = current_join(g, &fresh);
                if !req.supports_skip_assignment {
                    // Before KIP-814 the leader cannot be told to skip the
                    // assignment, so a returning leader is answered as a
                    // follower under the leader id it replaced.
                    out.leader = previous_leader;
                    out.members.clear();
                } else {
                    out.skip_assignment = g.leader.as_deref() == Some(fresh.as_str());
                }
                return Pending::Ready(out);
            }
            // The leader may already hold the old member id in its
            // assignment (or the protocol changes): rebalance.
            GroupState::Stable | GroupState::CompletingRebalance => prepare_rebalance(g, now),
            _ => {}
        }
        try_complete(g, now, self.wall_ms());
        if g.state == GroupState::CompletingRebalance {
            self.persist_group(g);
        }
        Pending::Wait(rx)
    }
}

/// An immediate JoinGroup error.
fn join_error(e: ResponseError, member_id: &str) -> Pending<JoinOutcome> {
    Pending::Ready(JoinOutcome {
        error: code(e),
        generation: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    })
}

/// Kafka's `acceptJoiningMember`: may this join go ahead without taking the
/// group past `max` members? A join naming a static instance the group
/// already has does not grow the group (it replaces that member, or is
/// fenced by it), so it is always accepted.
fn accept_joining_member(g: &Group, req: &JoinRequest, max: usize) -> bool {
    let replaces = req
        .instance_id
        .as_deref()
        .is_some_and(|i| g.by_instance(i).is_some());
    let member = g.member(&req.member_id);
    match g.state {
        GroupState::Empty | GroupState::Dead => true,
        // Counting the members already rejoined turns away the last ones to rejoin.
        GroupState::PreparingRebalance => {
            replaces
                || member.is_some_and(|m| m.awaiting_join.is_some())
                || g.members
                    .iter()
                    .filter(|m| m.awaiting_join.is_some())
                    .count()
                    < max
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            replaces || member.is_some() || g.members.len() < max
        }
    }
}

/// Records a join's protocols and timeouts on `member_id` and parks its answer.
fn update_member(
    g: &mut Group,
    member_id: &str,
    req: &JoinRequest,
    now: Instant,
) -> oneshot::Receiver<JoinOutcome> {
    let (tx, rx) = oneshot::channel();
    if let Some(m) = g.member_mut(member_id) {
        m.protocols = req.protocols.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.last_seen = now;
        m.awaiting_join = Some(tx);
    }
    rx
}

/// The longest rebalance timeout of the group's members: how long a
/// rebalance waits for them to rejoin.
fn longest_rebalance_timeout(g: &Group) -> Duration {
    let ms = g
        .members
        .iter()
        .map(|m| m.rebalance_timeout_ms.max(0))
        .max()
        .unwrap_or(0);
    Duration::from_millis(ms as u64)
}

/// Starts a rebalance: members must rejoin before the longest rebalance timeout.
pub(super) fn prepare_rebalance(g: &mut Group, now: Instant) {
    g.state = GroupState::PreparingRebalance;
    g.rebalance_deadline = Some(now + longest_rebalance_timeout(g));
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
pub(super) fn try_complete(g: &mut Group, now: Instant, wall_ms: i64) {
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
    // Dynamic members that did not rejoin in time are out; static members
    // keep their place (and their share of the assignment) until their
    // session expires (KIP-345).
    let missing: Vec<String> = g
        .members
        .iter()
        .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in missing {
        tracing::info!(group = %g.id, member = %id, "member did not rejoin in time; removing");
        remove_member(g, &id);
    }
    g.pending.clear();
    if !g.members.is_empty() && g.members.iter().all(|m| m.awaiting_join.is_none()) {
        // Only absent static members: wait another rebalance timeout (or
        // until their sessions expire), as Kafka does.
        tracing::info!(group = %g.id, "no member rejoined; extending the rebalance");
        g.rebalance_deadline = Some(now + longest_rebalance_timeout(g));
        return;
    }
    g.initial_join = false;
    if g.members.is_empty() {
        g.state = GroupState::Empty;
        g.generation += 1;
        g.empty_since_ms = Some(wall_ms);
        return;
    }
    g.generation += 1;
    g.protocol = g.select_protocol();
    // The leader must be one of the members that rejoined.
    if g.leader
        .as_ref()
        .and_then(|l| g.member(l))
        .is_none_or(|m| m.awaiting_join.is_none())
    {
        g.leader = g
            .members
            .iter()
            .find(|m| m.awaiting_join.is_some())
            .map(|m| m.id.clone());
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
                skip_assignment: false,
            });
        }
    }
    tracing::info!(group = %Escaped(&g.id), generation = g.generation, members = g.members.len(), protocol = %protocol, "rebalance complete");
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
        skip_assignment: false,
    }
}
