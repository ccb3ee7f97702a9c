//! Topic administration and persistence across restarts.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::{self, Client};

fn describe_topic(topic: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string())),
    ])
}

#[tokio::test]
async fn create_describe_alter_delete_with_kafka_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "t1", 3).await.topics[0].error_code,
        0
    );
    assert_eq!(
        client::create_topic(&mut c, "t1", 3).await.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        client::create_topic(&mut c, "bad name", 1).await.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        client::create_topic(&mut c, "t0", 0).await.topics[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    // Replication factor 3 on one broker.
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(client::name("rf3"))
            .with_num_partitions(1)
            .with_replication_factor(3),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    // Configs on create, bad config, validate_only.
    let with_cfg = |n: &str, k: &str, v: &str, validate_only: bool| {
        CreateTopicsRequest::default()
            .with_validate_only(validate_only)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(client::name(n))
                .with_num_partitions(1)
                .with_replication_factor(-1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.into()))
                        .with_value(Some(StrBytes::from_string(v.into()))),
                ])])
    };
    let r: CreateTopicsResponse = c
        .call(
            ApiKey::CreateTopics,
            7,
            &with_cfg("c1", "retention.ms", "1000", false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    let r: CreateTopicsResponse = c
        .call(
            ApiKey::CreateTopics,
            7,
            &with_cfg("c2", "retention.ms", "soon", false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, ResponseError::InvalidConfig.code());
    let r: CreateTopicsResponse = c
        .call(
            ApiKey::CreateTopics,
            7,
            &with_cfg("c3", "no.such.config", "1", false),
        )
        .await;
    assert_eq!(r.topics[0].error_code, ResponseError::InvalidConfig.code());
    let r: CreateTopicsResponse = c
        .call(
            ApiKey::CreateTopics,
            7,
            &with_cfg("c4", "retention.ms", "5", true),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    let md: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    let names: Vec<String> = md
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec!["c1", "t1"]);
    assert!(md.topics.iter().any(|t| t.is_internal
        && t.name
            .as_ref()
            .is_some_and(|n| n.0.as_str() == "__consumer_offsets")));
    // Describe: override is DYNAMIC_TOPIC_CONFIG, the rest defaults.
    let d: DescribeConfigsResponse = c
        .call(ApiKey::DescribeConfigs, 4, &describe_topic("c1"))
        .await;
    let ret = d.results[0]
        .configs
        .iter()
        .find(|e| e.name.as_str() == "retention.ms")
        .expect("retention.ms");
    assert_eq!((ret.value.as_deref(), ret.config_source), (Some("1000"), 1));
    let seg = d.results[0]
        .configs
        .iter()
        .find(|e| e.name.as_str() == "segment.bytes")
        .expect("segment.bytes");
    assert_eq!(
        (seg.value.as_deref(), seg.config_source),
        (Some("1073741824"), 5)
    );
    // Incremental alter: set then delete.
    let alter = |op: i8, v: Option<&str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("c1"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_config_operation(op)
                        .with_value(v.map(|v| StrBytes::from_string(v.into()))),
                ]),
        ])
    };
    let r: IncrementalAlterConfigsResponse = c
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter(0, Some("2000")))
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let d: DescribeConfigsResponse = c
        .call(ApiKey::DescribeConfigs, 4, &describe_topic("c1"))
        .await;
    assert_eq!(
        d.results[0]
            .configs
            .iter()
            .find(|e| e.name.as_str() == "retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("2000")
    );
    let r: IncrementalAlterConfigsResponse = c
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter(1, None))
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let r: IncrementalAlterConfigsResponse = c
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter(0, Some("x")))
        .await;
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    // CreatePartitions.
    let cp = |n: i32| {
        CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(client::name("t1"))
                .with_count(n),
        ])
    };
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &cp(5)).await;
    assert_eq!(r.results[0].error_code, 0);
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &cp(2)).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    // Delete, then unknown.
    let del = DeleteTopicsRequest::default().with_topic_names(vec![client::name("t1")]);
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 4, &del).await;
    assert_eq!(r.responses[0].error_code, 0);
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 4, &del).await;
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn topics_and_data_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let id = client::create_topic(&mut c, "keep", 2).await.topics[0].topic_id;
    client::produce(
        &mut c,
        "keep",
        1,
        strom_record::BatchBuilder::new(0)
            .record(None, Some(b"v"))
            .build(),
        -1,
    )
    .await;
    drop(c);
    server.shutdown().await;
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let md: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    let user: Vec<_> = md.topics.iter().filter(|t| !t.is_internal).collect();
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].topic_id, id);
    assert_eq!(user[0].partitions.len(), 2);
    let f: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &client::fetch_request("keep", 1, 0, 0, 0),
        )
        .await;
    assert_eq!(f.responses[0].partitions[0].high_watermark, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn metadata_auto_creates_when_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[("num.partitions", "3")]).await;
    let mut c = Client::connect(server.local_addr).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(client::name("auto")))]))
        .with_allow_auto_topic_creation(true);
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(
        (md.topics[0].error_code, md.topics[0].partitions.len()),
        (0, 3)
    );
    server.shutdown().await;
    let server = crate::start(dir.path(), &[("auto.create.topics.enable", "false")]).await;
    let mut c = Client::connect(server.local_addr).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(client::name("other")))]))
        .with_allow_auto_topic_creation(true);
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(
        md.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    server.shutdown().await;
}
