//! Classic group membership for the consumer: JoinGroup (with KIP-394's
//! MEMBER_ID_REQUIRED round and, for cooperative rebalances, the partitions
//! kept), the leader's client-side assignment, SyncGroup,
//! a heartbeat task that flags when the group rebalances, offset commits and
//! fetches, LeaveGroup.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::config::ConsumerConfig;
use super::protocol;
use super::sticky;
use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::mux::Mux;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// This consumer's place in its group.
#[derive(Debug)]
pub(super) struct Membership {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
    /// True when this member computed the assignment (it watches partition counts).
    pub leader: bool,
    /// Partition counts of the subscribed topics the assignment was made for.
    pub counts: BTreeMap<String, i32>,
    coordinator: Arc<Mux>,
    /// Set by the heartbeat task when the group needs this member to rejoin.
    pub rejoin: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn retriable_join(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::RebalanceInProgress
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator
            | ResponseError::UnknownMemberId
            | ResponseError::IllegalGeneration
    )
}

/// The partitions a member keeps through a cooperative rebalance, and the
/// generation they were assigned in (empty and -1 for eager rebalances).
#[derive(Debug)]
pub(super) struct Owned<'a> {
    pub partitions: &'a [(String, i32)],
    pub generation: i32,
}

/// Joins (or rejoins) the group subscribed to `topics`; returns the
/// membership and this member's partitions.
pub(super) async fn join(
    cluster: &Cluster,
    config: &ConsumerConfig,
    group_id: &str,
    topics: &[String],
    previous_member_id: &str,
    owned: &Owned<'_>,
) -> Result<(Membership, Vec<(String, i32)>), ClientError> {
    let deadline = Instant::now() + config.max_poll_interval;
    let mut member_id = previous_member_id.to_string();
    loop {
        match join_once(cluster, config, group_id, topics, &member_id, owned).await {
            Ok(done) => return Ok(done),
            Err(JoinError::NewMemberId(id)) => member_id = id,
            Err(JoinError::Unreachable(e))
                if previous_member_id.is_empty() || Instant::now() >= deadline =>
            {
                return Err(e)
            }
            Err(JoinError::Unreachable(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(JoinError::Retry(e)) if Instant::now() < deadline => {
                if e == ResponseError::UnknownMemberId {
                    member_id.clear();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(JoinError::Retry(e)) => {
                return Err(ClientError::Kafka {
                    context: format!("joining group {group_id}"),
                    error: e,
                })
            }
            Err(JoinError::Fatal(e)) => return Err(e),
        }
    }
}

enum JoinError {
    /// No broker answers: fatal on a first join, retried on a rejoin (the broker may be restarting).
    Unreachable(ClientError),
    NewMemberId(String),
    Retry(ResponseError),
    Fatal(ClientError),
}

impl From<ClientError> for JoinError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Io(_) | ClientError::Timeout(_) => {
                JoinError::Retry(ResponseError::CoordinatorNotAvailable)
            }
            e @ ClientError::Connect { .. } => JoinError::Unreachable(e),
            other => JoinError::Fatal(other),
        }
    }
}

async fn join_once(
    cluster: &Cluster,
    config: &ConsumerConfig,
    group_id: &str,
    topics: &[String],
    member_id: &str,
    owned: &Owned<'_>,
) -> Result<(Membership, Vec<(String, i32)>), JoinError> {
    let coordinator = cluster.coordinator(group_id, 0).await?;
    let v = coordinator.version(ApiKey::JoinGroup)?.min(9);
    let metadata = protocol::encode_subscription(topics, owned.partitions, owned.generation);
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_session_timeout_ms(config.session_timeout.as_millis() as i32)
        .with_rebalance_timeout_ms(config.max_poll_interval.as_millis() as i32)
        .with_member_id(s(member_id))
        .with_group_instance_id(config.group_instance_id.as_deref().map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            config
                .assignment_strategy
                .iter()
                .map(|name| {
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        );
    let p = coordinator.send(ApiKey::JoinGroup, v, &req).await?;
    let r: JoinGroupResponse = coordinator
        .wait_for(p, config.max_poll_interval + Duration::from_secs(5))
        .await?;
    match ResponseError::try_from_code(r.error_code) {
        None => {}
        Some(ResponseError::MemberIdRequired) => {
            return Err(JoinError::NewMemberId(r.member_id.to_string()))
        }
        Some(e) if retriable_join(e) => return Err(JoinError::Retry(e)),
        Some(e) => {
            return Err(JoinError::Fatal(ClientError::Kafka {
                context: format!("joining group {group_id}"),
                error: e,
            }))
        }
    }
    let me = r.member_id.to_string();
    let protocol_name = r
        .protocol_name
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let is_leader = r.leader == r.member_id;
    let mut counts = BTreeMap::new();
    let assignments = if is_leader {
        let members: Vec<(String, protocol::Subscription)> = r
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    protocol::decode_subscription(&m.metadata),
                )
            })
            .collect();
        let mut all: Vec<String> = members
            .iter()
            .flat_map(|(_, sub)| sub.topics.clone())
            .collect();
        all.sort();
        all.dedup();
        cluster.refresh(&all, false).await?;
        for t in &all {
            if let Ok(info) = cluster.topic(t, false).await {
                counts.insert(t.clone(), info.leaders.len() as i32);
            }
        }
        let topics_of: Vec<(String, Vec<String>)> = members
            .iter()
            .map(|(m, sub)| (m.clone(), sub.topics.clone()))
            .collect();
        let plan = match protocol_name.as_str() {
            "roundrobin" => protocol::round_robin(&topics_of, &counts),
            "cooperative-sticky" => sticky::cooperative_sticky(&members, &counts),
            _ => protocol::range(&topics_of, &counts),
        };
        plan.into_iter()
            .map(|(m, parts)| {
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&m))
                    .with_assignment(protocol::encode_assignment(&parts))
            })
            .collect()
    } else {
        Vec::new()
    };
    let sv = coordinator.version(ApiKey::SyncGroup)?.min(5);
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_generation_id(r.generation_id)
        .with_member_id(s(&me))
        .with_group_instance_id(config.group_instance_id.as_deref().map(s))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s(&protocol_name)))
        .with_assignments(assignments);
    let p = coordinator.send(ApiKey::SyncGroup, sv, &req).await?;
    let sr: SyncGroupResponse = coordinator
        .wait_for(p, config.max_poll_interval + Duration::from_secs(5))
        .await?;
    match ResponseError::try_from_code(sr.error_code) {
        None => {}
        Some(e) if retriable_join(e) => return Err(JoinError::Retry(e)),
        Some(e) => {
            return Err(JoinError::Fatal(ClientError::Kafka {
                context: format!("syncing group {group_id}"),
                error: e,
            }))
        }
    }
    let mine = protocol::decode_assignment(&sr.assignment);
    let rejoin = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat_loop(
        coordinator.clone(),
        config.clone(),
        group_id.to_string(),
        me.clone(),
        r.generation_id,
        rejoin.clone(),
    ));
    Ok((
        Membership {
            group_id: group_id.to_string(),
            member_id: me,
            generation: r.generation_id,
            leader: is_leader,
            counts,
            coordinator,
            rejoin,
            heartbeat,
        },
        mine,
    ))
}

