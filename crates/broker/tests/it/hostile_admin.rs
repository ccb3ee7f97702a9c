//! Administrative requests larger than Kafka's controller allows, creation
//! that fails half-way, requests that name a partition many times, and
//! start-up with damaged metadata files.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use strom_broker::BrokerConfig;
use strom_record::BatchBuilder;

use crate::client::{self, Client};

const EXCESSIVE_PARTITIONS: &str = "Excessively large number of partitions per request.";
const EXCESSIVE_BATCH: &str = "Unable to perform excessively large batch operation.";

fn creatable(name: &str, partitions: i32) -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default()
        .with_name(client::name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

async fn create_many(
    c: &mut Client,
    topics: Vec<create_topics_request::CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(60_000)
        .with_validate_only(validate_only)
        .with_topics(topics);
    c.call(ApiKey::CreateTopics, 7, &req).await
}

async fn grow(c: &mut Client, wants: &[(&str, i32)]) -> CreatePartitionsResponse {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(
            wants
                .iter()
                .map(|(t, n)| {
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(client::name(t))
                        .with_count(*n)
                })
                .collect(),
        );
    c.call(ApiKey::CreatePartitions, 3, &req).await
}

async fn partition_count(c: &mut Client, topic: &str) -> Option<usize> {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(client::name(topic)))]));
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    (r.topics[0].error_code == 0).then(|| r.topics[0].partitions.len())
}

/// Names of the partition directories in `dir` (anything named `<x>-<n>`).
fn partition_dirs(dir: &std::path::Path, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}-");
    std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

#[tokio::test]
async fn oversized_creation_is_refused_whole_with_kafkas_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;

    // The frame: one topic of 100,000 partitions.
    let r = create_many(&mut c, vec![creatable("big", 100_000)], false).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(
        r.topics[0].error_message.as_deref(),
        Some(EXCESSIVE_PARTITIONS)
    );
    // Counted over the request, before any other check, validate_only too.
    let r = create_many(
        &mut c,
        vec![
            creatable("a", 5000),
            creatable("b", 5000),
            creatable("bad name", 1),
        ],
        true,
    )
    .await;
    assert!(r
        .topics
        .iter()
        .all(|t| t.error_code == ResponseError::PolicyViolation.code()));
    // 5,001 one-partition topics are 10,002 records for Kafka's controller.
    let many: Vec<_> = (0..5001).map(|i| creatable(&format!("m{i}"), 1)).collect();
    let r = create_many(&mut c, many, false).await;
    assert_eq!(r.topics.len(), 5001);
    assert!(r
        .topics
        .iter()
        .all(|t| t.error_code == ResponseError::PolicyViolation.code()
            && t.error_message.as_deref() == Some(EXCESSIVE_BATCH)));
    assert!(partition_dirs(dir.path(), "big").is_empty());
    assert!(partition_dirs(dir.path(), "m0").is_empty());
    assert_eq!(partition_count(&mut c, "m0").await, None);

    // CreatePartitions past 10,000 new partitions: refused, count unchanged.
    assert_eq!(
        client::create_topic(&mut c, "fuzz", 2).await.topics[0].error_code,
        0
    );
    let r = grow(&mut c, &[("fuzz", 32_770)]).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(r.results[0].error_message.as_deref(), Some(EXCESSIVE_BATCH));
    assert_eq!(partition_count(&mut c, "fuzz").await, Some(2));
    assert_eq!(partition_dirs(dir.path(), "fuzz").len(), 2);
    // Kafka's answers for a non-increase and a duplicate.
    let r = grow(&mut c, &[("fuzz", 2)]).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    let r = grow(&mut c, &[("fuzz", 3), ("fuzz", 4)]).await;
    assert_eq!(r.results.len(), 1);
    assert_eq!(
        r.results[0].error_code,
        ResponseError::InvalidRequest.code()
    );
    let r = grow(&mut c, &[("fuzz", 4)]).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(partition_count(&mut c, "fuzz").await, Some(4));
    server.shutdown().await;

    // Nothing of the refused requests came back after a restart.
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(partition_count(&mut c, "fuzz").await, Some(4));
    assert_eq!(partition_count(&mut c, "big").await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn failed_creation_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "kept", 1).await.topics[0].error_code,
        0
    );
    // A dangling symlink where a partition's directory goes: laying it out fails.
    let blocker = dir.path().join("y-1");
    std::os::unix::fs::symlink(dir.path().join("nowhere/at/all"), &blocker).expect("block y-1");
    let blocker2 = dir.path().join("kept-3");
    std::os::unix::fs::symlink(dir.path().join("nowhere/at/all"), &blocker2).expect("block kept-3");
    let r = create_many(
        &mut c,
        vec![creatable("x", 3), creatable("y", 2), creatable("kept", 1)],
        false,
    )
    .await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::KafkaStorageError.code()
    );
    assert_eq!(
        r.topics[1].error_code,
        ResponseError::KafkaStorageError.code()
    );
    assert_eq!(
        r.topics[2].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    assert!(partition_dirs(dir.path(), "x").is_empty());
    assert!(partition_dirs(dir.path(), "y").is_empty());
    assert_eq!(partition_count(&mut c, "x").await, None);
    let r = grow(&mut c, &[("kept", 5)]).await;
    assert_eq!(
        r.results[0].error_code,
        ResponseError::KafkaStorageError.code()
    );
    assert_eq!(partition_count(&mut c, "kept").await, Some(1));
    assert_eq!(
        partition_dirs(dir.path(), "kept"),
        vec!["kept-0".to_string()]
    );

    // (Undoing a layout may have removed them already.)
    let _ = std::fs::remove_file(&blocker);
    let _ = std::fs::remove_file(&blocker2);
    let r = create_many(&mut c, vec![creatable("x", 3)], false).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(grow(&mut c, &[("kept", 5)]).await.results[0].error_code, 0);
    assert_eq!(partition_count(&mut c, "x").await, Some(3));
    assert_eq!(partition_count(&mut c, "kept").await, Some(5));
    server.shutdown().await;
}

