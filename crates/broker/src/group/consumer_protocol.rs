//! ConsumerGroupHeartbeat (KIP-848): members join, leave and reconcile by
//! heartbeat; the assignment itself is computed in [`super::consumer`].

use crate::net::log::Escaped;
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::consumer;
use super::state::{Group, GroupState};
use super::store::Entry;
use super::{code, GroupCoordinator};

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

/// The member epoch a static member sends when it leaves for a while (it
/// means to come back with the same `group.instance.id`).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

impl GroupCoordinator {
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
        let id = req.group.clone();
        self.groups.with_or_add(&id, || Group::new(&id, self.wall_ms()), |g| {
            if !g.members.is_empty() {
                return fail(ResponseError::GroupIdNotFound);
            }
            let cg = g.consumer.get_or_insert_with(|| consumer::ConsumerGroup {
                assignor: assignor.clone(),
                ..Default::default()
            });
            let now = self.now();
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
                    // A static member that restarts takes over its old
                    // incarnation's assignment, once that one has left
                    // temporarily (epoch -2); while it is still active the
                    // instance id is not released (Kafka's UNRELEASED_INSTANCE_ID).
                    let previous = req.instance_id.as_ref().and_then(|inst| {
                        cg.members
                            .values()
                            .find(|m| m.instance_id.as_ref() == Some(inst) && m.id != member_id)
                            .map(|m| (m.id.clone(), m.epoch))
                    });
                    if let Some((old_id, old_epoch)) = &previous {
                        if *old_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                            tracing::info!(group = %Escaped(&req.group), member = %Escaped(&member_id), owner = %Escaped(old_id), "static member cannot join: its instance id is still in use");
                            return fail(ResponseError::UnreleasedInstanceId);
                        }
                    }
                    let replaced = previous.and_then(|(old_id, _)| cg.members.remove(&old_id));
                    let same_subscription = replaced
                        .as_ref()
                        .is_some_and(|old| old.subscribed == subscribed);
                    let target = replaced.map(|old| old.target).unwrap_or_default();
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
                            target,
                            sent: None,
                            last_seen: now,
                        },
                    );
                    if same_subscription {
                        // The group is unchanged: the new incarnation gets the old one's partitions.
                        tracing::info!(group = %Escaped(&req.group), member = %Escaped(&member_id), "static member rejoined (KIP-848)");
                    } else {
                        cg.group_epoch += 1;
                        cg.assignor = assignor;
                        cg.recompute(lookup);
                    }
                    g.protocol_type = Some("consumer".into());
                    g.state = GroupState::Stable;
                    g.empty_since_ms = None;
                    tracing::info!(group = %Escaped(&req.group), member = %Escaped(&member_id), epoch = cg.group_epoch, "consumer joined (KIP-848)");
                }
                LEAVE_GROUP_STATIC_MEMBER_EPOCH
                    if cg
                        .members
                        .get(&req.member_id)
                        .is_some_and(|m| m.instance_id.is_some()) =>
                {
                    // A static member leaving for a while keeps its partitions
                    // until its session times out or it comes back.
                    if let Some(m) = cg.members.get_mut(&req.member_id) {
                        m.epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                        m.last_seen = now;
                    }
                    tracing::info!(group = %Escaped(&req.group), member = %Escaped(&req.member_id), "static member left temporarily (KIP-848)");
                    return ConsumerHeartbeatReply {
                        member_id: req.member_id.clone(),
                        member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                        heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
                        ..Default::default()
                    };
                }
                -1 | LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                    if cg.members.remove(&req.member_id).is_some() {
                        cg.group_epoch += 1;
                        cg.recompute(lookup);
                        tracing::info!(group = %Escaped(&req.group), member = %Escaped(&req.member_id), "consumer left (KIP-848)");
                    }
                    if cg.members.is_empty() {
                        g.state = GroupState::Empty;
                        g.empty_since_ms = Some(self.wall_ms());
                    }
                    return ConsumerHeartbeatReply {
                        member_id: req.member_id.clone(),
                        member_epoch: req.member_epoch,
                        heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
                        ..Default::default()
                    };
                }
                epoch => {
                    let replaced_by_another = req.instance_id.as_ref().is_some_and(|inst| {
                        cg.members
                            .values()
                            .any(|m| m.instance_id.as_ref() == Some(inst) && m.id != req.member_id)
                    });
                    let Some(m) = cg.members.get_mut(&req.member_id) else {
                        return fail(if replaced_by_another {
                            ResponseError::FencedInstanceId
                        } else {
                            ResponseError::UnknownMemberId
                        });
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
                let value = Some(super::store::GroupValue {
                    protocol_type: "consumer".to_string(),
                    generation: group_epoch,
                    protocol: Some(assignor_name),
                    ..Default::default()
                });
                let _ = self.persist(
                    &req.group,
                    &[Entry::Group {
                        group: req.group.clone(),
                        value,
                    }],
                );
            }
            reply
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::coordinator;
    use super::*;

    fn beat(
        c: &GroupCoordinator,
        member: &str,
        inst: &str,
        epoch: i32,
        owned: Vec<(uuid::Uuid, i32)>,
    ) -> ConsumerHeartbeatReply {
        c.consumer_heartbeat(ConsumerHeartbeat {
            group: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: Some(inst.into()),
            client_id: "cli".into(),
            host: "/127.0.0.1".into(),
            subscribed: Some(vec!["t".into()]),
            assignor: Some("range".into()),
            owned: Some(owned),
        })
    }

    fn partitions(r: &ConsumerHeartbeatReply) -> Vec<i32> {
        r.assignment
            .as_ref()
            .map(|a| a.iter().flat_map(|(_, p)| p.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_static_member_that_leaves_for_a_while_gets_its_partitions_back() {
        let dir = tempfile::tempdir().expect("dir");
        let c = coordinator(dir.path(), 60_000);
        let t = c.topics.get("t").expect("topic").id;
        assert_eq!(beat(&c, "a1", "a", 0, vec![]).member_epoch, 1);
        // "b" joins while "a" reports holding nothing: each gets its half.
        let b = beat(&c, "b1", "b", 0, vec![]);
        assert_eq!(b.error, 0, "{b:?}");
        let b_parts = partitions(&b);
        let a = beat(&c, "a1", "a", 1, vec![]);
        let a_parts = partitions(&a);
        assert_eq!((a_parts.clone(), b_parts.clone()), (vec![0], vec![1]));
        let a = beat(&c, "a1", "a", a.member_epoch, vec![(t, 0)]);
        let b = beat(&c, "b1", "b", b.member_epoch, vec![(t, 1)]);
        let epoch = c.describe_consumer_group("g").expect("group").group_epoch;

        // "b" leaves temporarily: kept, with its partitions, the group unchanged.
        let left = beat(&c, "b1", "b", LEAVE_GROUP_STATIC_MEMBER_EPOCH, vec![(t, 1)]);
        assert_eq!(
            (left.error, left.member_epoch),
            (0, LEAVE_GROUP_STATIC_MEMBER_EPOCH)
        );
        let d = c.describe_consumer_group("g").expect("group");
        assert_eq!((d.group_epoch, d.members.len()), (epoch, 2));
        let a = beat(&c, "a1", "a", a.member_epoch, vec![(t, 0)]);
        assert_eq!(a.error, 0);
        assert!(a.assignment.is_none(), "a keeps its own: {a:?}");

        // A new incarnation of "b" takes over its partitions, no group change.
        let back = beat(&c, "b2", "b", 0, vec![]);
        assert_eq!(back.error, 0);
        assert_eq!(partitions(&back), b_parts);
        assert_eq!(
            c.describe_consumer_group("g").expect("group").group_epoch,
            epoch
        );
        // The old incarnation is fenced.
        let old = beat(&c, "b1", "b", b.member_epoch, vec![]);
        assert_eq!(old.error, code(ResponseError::FencedInstanceId));
        // A third incarnation while "b2" is active: the instance id is not released.
        let third = beat(&c, "b3", "b", 0, vec![]);
        assert_eq!(third.error, code(ResponseError::UnreleasedInstanceId));
    }
}
