//! Hostile request bodies: array counts of 2^31 and 2^32 planted at every
//! position of every served request, plus random bytes. Each decode must
//! return (an error or a value) without aborting the process, and resident
//! memory must stay bounded. Runs with the broker's allocator, as the
//! `strom` binary does.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;
use strom_protocol::alloc::GuardedAlloc;
use strom_protocol::{decode_body, versions, RequestFrame};

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn frame(key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("hostile")))
        .encode(&mut out, key.request_header_version(version))
        .expect("header");
    out.extend_from_slice(body);
    out.freeze()
}

/// Decodes `body` as the request type of `key`; the result does not matter.
fn try_decode(key: ApiKey, version: i16, body: &[u8]) {
    let Ok(f) = RequestFrame::parse(frame(key, version, body)) else {
        return;
    };
    let _ = match key {
        ApiKey::Produce => decode_body::<ProduceRequest>(&f).map(|_| ()),
        ApiKey::Fetch => decode_body::<FetchRequest>(&f).map(|_| ()),
        ApiKey::ListOffsets => decode_body::<ListOffsetsRequest>(&f).map(|_| ()),
        ApiKey::Metadata => decode_body::<MetadataRequest>(&f).map(|_| ()),
        ApiKey::ApiVersions => decode_body::<ApiVersionsRequest>(&f).map(|_| ()),
        ApiKey::CreateTopics => decode_body::<CreateTopicsRequest>(&f).map(|_| ()),
        ApiKey::DeleteTopics => decode_body::<DeleteTopicsRequest>(&f).map(|_| ()),
        ApiKey::DeleteRecords => decode_body::<DeleteRecordsRequest>(&f).map(|_| ()),
        ApiKey::DescribeConfigs => decode_body::<DescribeConfigsRequest>(&f).map(|_| ()),
        ApiKey::AlterConfigs => decode_body::<AlterConfigsRequest>(&f).map(|_| ()),
        ApiKey::DescribeLogDirs => decode_body::<DescribeLogDirsRequest>(&f).map(|_| ()),
        ApiKey::CreatePartitions => decode_body::<CreatePartitionsRequest>(&f).map(|_| ()),
        ApiKey::IncrementalAlterConfigs => {
            decode_body::<IncrementalAlterConfigsRequest>(&f).map(|_| ())
        }
        ApiKey::DescribeCluster => decode_body::<DescribeClusterRequest>(&f).map(|_| ()),
        _ => Ok(()),
    };
}

/// A sample body with one element in each top-level array, so counts appear at many positions.
fn sample(key: ApiKey, version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    let name = TopicName(StrBytes::from_static_str("t"));
    let r = match key {
        ApiKey::Produce => ProduceRequest::default()
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name)
                .with_partition_data(vec![Default::default()])])
            .encode(&mut out, version),
        ApiKey::Fetch => FetchRequest::default()
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(name)
                .with_partitions(vec![Default::default()])])
            .encode(&mut out, version),
        ApiKey::ListOffsets => ListOffsetsRequest::default()
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name)
                .with_partitions(vec![Default::default()])])
            .encode(&mut out, version),
        ApiKey::Metadata => MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(name))]))
            .encode(&mut out, version),
        ApiKey::CreateTopics => CreateTopicsRequest::default()
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(name)
                .with_configs(vec![Default::default()])])
            .encode(&mut out, version),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default()
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str("k")])),
            ])
            .encode(&mut out, version),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default()
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(name)
                .with_partitions(vec![Default::default()])])
            .encode(&mut out, version),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default()
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name)
                    .with_assignments(Some(vec![Default::default()])),
            ])
            .encode(&mut out, version),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_configs(vec![Default::default()]),
            ])
            .encode(&mut out, version),
        ApiKey::AlterConfigs => AlterConfigsRequest::default()
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_configs(vec![Default::default()])])
            .encode(&mut out, version),
        ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default()
            .with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(name)
                    .with_partitions(vec![0]),
            ]))
            .encode(&mut out, version),
        ApiKey::DeleteTopics if version >= 6 => DeleteTopicsRequest::default()
            .with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name))
            ])
            .encode(&mut out, version),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default()
            .with_topic_names(vec![name])
            .encode(&mut out, version),
        ApiKey::ApiVersions => ApiVersionsRequest::default().encode(&mut out, version),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().encode(&mut out, version),
        _ => Ok(()),
    };
    match r {
        Ok(()) => out.to_vec(),
        // A field the version lacks: plant counts in a neutral body instead.
        Err(_) => vec![0; 48],
    }
}

#[test]
fn planted_huge_counts_never_abort_or_balloon() {
    let before = rss_bytes();
    let mut tried = 0;
    for (key, lo, hi) in versions::SUPPORTED {
        for version in *lo..=*hi {
            let body = sample(*key, version);
            for pos in 0..body.len() {
                for planted in [
                    &[0x7f, 0xff, 0xff, 0xff][..],
                    &[0xff, 0xff, 0xff, 0xff, 0x0f][..],
                    &[0x40, 0, 0, 0][..],
                ] {
                    let mut b = body.clone();
                    for (i, byte) in planted.iter().enumerate() {
                        if pos + i < b.len() {
                            b[pos + i] = *byte;
                        } else {
                            b.push(*byte);
                        }
                    }
                    try_decode(*key, version, &b);
                    tried += 1;
                }
            }
        }
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(tried > 1000, "only {tried} cases");
    assert!(grown < 512 << 20, "resident memory grew by {grown} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_bodies_never_abort(pick in 0usize..versions::SUPPORTED.len(), v in 0i16..20, body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let (key, lo, hi) = versions::SUPPORTED[pick];
        let version = lo + v % (hi - lo + 1);
        try_decode(key, version, &body);
    }
}