#[tokio::test]
async fn a_stray_directory_never_becomes_a_new_partitions_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Left by something no metadata lists.
    let stray = dir.path().join("s-0");
    std::fs::create_dir_all(&stray).expect("stray");
    std::fs::write(stray.join("00000000000000000000.log"), b"not a log").expect("junk");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "s", 1).await.topics[0].error_code,
        0
    );
    let r: ListOffsetsResponse = c
        .call(ApiKey::ListOffsets, 7, &list_offsets(&[("s", &[0])]))
        .await;
    assert_eq!(r.topics[0].partitions[0].offset, 0);
    let moved = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with("-stray"));
    assert!(moved, "the stray directory is kept aside, not deleted");
    server.shutdown().await;
}

fn list_offsets(wants: &[(&str, &[i32])]) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            wants
                .iter()
                .map(|(t, parts)| {
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(client::name(t))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    list_offsets_request::ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

#[tokio::test]
async fn repeated_names_are_answered_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[("fetch.max.bytes", "1024")]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "t", 2).await.topics[0].error_code,
        0
    );

    // Metadata: one topic named 10,000 times, plus an unknown one twice.
    let mut named = vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(Some(client::name("t")));
        10_000
    ];
    named.extend(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(Some(client::name("nope")));
        2
    ]);
    let req = MetadataRequest::default()
        .with_topics(Some(named))
        .with_allow_auto_topic_creation(false);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics.len(), 2);
    assert_eq!(r.topics[0].partitions.len(), 2);
    assert_eq!(
        r.topics[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    // ListOffsets: t-0 named 1,000 times (and t twice), t-1 once.
    let zeros = vec![0; 1000];
    let r: ListOffsetsResponse = c
        .call(
            ApiKey::ListOffsets,
            7,
            &list_offsets(&[("t", &zeros), ("t", &[1])]),
        )
        .await;
    assert_eq!(r.topics.len(), 1);
    let parts = &r.topics[0].partitions;
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].partition_index, 0);
    assert_eq!(parts[0].error_code, ResponseError::InvalidRequest.code());
    assert_eq!(
        (
            parts[1].partition_index,
            parts[1].error_code,
            parts[1].offset
        ),
        (1, 0, 0)
    );

    // Fetch: the broker's fetch.max.bytes caps the response below the
    // request's max_bytes; the same partition named many times is read once.
    for i in 0..20 {
        let b = BatchBuilder::new(1_700_000_000_000)
            .record(None, Some(&vec![b'a' + (i % 26) as u8; 300]))
            .build();
        let r = client::produce(&mut c, "t", 0, b, -1).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let mut req = client::fetch_request("t", 0, 0, 0, 1);
    let p = req.topics[0].partitions[0].clone();
    req.topics[0].partitions = vec![p; 500];
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].partitions.len(), 1);
    let got = r.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Bytes::len);
    assert!(
        got > 0 && got <= 1024,
        "{got} bytes for fetch.max.bytes=1024"
    );
    server.shutdown().await;
}