async fn heartbeat_loop(
    coordinator: Arc<Mux>,
    config: ConsumerConfig,
    group_id: String,
    member_id: String,
    generation: i32,
    rejoin: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(config.heartbeat_interval).await;
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group_id)))
            .with_generation_id(generation)
            .with_member_id(s(&member_id))
            .with_group_instance_id(config.group_instance_id.as_deref().map(s));
        match coordinator
            .call::<_, HeartbeatResponse>(ApiKey::Heartbeat, &req)
            .await
        {
            Ok((_, r)) if r.error_code == 0 => {}
            Ok((_, r)) => {
                tracing::debug!(group = %group_id, code = r.error_code, "heartbeat asks to rejoin");
                rejoin.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                tracing::debug!(group = %group_id, error = %e, "heartbeat failed; rejoining");
                rejoin.store(true, Ordering::Release);
                return;
            }
        }
    }
}

impl Membership {
    /// Commits `offsets` as this member of the current generation.
    pub async fn commit(
        &self,
        offsets: &[((String, i32), i64)],
        instance: Option<&str>,
    ) -> Result<(), ClientError> {
        commit(
            &self.coordinator,
            &self.group_id,
            self.generation,
            &self.member_id,
            instance,
            offsets,
        )
        .await
    }

    /// Leaves the group (LeaveGroup), so it rebalances at once.
    pub async fn leave(&self, instance: Option<&str>) {
        let v = self.coordinator.version(ApiKey::LeaveGroup).unwrap_or(0);
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.group_id)))
                .with_members(vec![leave_group_request::MemberIdentity::default()
                    .with_member_id(s(&self.member_id))
                    .with_group_instance_id(instance.map(s))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.group_id)))
                .with_member_id(s(&self.member_id))
        };
        if let Ok(p) = self.coordinator.send(ApiKey::LeaveGroup, v, &req).await {
            let _ = self.coordinator.wait::<LeaveGroupResponse>(p).await;
        }
    }
}

/// OffsetCommit (generation -1 and no member: a standalone commit).
pub(super) async fn commit(
    coordinator: &Mux,
    group_id: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
    offsets: &[((String, i32), i64)],
) -> Result<(), ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance.map(s))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let (_, r): (i16, OffsetCommitResponse) = coordinator.call(ApiKey::OffsetCommit, &req).await?;
    for t in r.topics {
        for p in t.partitions {
            ClientError::check(
                p.error_code,
                format!("committing {}-{}", t.name.0, p.partition_index),
            )?;
        }
    }
    Ok(())
}

/// Committed offsets of `partitions` for `group_id` (absent: none committed).
pub(super) async fn committed(
    cluster: &Cluster,
    group_id: &str,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
    let coordinator = cluster.coordinator(group_id, 0).await?;
    let v = coordinator.version(ApiKey::OffsetFetch)?.min(7);
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_require_stable(true)
        .with_topics(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partition_indexes(ps)
                })
                .collect(),
        ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = coordinator.send(ApiKey::OffsetFetch, v, &req).await?;
        let r: OffsetFetchResponse = coordinator.wait(p).await?;
        ClientError::check(
            r.error_code,
            format!("fetching offsets of group {group_id}"),
        )?;
        let mut out = BTreeMap::new();
        let mut unstable = false;
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == ResponseError::UnstableOffsetCommit.code() {
                    unstable = true;
                } else {
                    ClientError::check(
                        p.error_code,
                        format!("offset of {}-{}", t.name.0, p.partition_index),
                    )?;
                }
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        // KIP-447: an open transaction holds an offset; wait for it to settle.
        if !unstable || Instant::now() > deadline {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
