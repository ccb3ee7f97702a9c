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
