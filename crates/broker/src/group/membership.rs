//! SyncGroup, Heartbeat and LeaveGroup of the classic protocol, and the
//! removal of members that leave or fail.

use crate::net::log::Escaped;
use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::join::{prepare_rebalance, try_complete};
use super::state::{Group, GroupState, JoinOutcome, SyncOutcome};
use super::{code, GroupCoordinator, Pending};

impl GroupCoordinator {
    /// SyncGroup.
    pub fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncOutcome> {
        let now = self.now();
        self.sync_at(group, generation, member_id, instance_id, assignments, now)
    }

    /// SyncGroup at `now`.
    pub(crate) fn sync_at(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Pending<SyncOutcome> {
        let fail = |e: ResponseError| {
            Pending::Ready(SyncOutcome {
                error: code(e),
                ..Default::default()
            })
        };
        self.groups.with(group, |g| {
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
                        m.last_seen = now;
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
                        tracing::info!(group = %Escaped(group), generation, members = g.members.len(), "group stable");
                        self.persist_group(g);
                    }
                    Pending::Wait(rx)
                }
            }
        }).unwrap_or_else(|| fail(ResponseError::UnknownMemberId))
    }

    /// Heartbeat: returns the error code.
    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        self.heartbeat_at(group, generation, member_id, instance_id, self.now())
    }

    /// Heartbeat at `now`.
    pub(crate) fn heartbeat_at(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> i16 {
        self.groups
            .with(group, |g| {
                if let Err(e) = check_member(g, member_id, instance_id) {
                    return code(e);
                }
                if let Some(m) = g.member_mut(member_id) {
                    m.last_seen = now;
                }
                match g.state {
                    GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
                    GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
                    _ if generation != g.generation => code(ResponseError::IllegalGeneration),
                    _ => 0,
                }
            })
            .unwrap_or(code(ResponseError::UnknownMemberId))
    }

    /// LeaveGroup for (member id, instance id) pairs; per-member error codes.
    pub fn leave(&self, group: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        self.leave_at(group, members, self.now())
    }

    /// LeaveGroup at `now`.
    pub(crate) fn leave_at(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
        now: Instant,
    ) -> Vec<i16> {
        self.groups
            .with(group, |g| {
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
                    after_removal(g, now, self.wall_ms());
                    if g.state == GroupState::CompletingRebalance || g.state == GroupState::Empty {
                        self.persist_group(g);
                    }
                }
                out
            })
            .unwrap_or_else(|| {
                members
                    .iter()
                    .map(|_| code(ResponseError::UnknownMemberId))
                    .collect()
            })
    }
}

/// Checks that `member_id` (with its static `instance_id`, if any) is a current member.
pub(super) fn check_member(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    // Kafka's validateMember: an instance id must map to this very member
    // id; a newer incarnation of the instance fences the older one.
    if let Some(inst) = instance_id {
        match g.by_instance(inst) {
            None => return Err(ResponseError::UnknownMemberId),
            Some(m) if m.id != member_id => return Err(ResponseError::FencedInstanceId),
            Some(_) => {}
        }
    }
    if g.member(member_id).is_none() {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(())
}

/// Removes a member and answers its waiters.
pub(super) fn remove_member(g: &mut Group, id: &str) {
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
pub(super) fn after_removal(g: &mut Group, now: Instant, wall_ms: i64) {
    if g.members.is_empty() && g.pending.is_empty() {
        g.state = GroupState::Empty;
        g.generation += 1;
        g.protocol = None;
        g.leader = None;
        g.rebalance_deadline = None;
        g.empty_since_ms = Some(wall_ms);
        return;
    }
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => prepare_rebalance(g, now),
        GroupState::PreparingRebalance => try_complete(g, now, wall_ms),
        _ => {}
    }
}