async fn start_err(dir: &std::path::Path) -> String {
    let mut o = std::collections::BTreeMap::new();
    o.insert("listeners".to_string(), "127.0.0.1:0".to_string());
    o.insert("log.dirs".to_string(), dir.display().to_string());
    match strom_broker::start(BrokerConfig::from_overrides(&o).expect("config")).await {
        Ok(s) => {
            s.shutdown().await;
            panic!("started with a damaged data directory")
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn damaged_metadata_files_stop_the_broker_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "t", 1).await.topics[0].error_code,
        0
    );
    server.shutdown().await;

    // A damaged metadata log (not a torn tail: a flipped byte inside).
    let log = dir.path().join("__cluster_metadata-0").join("log");
    let good = std::fs::read(&log).expect("metadata log");
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0xff;
    std::fs::write(&log, &bad).expect("damage");
    let e = start_err(dir.path()).await;
    assert!(e.contains("metadata log cannot start"), "{e}");
    assert!(e.contains("is damaged at byte"), "{e}");
    std::fs::write(&log, &good).expect("restore");

    // A topics.json left by an earlier version is moved into the log; a
    // damaged one stops the broker with a reason.
    let topics = dir.path().join("topics.json");
    std::fs::write(&topics, b"").expect("empty");
    let e = start_err(dir.path()).await;
    assert!(e.contains("topics.json is empty"), "{e}");
    assert!(e.contains("restore topics.json from a backup"), "{e}");
    assert!(!e.contains("cannot write"), "{e}");
    std::fs::write(&topics, b"[{\"name\": \"t\", \"id\"").expect("torn");
    let e = start_err(dir.path()).await;
    assert!(e.contains("topics.json is damaged"), "{e}");
    std::fs::remove_file(&topics).expect("remove");

    let block = dir.path().join("producer-id-block");
    for junk in [&b""[..], b"\x00\x00", b"12 apples"] {
        std::fs::write(&block, junk).expect("damage");
        let e = start_err(dir.path()).await;
        assert!(e.contains("producer-id-block is"), "{e}");
        assert!(e.contains("To recover, delete the file"), "{e}");
        assert!(!e.contains("cannot write"), "{e}");
    }
    std::fs::remove_file(&block).expect("remove");
    let server = crate::start(dir.path(), &[]).await;
    server.shutdown().await;
}

async fn init_pid(c: &mut Client) -> i64 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, 0);
    r.producer_id.0
}

#[tokio::test]
async fn a_lost_producer_id_block_never_reuses_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "t", 1).await.topics[0].error_code,
        0
    );
    let used = init_pid(&mut c).await;
    let b = BatchBuilder::new(1_700_000_000_000)
        .producer(used, 0, 0)
        .record(None, Some(b"v"))
        .build();
    let r = client::produce(&mut c, "t", 0, b, -1).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    server.shutdown().await;

    std::fs::remove_file(dir.path().join("producer-id-block")).expect("lose it");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let next = init_pid(&mut c).await;
    assert!(next > used, "{next} after {used}");
    server.shutdown().await;

    // The same when only the log remembers the producer.
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let later = init_pid(&mut c).await;
    let b = BatchBuilder::new(1_700_000_000_000)
        .producer(later, 0, 0)
        .record(None, Some(b"w"))
        .build();
    assert_eq!(
        client::produce(&mut c, "t", 0, b, -1).await.responses[0].partition_responses[0].error_code,
        0
    );
    server.shutdown().await;
    // As after a crash: no clean-shutdown marker, no producer snapshot.
    for p in std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
    {
        let _ = std::fs::remove_file(p.path().join("clean_shutdown"));
        let _ = std::fs::remove_file(p.path().join("producer-state.json"));
    }
    std::fs::remove_file(dir.path().join("producer-id-block")).expect("lose it");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let after_crash = init_pid(&mut c).await;
    assert!(after_crash > later, "{after_crash} after {later}");
    server.shutdown().await;
}
