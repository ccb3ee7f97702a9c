//! FindCoordinator and the group APIs: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups, OffsetDelete. The logic lives in [`crate::group`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{authorized, s};
use crate::broker::Broker;
use crate::group::state::{JoinOutcome, SyncOutcome};
use crate::group::store::Committed;
use crate::group::{JoinRequest, Pending};

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

/// The broker that coordinates `key`: the leader of its partition of
/// `__consumer_offsets` (groups, `key_type` 0) or `__transaction_state`
/// (transactional ids, 1), creating the topic first if no one has yet; at
/// its endpoint for `listener`.
fn coordinator_for(
    broker: &Broker,
    key_type: i8,
    key: &str,
    listener: &str,
) -> Result<super::cluster_view::BrokerView, ResponseError> {
    let topic = if key_type == 0 {
        crate::group::store::OFFSETS_TOPIC
    } else {
        crate::txn::log::TXN_TOPIC
    };
    if broker.topics.get(topic).is_none() {
        // Once per cluster: the internal topic is made on first use.
        let created = crate::dispatch::off_worker(|| {
            if key_type == 0 {
                broker
                    .groups
                    .ensure_offsets_topic()
                    .map_err(|e| e.to_string())
            } else {
                broker
                    .txns
                    .ensure_state_topic()
                    .map_err(|e| format!("{e:?}"))
            }
        });
        if let Err(e) = created {
            tracing::warn!(topic, error = %e, "cannot create the coordinator topic");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
    }
    let image = broker.topics.image();
    let t = image
        .topic(topic)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let p = crate::group::store::partition_for(key, t.partitions.len() as i32);
    let leader = t
        .partition(p)
        .map(|p| p.leader)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    super::cluster_view::endpoint_of(broker, leader, listener)
        .ok_or(ResponseError::CoordinatorNotAvailable)
}

/// NOT_COORDINATOR unless this broker coordinates `group` (it leads the
/// group's `__consumer_offsets` partition): the client looks again.
/// COORDINATOR_LOAD_IN_PROGRESS while leadership of that partition has
/// just arrived and its groups are being read: the client retries.
pub(crate) fn not_coordinator(broker: &Broker, group: &str) -> Option<i16> {
    use crate::group::store::OFFSETS_TOPIC;
    let image = broker.topics.image();
    let t = image.topic(OFFSETS_TOPIC)?;
    let p = crate::group::store::partition_for(group, t.partitions.len() as i32);
    let leader = t.partition(p)?.leader;
    if leader.0 != broker.node_id {
        return Some(ResponseError::NotCoordinator.code());
    }
    let tp = crate::metadata::TopicPartition {
        topic: OFFSETS_TOPIC.into(),
        partition: p,
    };
    let leading = broker
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.partition(p))
        .is_some_and(|p| p.is_leading());
    (!leading || broker.topics.coordinator_moves().is_pending(&tp))
        .then(|| ResponseError::CoordinatorLoadInProgress.code())
}

