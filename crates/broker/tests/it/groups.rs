//! Group coordinator error paths over the wire: KIP-394 member ids, fencing
//! of static members (KIP-345), generations, rebalances in progress.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;

fn join(member: &str, instance: Option<&str>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.to_string())))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(bytes::Bytes::from_static(b"meta"))])
}

fn heartbeat(member: &str, generation: i32, instance: Option<&str>) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.to_string())))
}

#[tokio::test]
async fn member_id_required_generations_and_fencing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]).await;
    let mut c = Client::connect(server.local_addr).await;
    // KIP-394: a new dynamic member first gets MEMBER_ID_REQUIRED and an id.
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join("", None)).await;
    assert_eq!(r.error_code, ResponseError::MemberIdRequired.code());
    let id = r.member_id.to_string();
    assert!(!id.is_empty());
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join(&id, None)).await;
    assert_eq!(
        (r.error_code, r.generation_id, r.leader.as_str()),
        (0, 1, id.as_str())
    );
    assert_eq!(r.members.len(), 1);
    // Heartbeat before sync is fine; a wrong generation is not.
    let h: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &heartbeat(&id, 1, None)).await;
    assert_eq!(h.error_code, 0);
    let h: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &heartbeat(&id, 7, None)).await;
    assert_eq!(h.error_code, ResponseError::IllegalGeneration.code());
    let h: HeartbeatResponse = c
        .call(ApiKey::Heartbeat, 4, &heartbeat("nobody", 1, None))
        .await;
    assert_eq!(h.error_code, ResponseError::UnknownMemberId.code());
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_string(id.clone()))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(id.clone()))
                .with_assignment(bytes::Bytes::from_static(b"mine")),
        ]);
    let s: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync).await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"mine"[..]));
    // Unknown member id on join.
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join("stranger", None)).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    // Offsets: a commit with a stale generation is refused; the right one works.
    let commit = |generation: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(id.clone()))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("__consumer_offsets")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_committed_offset(5),
                    ]),
            ])
    };
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &commit(0)).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &commit(1)).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    // Leaving empties the group; deleting it then works, twice does not.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(StrBytes::from_string(id.clone()))]);
    let l: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 5, &leave).await;
    assert_eq!(l.members[0].error_code, 0);
    let del = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]);
    let d: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(d.results[0].error_code, 0);
    let d: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(
        d.results[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn static_member_restart_fences_the_old_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]).await;
    let mut c = Client::connect(server.local_addr).await;
    let r: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 9, &join("", Some("inst-1")))
        .await;
    assert_eq!(r.error_code, 0, "static members need no second join");
    let old = r.member_id.to_string();
    // The same instance restarts with no member id: it takes over, the old id is fenced.
    let r: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 9, &join("", Some("inst-1")))
        .await;
    assert_eq!(r.error_code, 0);
    assert_ne!(r.member_id.to_string(), old);
    let h: HeartbeatResponse = c
        .call(
            ApiKey::Heartbeat,
            4,
            &heartbeat(&old, r.generation_id, Some("inst-1")),
        )
        .await;
    assert_eq!(h.error_code, ResponseError::FencedInstanceId.code());
    let r2: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 9, &join(&old, Some("inst-1")))
        .await;
    assert_eq!(r2.error_code, ResponseError::FencedInstanceId.code());
    server.shutdown().await;
}

#[tokio::test]
async fn returning_static_leader_gets_skip_assignment_from_v9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")]).await;
    let mut c = Client::connect(server.local_addr).await;
    let r: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 9, &join("", Some("inst-1")))
        .await;
    assert_eq!(r.error_code, 0);
    let (first, generation) = (r.member_id.to_string(), r.generation_id);
    let sync = |member: &str| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_group_instance_id(Some(StrBytes::from_static_str("inst-1")))
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member.to_string()))
                    .with_assignment(bytes::Bytes::from_static(b"mine")),
            ])
    };
    let s: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync(&first)).await;
    assert_eq!(s.error_code, 0);
    // v9: the returning leader stays leader, is told to skip the assignment
    // (KIP-814), and the generation does not move.
    let r: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 9, &join("", Some("inst-1")))
        .await;
    let second = r.member_id.to_string();
    assert_eq!((r.error_code, r.generation_id), (0, generation));
    assert!(r.skip_assignment);
    assert_eq!(r.leader.as_str(), second);
    assert_eq!(r.members.len(), 1);
    // v5 has no skip_assignment: it is answered as a follower of the id it replaced.
    let r: JoinGroupResponse = c
        .call(ApiKey::JoinGroup, 5, &join("", Some("inst-1")))
        .await;
    assert_eq!((r.error_code, r.generation_id), (0, generation));
    assert_eq!(r.leader.as_str(), second);
    assert!(r.members.is_empty());
    let third = r.member_id.to_string();
    let s: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync(&third)).await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"mine"[..]));
    let s: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync(&second)).await;
    assert_eq!(s.error_code, ResponseError::FencedInstanceId.code());
    server.shutdown().await;
}

