//! One module per Kafka API. Each handler takes the broker and the decoded
//! request and returns the response; failures become error codes in it.

pub mod acls;
pub mod alter_configs;
pub mod api_versions;
pub mod authorized;
pub mod cluster;
pub mod cluster_view;
pub mod consumer_group_describe;
pub mod delete_records;
pub mod describe_configs;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod partitions_admin;
pub mod produce;
pub mod scram_credentials;
pub mod topics_admin;
pub mod txn;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

/// The numeric code of a Kafka error.
pub fn code(e: ResponseError) -> i16 {
    e.code()
}

/// An owned protocol string.
pub fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}
