//! The metadata log: topics survive restarts through it, and a data
//! directory written by a version that kept `topics.json` is migrated.

use kafka_protocol::messages::*;
use strom_record::{BatchBuilder, Batches};

use crate::client::{self, Client};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn metadata(c: &mut Client) -> MetadataResponse {
    c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await
}

/// The user topics (not the internal `__consumer_offsets`) with ids and partition counts.
fn layout(m: &MetadataResponse) -> Vec<(String, uuid::Uuid, usize)> {
    let mut v: Vec<_> = m
        .topics
        .iter()
        .filter(|t| !t.name.as_ref().is_some_and(|n| n.0.starts_with("__")))
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            (name, t.topic_id, t.partitions.len())
        })
        .collect();
    v.sort();
    v
}

async fn values(c: &mut Client, topic: &str, partition: i32) -> usize {
    let r: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &client::fetch_request(topic, partition, 0, 0, 0),
        )
        .await;
    let records = r.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    Batches::verified(&records)
        .map(|b| b.expect("valid batch").0.records_count as usize)
        .sum()
}

#[tokio::test]
async fn topics_come_back_from_the_metadata_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "kept", 3).await.topics[0].error_code,
        0
    );
    assert_eq!(
        client::create_topic(&mut c, "gone", 1).await.topics[0].error_code,
        0
    );
    let req = DeleteTopicsRequest::default().with_topic_names(vec![client::name("gone")]);
    let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &req).await;
    assert_eq!(r.responses[0].error_code, 0);
    let before = layout(&metadata(&mut c).await);
    server.shutdown().await;
    assert!(dir.path().join("__cluster_metadata-0").is_dir());
    assert!(!dir.path().join("topics.json").exists());

    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(layout(&metadata(&mut c).await), before);
    assert_eq!(before.len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_data_dir_with_topics_json_is_migrated_on_first_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Data as an earlier version left it: partition logs plus topics.json.
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "orders", 2).await.topics[0].error_code,
        0
    );
    for p in 0..2 {
        let b = BatchBuilder::new(now_ms())
            .record(Some(b"k"), Some(b"v1"))
            .record(Some(b"k"), Some(b"v2"))
            .build();
        let r = client::produce(&mut c, "orders", p, b, -1).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let id = layout(&metadata(&mut c).await)[0].1;
    server.shutdown().await;
    std::fs::remove_dir_all(dir.path().join("__cluster_metadata-0")).expect("old layout");
    let old = format!(
        r#"[{{"name":"orders","id":"{id}","partitions":2,"configs":{{"retention.ms":"3600000"}}}},
            {{"name":"fresh","id":"{}","partitions":1,"configs":{{}}}}]"#,
        uuid::Uuid::new_v4()
    );
    std::fs::write(dir.path().join("topics.json"), old).expect("topics.json");

    for round in 0..2 {
        let server = crate::start(dir.path(), &[]).await;
        let mut c = Client::connect(server.local_addr).await;
        let l = layout(&metadata(&mut c).await);
        assert_eq!(l.len(), 2, "round {round}: {l:?}");
        assert_eq!(
            l[1],
            ("orders".to_string(), id, 2),
            "the same id, round {round}"
        );
        assert_eq!(
            values(&mut c, "orders", 0).await,
            2,
            "the data, round {round}"
        );
        assert_eq!(values(&mut c, "orders", 1).await, 2);
        let r: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                4,
                &DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(client::name("orders").0)
                        .with_configuration_keys(Some(vec![client::name("retention.ms").0])),
                ]),
            )
            .await;
        let v = r.results[0].configs[0]
            .value
            .as_ref()
            .map(|v| v.to_string());
        assert_eq!(v.as_deref(), Some("3600000"), "round {round}");
        server.shutdown().await;
        assert!(!dir.path().join("topics.json").exists());
        assert!(dir.path().join("topics.json.migrated").exists());
    }
}

#[tokio::test]
async fn stray_partition_directories_are_set_aside_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "kept", 1).await.topics[0].error_code,
        0
    );
    server.shutdown().await;
    // A log the metadata does not place here (a topic deleted or a
    // partition moved away while the node was down), one past the
    // partition count, and a deletion a crash interrupted.
    let ghost = dir.path().join("ghost-0");
    std::fs::create_dir(&ghost).expect("ghost");
    std::fs::write(ghost.join("00000000000000000000.log"), b"old").expect("file");
    std::fs::create_dir(dir.path().join("kept-7")).expect("kept-7");
    std::fs::create_dir(dir.path().join("gone-0.0123abcd-delete")).expect("delete");

    let server = crate::start(dir.path(), &[]).await;
    assert!(dir.path().join("kept-0").is_dir());
    assert!(!ghost.exists());
    let aside = set_aside(dir.path(), "ghost-0");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(aside[0].join("00000000000000000000.log")).expect("kept aside"),
        b"old"
    );
    assert_eq!(set_aside(dir.path(), "kept-7").len(), 1);
    assert!(!dir.path().join("gone-0.0123abcd-delete").exists());
    // The name is free: a new topic of that name starts empty.
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "ghost", 1).await.topics[0].error_code,
        0
    );
    assert_eq!(values(&mut c, "ghost", 0).await, 0);
    server.shutdown().await;
}

/// The directories `name` was set aside as (`<name>.<uuid>-stray`).
fn set_aside(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{name}.")) && n.ends_with("-stray")
        })
        .map(|e| e.path())
        .collect()
}