#[tokio::test]
async fn find_coordinator_and_list_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ]);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &req).await;
    assert_eq!(r.coordinators.len(), 2);
    assert!(r
        .coordinators
        .iter()
        .all(|x| x.error_code == 0 && x.port == server.local_addr.port() as i32));
    let r: FindCoordinatorResponse = c
        .call(
            ApiKey::FindCoordinator,
            2,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("a")),
        )
        .await;
    assert_eq!((r.error_code, r.node_id.0), (0, 1));
    let l: ListGroupsResponse = c
        .call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    assert!(l.groups.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn consumer_group_heartbeat_epochs_and_errors() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let topic_id = crate::client::create_topic(&mut c, "k", 4).await.topics[0].topic_id;
    let hb = |member: &str, epoch: i32, assignor: Option<&str>| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("kg")))
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(10_000)
            .with_server_assignor(assignor.map(|a| StrBytes::from_string(a.to_string())))
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("k"))]))
            .with_topic_partitions(Some(vec![]))
    };
    let r: ConsumerGroupHeartbeatResponse = c
        .call(ApiKey::ConsumerGroupHeartbeat, 0, &hb("", 0, Some("fancy")))
        .await;
    assert_eq!(r.error_code, ResponseError::UnsupportedAssignor.code());
    // First member gets every partition at epoch 1.
    let a: ConsumerGroupHeartbeatResponse = c
        .call(ApiKey::ConsumerGroupHeartbeat, 0, &hb("", 0, Some("range")))
        .await;
    assert_eq!((a.error_code, a.member_epoch), (0, 1));
    let a_id = a.member_id.clone().expect("id").to_string();
    let parts = &a.assignment.expect("assignment").topic_partitions;
    assert_eq!(
        (parts[0].topic_id, parts[0].partitions.len()),
        (topic_id, 4)
    );
    // It reports owning them all.
    let owns_all = hb(&a_id, 1, None).with_topic_partitions(Some(vec![TopicPartitions::default()
        .with_topic_id(topic_id)
        .with_partitions(vec![0, 1, 2, 3])]));
    let r: ConsumerGroupHeartbeatResponse =
        c.call(ApiKey::ConsumerGroupHeartbeat, 0, &owns_all).await;
    assert_eq!(r.error_code, 0);
    // A second member joins: it gets nothing until the first releases its half.
    let b: ConsumerGroupHeartbeatResponse = c
        .call(ApiKey::ConsumerGroupHeartbeat, 0, &hb("", 0, None))
        .await;
    let b_id = b.member_id.clone().expect("id").to_string();
    assert_eq!(b.member_epoch, 2);
    assert!(b
        .assignment
        .as_ref()
        .is_none_or(|x| x.topic_partitions.iter().all(|t| t.partitions.is_empty())));
    // The first member is told to shrink (it keeps epoch 1 while it still owns extra).
    let r: ConsumerGroupHeartbeatResponse =
        c.call(ApiKey::ConsumerGroupHeartbeat, 0, &owns_all).await;
    assert_eq!(r.member_epoch, 1);
    let kept: Vec<i32> = r
        .assignment
        .expect("new assignment")
        .topic_partitions
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    assert_eq!(kept.len(), 2);
    // It releases; then it moves to epoch 2 and the second member gets the rest.
    let released = hb(&a_id, 1, None).with_topic_partitions(Some(vec![TopicPartitions::default()
        .with_topic_id(topic_id)
        .with_partitions(kept.clone())]));
    let r: ConsumerGroupHeartbeatResponse =
        c.call(ApiKey::ConsumerGroupHeartbeat, 0, &released).await;
    assert_eq!(r.member_epoch, 2);
    let r: ConsumerGroupHeartbeatResponse = c
        .call(ApiKey::ConsumerGroupHeartbeat, 0, &hb(&b_id, 2, None))
        .await;
    let got: Vec<i32> = r
        .assignment
        .expect("assignment")
        .topic_partitions
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| !kept.contains(p)), "disjoint");
    // Stale epochs are fenced; unknown members are refused.
    let r: ConsumerGroupHeartbeatResponse = c
        .call(ApiKey::ConsumerGroupHeartbeat, 0, &hb(&a_id, 1, None))
        .await;
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code());
    let r: ConsumerGroupHeartbeatResponse = c
        .call(ApiKey::ConsumerGroupHeartbeat, 0, &hb("ghost", 3, None))
        .await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    // Offset commits carry the member epoch.
    let commit = |epoch: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("kg")))
            .with_generation_id_or_member_epoch(epoch)
            .with_member_id(StrBytes::from_string(b_id.clone()))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("k")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_committed_offset(0),
                    ]),
            ])
    };
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &commit(1)).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::StaleMemberEpoch.code()
    );
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &commit(2)).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let l: ListGroupsResponse = c
        .call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await;
    assert_eq!(
        (
            l.groups[0].group_type.as_str(),
            l.groups[0].group_state.as_str()
        ),
        ("consumer", "Stable")
    );
    server.shutdown().await;
}
