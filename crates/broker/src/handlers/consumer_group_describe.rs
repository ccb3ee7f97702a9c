//! ConsumerGroupDescribe (KIP-848, API 69): consumer-protocol groups with
//! their epochs, members and assignments; the state is read from
//! [`crate::group::consumer_describe`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName,
};

use super::{authorized, s};
use crate::broker::Broker;
use crate::group::consumer_describe::AssignedTopic;

/// `member_type` of a member that joined with the consumer protocol
/// (0 is a classic-protocol member of a consumer group, which Strom does not have).
const CONSUMER_MEMBER: i8 = 1;

fn assignment(topics: Vec<AssignedTopic>) -> Assignment {
    Assignment::default().with_topic_partitions(
        topics
            .into_iter()
            .map(|t| {
                TopicPartitions::default()
                    .with_topic_id(t.id)
                    .with_topic_name(TopicName(s(t.name)))
                    .with_partitions(t.partitions)
            })
            .collect(),
    )
}

/// Handles ConsumerGroupDescribe. As Kafka: empty group ids are answered
/// INVALID_GROUP_ID first, then each group in order; unknown and classic
/// groups get GROUP_ID_NOT_FOUND with Kafka's message.
pub fn handle(broker: &Broker, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let (invalid, valid): (Vec<GroupId>, Vec<GroupId>) =
        req.group_ids.into_iter().partition(|g| g.0.is_empty());
    let mut groups: Vec<DescribedGroup> = invalid
        .into_iter()
        .map(|g| {
            DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(ResponseError::InvalidGroupId.code())
                .with_authorized_operations(authorized::OMITTED)
        })
        .collect();
    for gid in valid {
        let g = DescribedGroup::default().with_group_id(gid.clone());
        groups.push(match broker.groups.describe_consumer_group(&gid.0) {
            Err(e) => g
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(s(e.to_string())))
                .with_authorized_operations(authorized::OMITTED),
            Ok(d) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        Member::default()
                            .with_member_id(s(m.member_id))
                            .with_instance_id(m.instance_id.map(s))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(s(m.client_id))
                            .with_client_host(s(m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed.into_iter().map(|t| TopicName(s(t))).collect(),
                            )
                            // Kafka answers "" when the member has no regex subscription.
                            .with_subscribed_topic_regex(Some(s("")))
                            .with_assignment(assignment(m.assignment))
                            .with_target_assignment(assignment(m.target_assignment))
                            .with_member_type(CONSUMER_MEMBER)
                    })
                    .collect();
                g.with_group_state(s(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(s(d.assignor))
                    .with_members(members)
                    .with_authorized_operations(authorized::if_asked(
                        req.include_authorized_operations,
                        authorized::GROUP,
                    ))
            }
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
