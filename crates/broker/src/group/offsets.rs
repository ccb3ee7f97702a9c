//! Committed offsets: OffsetCommit, TxnOffsetCommit (visible when the
//! transaction commits), OffsetFetch and OffsetDelete.

use crate::net::log::Escaped;
use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use strom_record::BatchBuilder;

use super::membership::check_member;
use super::state::{Group, GroupState};
use super::store::{self, Committed, Entry};
use super::{code, push_entries, GroupCoordinator};

/// Committed offsets of one topic: (partition, commit if any).
pub type TopicOffsets = (String, Vec<(i32, Option<Committed>)>);

impl GroupCoordinator {
    /// OffsetCommit. Returns per-(topic, partition) codes, or one code for all.
    pub fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<Vec<i16>, i16> {
        self.groups.with_or_add(
            group,
            || Group::new(group, self.wall_ms()),
            |g| {
                check_committer(g, generation, member_id, instance_id, self.now())?;
                let (codes, entries, accepted) = self.accept_offsets(group, offsets);
                self.persist(group, &entries)?;
                g.offsets.extend(accepted);
                Ok(codes)
            },
        )
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
        self.groups.with_or_add(group, || Group::new(group, self.wall_ms()), |g| {
            if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
                check_committer(g, generation, member_id, instance_id, self.now())?;
            }
            let (codes, entries, accepted) = self.accept_offsets(group, offsets);
            if !entries.is_empty() {
                let p = self.offsets_partition(group)?;
                let ts = self.wall_ms();
                let b = BatchBuilder::new(ts)
                    .producer(pid, epoch, -1)
                    .transactional(false);
                let mut bytes = push_entries(b, &entries, ts).build();
                p.append_coordinator(&mut bytes).map_err(|e| {
                    tracing::error!(group = %Escaped(group), error = %e, "cannot write __consumer_offsets");
                    code(ResponseError::CoordinatorNotAvailable)
                })?;
            }
            g.txn_offsets.entry(pid).or_default().extend(accepted);
            Ok(codes)
        })
    }

    /// Applies (commit) or drops (abort) the transactional offsets of `pid`
    /// in the groups stored on `__consumer_offsets` partition `partition`.
    pub fn complete_txn(&self, partition: i32, pid: i64, commit: bool) {
        let n = self.offsets_partitions();
        for shared in self.groups.all() {
            let mut g = shared.lock();
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
        let key = (topic.to_string(), partition);
        self.groups
            .with(group, |g| {
                g.txn_offsets.values().any(|o| o.contains_key(&key))
            })
            .unwrap_or(false)
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
            let exists = self.topics.partition_exists(&topic, partition);
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
        let view = |g: Option<&Group>, topics: Option<Vec<(String, Vec<i32>)>>| match topics {
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
        };
        // Moved into whichever call runs.
        let mut topics = Some(topics);
        match self
            .groups
            .with(group, |g| view(Some(g), topics.take().flatten()))
        {
            Some(v) => v,
            None => view(None, topics.take().flatten()),
        }
    }

    /// OffsetDelete: removes committed offsets the group is not subscribed to.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        self.groups
            .with(group, |g| {
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
            })
            .unwrap_or(Err(code(ResponseError::GroupIdNotFound)))
    }
}

/// Fencing and membership checks shared by sync, heartbeat and commit.
/// Checks that the committer is a current member (or, with no member id and
/// generation -1, that the group has no members: a standalone commit).
pub(super) fn check_committer(
    g: &mut Group,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    now: Instant,
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
            m.last_seen = now;
        }
    }
    Ok(())
}

/// Topics the members subscribe to (consumer protocol), for OffsetDelete.
pub(super) fn subscribed_topics(g: &Group) -> Result<Vec<String>, i16> {
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
