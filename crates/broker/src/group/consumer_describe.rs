//! ConsumerGroupDescribe (KIP-848): a consumer-protocol group's epochs and
//! members, each with the assignment it holds now and its target
//! assignment. DescribeGroups' view of groups lives in [`super::admin`].

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;
use uuid::Uuid;

use super::consumer::Tp;
use super::GroupCoordinator;

/// Why a group cannot be described by the API asked (Kafka's messages;
/// both are GROUP_ID_NOT_FOUND on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DescribeError {
    /// No group by that id.
    #[error("Group {0} not found.")]
    NotFound(String),
    /// ConsumerGroupDescribe of a classic group.
    #[error("Group {0} is not a consumer group.")]
    NotConsumer(String),
    /// DescribeGroups (v6+) of a consumer-protocol group.
    #[error("Group {0} is not a classic group.")]
    NotClassic(String),
}

/// Partitions of one topic in an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedTopic {
    /// Topic id.
    pub id: Uuid,
    /// Topic name.
    pub name: String,
    /// Partition indexes, ascending.
    pub partitions: Vec<i32>,
}

/// One member as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// What the member holds now (the assignment last handed to it).
    pub assignment: Vec<AssignedTopic>,
    /// The member's share of the group's target assignment.
    pub target_assignment: Vec<AssignedTopic>,
}

/// A consumer-protocol group as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    /// State name (Empty, Reconciling, Stable).
    pub state: &'static str,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the target assignment: Strom recomputes the target on
    /// every group epoch bump, so it is the group epoch.
    pub assignment_epoch: i32,
    /// Server-side assignor.
    pub assignor: String,
    /// Members by id.
    pub members: Vec<ConsumerMemberDescription>,
}

impl GroupCoordinator {
    /// ConsumerGroupDescribe for one group: unknown groups and classic
    /// groups are errors, as in Kafka.
    pub fn describe_consumer_group(
        &self,
        group: &str,
    ) -> Result<ConsumerGroupDescription, DescribeError> {
        self.groups
            .with(group, |g| {
                let g = &*g;
                let cg = match &g.consumer {
                    Some(cg) if g.members.is_empty() => cg,
                    _ => return Err(DescribeError::NotConsumer(group.to_string())),
                };
                let members = cg
                    .members
                    .values()
                    .map(|m| ConsumerMemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        member_epoch: m.epoch,
                        client_id: m.client_id.clone(),
                        client_host: m.host.clone(),
                        subscribed: m.subscribed.clone(),
                        assignment: self.by_topic(m.sent.iter().flatten()),
                        target_assignment: self.by_topic(m.target.iter()),
                    })
                    .collect();
                Ok(ConsumerGroupDescription {
                    state: cg.state(),
                    group_epoch: cg.group_epoch,
                    assignment_epoch: cg.group_epoch,
                    assignor: cg.assignor.clone(),
                    members,
                })
            })
            .unwrap_or_else(|| Err(DescribeError::NotFound(group.to_string())))
    }

    /// Groups (topic id, partition) pairs by topic, by name, skipping
    /// topics deleted meanwhile.
    fn by_topic<'a>(&self, tps: impl Iterator<Item = &'a Tp>) -> Vec<AssignedTopic> {
        let mut by_id: BTreeMap<Uuid, BTreeSet<i32>> = BTreeMap::new();
        for (id, p) in tps {
            by_id.entry(*id).or_default().insert(*p);
        }
        let mut out: Vec<AssignedTopic> = by_id
            .into_iter()
            .filter_map(|(id, ps)| {
                let t = self.topics.get_by_id(id)?;
                Some(AssignedTopic {
                    id,
                    name: t.name.clone(),
                    partitions: ps.into_iter().collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{consumer_beat, coordinator};
    use super::*;

    fn heartbeat(c: &GroupCoordinator, member: &str, epoch: i32, owned: Vec<Tp>) -> i32 {
        let r = consumer_beat(c, member, epoch, Some(owned));
        assert_eq!(r.error, 0);
        r.member_epoch
    }

    #[test]
    fn describes_members_epochs_and_both_assignments() {
        let dir = tempfile::tempdir().expect("dir");
        let c = coordinator(dir.path(), 60_000);
        assert_eq!(
            c.describe_consumer_group("g").unwrap_err(),
            DescribeError::NotFound("g".into())
        );
        assert_eq!(heartbeat(&c, "a", 0, Vec::new()), 1);
        let d = c.describe_consumer_group("g").expect("consumer group");
        assert_eq!(
            (d.state, d.group_epoch, d.assignment_epoch),
            ("Stable", 1, 1)
        );
        assert_eq!(d.assignor, "range");
        let a = &d.members[0];
        assert_eq!((a.member_id.as_str(), a.member_epoch), ("a", 1));
        assert_eq!(a.subscribed, vec!["t".to_string()]);
        assert_eq!(a.assignment, a.target_assignment);
        assert_eq!(a.assignment[0].name, "t");
        assert_eq!(a.assignment[0].partitions, vec![0, 1]);
        // "a" reports holding both partitions; "b" joins: it holds nothing
        // until "a" releases partition 1, its target.
        let t = c.topics.get("t").expect("topic").id;
        heartbeat(&c, "a", 1, vec![(t, 0), (t, 1)]);
        heartbeat(&c, "b", 0, Vec::new());
        let d = c.describe_consumer_group("g").expect("consumer group");
        assert_eq!((d.state, d.group_epoch), ("Reconciling", 2));
        let b = d.members.iter().find(|m| m.member_id == "b").expect("b");
        assert!(b.assignment.is_empty());
        assert_eq!(b.target_assignment[0].partitions, vec![1]);
    }

    #[test]
    fn classic_groups_are_not_consumer_groups() {
        let dir = tempfile::tempdir().expect("dir");
        let c = coordinator(dir.path(), 60_000);
        let committed = super::super::store::Committed {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        };
        let codes = c.commit("simple", -1, "", None, vec![("t".into(), 0, committed)]);
        assert_eq!(codes, Ok(vec![0]));
        let e = c.describe_consumer_group("simple").unwrap_err();
        assert_eq!(e.to_string(), "Group simple is not a consumer group.");
    }
}