/// FindCoordinator: the leader of the key's internal partition, at its
/// endpoint for `listener` (the one the request came in on).
pub fn find_coordinator(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
    listener: &str,
) -> FindCoordinatorResponse {
    if req.key_type != 0 && req.key_type != 1 {
        let e = ResponseError::InvalidRequest;
        return FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|k| {
                let c = find_coordinator_response::Coordinator::default();
                match coordinator_for(broker, req.key_type, &k, listener) {
                    Ok(b) => c
                        .with_key(k)
                        .with_node_id(BrokerId(b.id.0))
                        .with_host(s(b.host))
                        .with_port(b.port),
                    Err(e) => c
                        .with_key(k)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(e.code()),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match coordinator_for(broker, req.key_type, &req.key, listener) {
        Ok(b) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(b.id.0))
            .with_host(s(b.host))
            .with_port(b.port),
        Err(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

/// JoinGroup: waits until the rebalance completes.
pub async fn join(
    broker: &Broker,
    version: i16,
    client_id: &str,
    peer: &str,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    if let Some(e) = not_coordinator(broker, &req.group_id.0) {
        return JoinGroupResponse::default()
            .with_error_code(e)
            .with_generation_id(-1);
    }
    let rebalance_timeout = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let jr = JoinRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: opt(&req.group_instance_id),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.rsplit_once(':').map_or(peer, |(h, _)| h)),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: rebalance_timeout,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let outcome = match broker.groups.join(jr) {
        Pending::Ready(o) => o,
        Pending::Wait(rx) => rx.await.unwrap_or(JoinOutcome {
            error: ResponseError::UnknownMemberId.code(),
            generation: -1,
            ..Default::default()
        }),
    };
    let members = outcome
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(s(id))
                .with_group_instance_id(if version >= 5 { inst.map(s) } else { None })
                .with_metadata(meta)
        })
        .collect();
    let mut r = JoinGroupResponse::default()
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_leader(s(outcome.leader))
        .with_member_id(s(outcome.member_id))
        .with_members(members)
        .with_skip_assignment(version >= 9 && outcome.skip_assignment);
    r = if version >= 7 {
        r.with_protocol_type(outcome.protocol_type.map(s))
            .with_protocol_name(outcome.protocol.map(s))
    } else {
        r.with_protocol_name(Some(s(outcome.protocol.unwrap_or_default())))
    };
    r
}

/// SyncGroup: the leader's assignments go to every member.
pub async fn sync(broker: &Broker, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    if let Some(e) = not_coordinator(broker, &req.group_id.0) {
        return SyncGroupResponse::default().with_error_code(e);
    }
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let inst = opt(&req.group_instance_id);
    let outcome = match broker.groups.sync(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        inst.as_deref(),
        assignments,
    ) {
        Pending::Ready(o) => o,
        Pending::Wait(rx) => rx.await.unwrap_or(SyncOutcome {
            error: ResponseError::RebalanceInProgress.code(),
            ..Default::default()
        }),
    };
    // The group's new assignments are stored before anyone acts on them.
    let mut error = outcome.error;
    if error == 0 {
        if let Err(code) = group_write_replicated(broker, &req.group_id.0).await {
            error = code;
        }
    }
    let mut r = SyncGroupResponse::default()
        .with_error_code(error)
        .with_assignment(outcome.assignment);
    if version >= 5 {
        r = r
            .with_protocol_type(outcome.protocol_type.map(s))
            .with_protocol_name(outcome.protocol.map(s));
    }
    r
}

/// Heartbeat.
pub fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    if let Some(e) = not_coordinator(broker, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(e);
    }
    let inst = opt(&req.group_instance_id);
    HeartbeatResponse::default().with_error_code(broker.groups.heartbeat(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        inst.as_deref(),
    ))
}

/// LeaveGroup (single member before v3, batch from v3: KIP-345).
pub fn leave(broker: &Broker, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if let Some(e) = not_coordinator(broker, &req.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(e);
    }
    if version < 3 {
        let codes = broker
            .groups
            .leave(&req.group_id.0, &[(req.member_id.to_string(), None)]);
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let ids: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
        .collect();
    let codes = broker.groups.leave(&req.group_id.0, &ids);
    let members = req
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, c)| {
            leave_group_response::MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(c)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// One offset to commit, from a commit request's partition fields.
pub(crate) fn to_commit(
    topic: &TopicName,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: &Option<StrBytes>,
    now: i64,
) -> (String, i32, Committed) {
    (
        topic.0.to_string(),
        partition,
        Committed {
            offset,
            leader_epoch,
            metadata: metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
            commit_timestamp: now,
        },
    )
}

/// Waits for the in-sync replicas of `group`'s `__consumer_offsets`
/// partition to have what the coordinator just wrote for it, as Kafka's
/// coordinator appends with acks=all; if they do not in
/// `offsets.commit.timeout.ms`, every partition that was accepted gets the
/// failure instead (COORDINATOR_NOT_AVAILABLE, or NOT_COORDINATOR when the
/// partition's leadership left meanwhile).
pub(crate) async fn replicated(
    broker: &Broker,
    group: &str,
    result: Result<Vec<i16>, i16>,
) -> Result<Vec<i16>, i16> {
    let Ok(mut codes) = result else {
        return result;
    };
    if !codes.contains(&0) {
        return Ok(codes);
    }
    if let Err(code) = group_write_replicated(broker, group).await {
        for c in codes.iter_mut().filter(|c| **c == 0) {
            *c = code;
        }
    }
    Ok(codes)
}

/// Waits, up to `offsets.commit.timeout.ms`, for the in-sync replicas to
/// have the coordinator's last write for `group`; the error code otherwise.
async fn group_write_replicated(broker: &Broker, group: &str) -> Result<(), i16> {
    match broker.groups.written(group) {
        Some(w) => w
            .replicated(broker.groups.commit_timeout())
            .await
            .map_err(|e| e.code()),
        None => Ok(()),
    }
}

/// Hands out the error code of each partition in request order: the
/// per-partition codes of a commit, or its one code for all.
pub(crate) struct PartitionCodes {
    result: Result<std::vec::IntoIter<i16>, i16>,
}

impl PartitionCodes {
    /// Codes from a commit's outcome.
    pub(crate) fn new(result: Result<Vec<i16>, i16>) -> Self {
        PartitionCodes {
            result: result.map(Vec::into_iter),
        }
    }

    /// The next partition's code.
    pub(crate) fn next_code(&mut self) -> i16 {
        match &mut self.result {
            Ok(codes) => codes.next().unwrap_or(0),
            Err(e) => *e,
        }
    }
}

/// OffsetCommit: answered once the commit is on every in-sync replica.
pub async fn offset_commit(broker: &Broker, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = broker.clock().wall_ms();
    let flat = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                to_commit(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    &p.committed_metadata,
                    now,
                )
            })
        })
        .collect();
    let inst = opt(&req.group_instance_id);
    let result = match not_coordinator(broker, &req.group_id.0) {
        Some(e) => Err(e),
        None => broker.groups.commit(
            &req.group_id.0,
            req.generation_id_or_member_epoch,
            &req.member_id,
            inst.as_deref(),
            flat,
        ),
    };
    let mut codes = PartitionCodes::new(replicated(broker, &req.group_id.0, result).await);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next_code())
                })
                .collect();
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch (one group before v8, several from v8).
pub fn offset_fetch(broker: &Broker, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version < 8 {
        if let Some(e) = not_coordinator(broker, &req.group_id.0) {
            return OffsetFetchResponse::default().with_error_code(e);
        }
        let topics = req.topics.map(|ts| {
            dedupe_topics(
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes)),
            )
        });
        let found = broker.groups.fetch_offsets(&req.group_id.0, topics);
        let stable = version >= 7 && req.require_stable;
        let group = req.group_id.0.to_string();
        let topics = found
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|(p, c)| {
                        let r = offset_fetch_response::OffsetFetchResponsePartition::default()
                            .with_partition_index(p);
                        if stable && broker.groups.has_pending_txn_offset(&group, &t, p) {
                            // KIP-447: an open transaction holds an offset for it; the client retries.
                            return r
                                .with_committed_offset(-1)
                                .with_error_code(ResponseError::UnstableOffsetCommit.code());
                        }
                        match c {
                            Some(c) => r
                                .with_committed_offset(c.offset)
                                .with_committed_leader_epoch(epoch(c.leader_epoch))
                                .with_metadata(Some(s(c.metadata))),
                            None => r.with_committed_offset(-1).with_metadata(Some(s(""))),
                        }
                    })
                    .collect();
                offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    // A group named twice is answered once, for the union of what was asked.
    let mut wanted: Vec<(GroupId, Option<TopicList>)> = Vec::new();
    for g in req.groups {
        let topics = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect::<Vec<_>>()
        });
        match wanted.iter_mut().find(|(id, _)| *id == g.group_id) {
            Some((_, all @ Some(_))) if topics.is_none() => *all = None,
            Some((_, Some(prev))) => prev.extend(topics.into_iter().flatten()),
            Some((_, None)) => {}
            None => wanted.push((g.group_id, topics)),
        }
    }
    let groups = wanted
        .into_iter()
        .map(|(group_id, topics)| {
            if let Some(e) = not_coordinator(broker, &group_id.0) {
                return offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(e);
            }
            let topics = topics.map(dedupe_topics);
            let found = broker.groups.fetch_offsets(&group_id.0, topics);
            let group = group_id.0.to_string();
            let topics = found
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|(p, c)| {
                            let r = offset_fetch_response::OffsetFetchResponsePartitions::default()
                                .with_partition_index(p);
                            if req.require_stable
                                && broker.groups.has_pending_txn_offset(&group, &t, p)
                            {
                                return r
                                    .with_committed_offset(-1)
                                    .with_error_code(ResponseError::UnstableOffsetCommit.code());
                            }
                            match c {
                                Some(c) => r
                                    .with_committed_offset(c.offset)
                                    .with_committed_leader_epoch(c.leader_epoch)
                                    .with_metadata(Some(s(c.metadata))),
                                None => r.with_committed_offset(-1).with_metadata(Some(s(""))),
                            }
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseTopics::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(partitions)
                })
                .collect();
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(group_id)
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// Topics with their partitions, as an offset request names them.
type TopicList = Vec<(String, Vec<i32>)>;

/// Merges topics named more than once and drops repeated partitions, in
/// first-seen order, so an OffsetFetch answer never outgrows the distinct
/// partitions it names.
fn dedupe_topics(topics: impl IntoIterator<Item = (String, Vec<i32>)>) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    let mut seen: std::collections::HashSet<(usize, i32)> = Default::default();
    for (name, parts) in topics {
        let i = *index.entry(name.clone()).or_insert_with(|| {
            out.push((name, Vec::new()));
            out.len() - 1
        });
        for p in parts {
            if seen.insert((i, p)) {
                out[i].1.push(p);
            }
        }
    }
    out
}

/// ListGroups (state filter from v4, type filter "classic"/"consumer" from v5).
pub fn list_groups(broker: &Broker, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|x| x.to_string()).collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|x| x.to_ascii_lowercase())
        .collect();
    let groups = broker
        .groups
        .list(&states)
        .into_iter()
        .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .map(|(id, ptype, state, kind)| {
            let mut g = list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(ptype));
            if version >= 4 {
                g = g.with_group_state(s(state));
            }
            if version >= 5 {
                g = g.with_group_type(s(kind));
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups. Unknown groups and consumer-protocol (KIP-848) groups
/// are reported Dead; from v6 with GROUP_ID_NOT_FOUND and Kafka's message.
pub fn describe_groups(
    broker: &Broker,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let ops = authorized::if_asked(req.include_authorized_operations, authorized::GROUP);
    // A group named twice is described once (the answer would only repeat).
    let mut seen = std::collections::HashSet::new();
    let groups = req
        .groups
        .into_iter()
        .filter(|gid| seen.insert(gid.clone()))
        .map(|gid| {
            let g = describe_groups_response::DescribedGroup::default().with_group_id(gid.clone());
            match broker.groups.describe(&gid.0) {
                Err(e) if version >= 6 => g
                    .with_group_state(s("Dead"))
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(e.to_string())))
                    .with_authorized_operations(authorized::OMITTED),
                Err(_) => g
                    .with_group_state(s("Dead"))
                    .with_authorized_operations(ops),
                Ok(d) => {
                    let members = d
                        .members
                        .into_iter()
                        .map(|(id, inst, client, host, meta, assignment)| {
                            describe_groups_response::DescribedGroupMember::default()
                                .with_member_id(s(id))
                                .with_group_instance_id(if version >= 4 {
                                    inst.map(s)
                                } else {
                                    None
                                })
                                .with_client_id(s(client))
                                .with_client_host(s(host))
                                .with_member_metadata(meta)
                                .with_member_assignment(assignment)
                        })
                        .collect();
                    g.with_group_state(s(d.state))
                        .with_protocol_type(s(d.protocol_type))
                        .with_protocol_data(s(d.protocol))
                        .with_members(members)
                        .with_authorized_operations(ops)
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups.
pub fn delete_groups(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|g| {
            let c = broker.groups.delete(&g.0);
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(c)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

/// OffsetDelete.
pub fn offset_delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let flat: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match broker.groups.delete_offsets(&req.group_id.0, flat) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e),
        Ok(codes) => {
            let mut codes = codes.into_iter();
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            offset_delete_response::OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(codes.next().unwrap_or(0))
                        })
                        .collect();
                    offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}

/// ConsumerGroupHeartbeat (KIP-848).
pub fn consumer_heartbeat(
    broker: &Broker,
    client_id: &str,
    peer: &str,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if let Some(e) = not_coordinator(broker, &req.group_id.0) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e)
            .with_heartbeat_interval_ms(0);
    }
    let hb = crate::group::ConsumerHeartbeat {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: opt(&req.instance_id),
        client_id: client_id.to_string(),
        host: format!("/{}", peer.rsplit_once(':').map_or(peer, |(h, _)| h)),
        subscribed: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        assignor: opt(&req.server_assignor),
        owned: req.topic_partitions.map(|tps| {
            tps.into_iter()
                .flat_map(|tp| tp.partitions.into_iter().map(move |p| (tp.topic_id, p)))
                .collect()
        }),
    };
    let r = broker.groups.consumer_heartbeat(hb);
    let assignment = r.assignment.map(|a| {
        consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, ps)| {
                    consumer_group_heartbeat_response::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps)
                })
                .collect(),
        )
    });
    let mut resp = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error)
        .with_member_id(Some(s(r.member_id)))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(assignment);
    if r.error != 0 {
        resp = resp.with_error_message(
            kafka_protocol::error::ResponseError::try_from_code(r.error).map(|e| s(e.to_string())),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::dedupe_topics;

    #[test]
    fn offset_fetch_names_each_partition_once() {
        let asked = vec![
            ("a".to_string(), vec![0, 1, 0]),
            ("b".to_string(), vec![2]),
            ("a".to_string(), vec![1, 3]),
        ];
        let got = dedupe_topics(
            asked
                .into_iter()
                .chain(std::iter::repeat_n(("b".to_string(), vec![2]), 100_000)),
        );
        assert_eq!(
            got,
            vec![("a".to_string(), vec![0, 1, 3]), ("b".to_string(), vec![2])]
        );
    }
}
