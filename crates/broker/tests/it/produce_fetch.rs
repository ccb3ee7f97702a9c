//! Produce, fetch (long poll, sessions), list offsets, pipelining.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use strom_record::{BatchBuilder, Batches};

use crate::client::{self, Client};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A batch stamped now (old timestamps would be fair game for retention).
fn batch(values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(now_ms());
    for v in values {
        b = b.record(Some(b"k"), Some(v.as_bytes()));
    }
    b.build()
}

fn offsets(records: &[u8]) -> Vec<i64> {
    Batches::verified(records)
        .map(|b| b.expect("valid batch").0.base_offset)
        .collect()
}

#[tokio::test]
async fn produce_then_fetch_and_list_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        client::create_topic(&mut c, "pf", 2).await.topics[0].error_code,
        0
    );
    let r = client::produce(&mut c, "pf", 1, batch(&["a", "b", "c"]), -1).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let r = client::produce(&mut c, "pf", 1, batch(&["d"]), 1).await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 12, &client::fetch_request("pf", 1, 1, 0, 0))
        .await;
    let pd = &f.responses[0].partitions[0];
    assert_eq!((pd.error_code, pd.high_watermark), (0, 4));
    assert_eq!(offsets(pd.records.as_ref().expect("records")), vec![0, 3]);
    // Out of range.
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 12, &client::fetch_request("pf", 1, 99, 0, 0))
        .await;
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    // ListOffsets earliest/latest/by time.
    let lo = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(client::name("pf"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(1)
                        .with_timestamp(ts),
                ])])
    };
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &lo(-1)).await;
    assert_eq!(r.topics[0].partitions[0].offset, 4);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &lo(-2)).await;
    assert_eq!(r.topics[0].partitions[0].offset, 0);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &lo(now_ms() - 60_000)).await;
    assert_eq!(r.topics[0].partitions[0].offset, 0);
    let r: ListOffsetsResponse = c
        .call(ApiKey::ListOffsets, 1, &lo(now_ms() + 3_600_000))
        .await;
    assert_eq!(r.topics[0].partitions[0].offset, -1);
    server.shutdown().await;
}

#[tokio::test]
async fn produce_errors_are_per_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "pe", 1).await;
    let r = client::produce(&mut c, "nope", 0, batch(&["x"]), 1).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let mut bad = batch(&["x"]);
    let n = bad.len() - 1;
    bad[n] ^= 0xff;
    let r = client::produce(&mut c, "pe", 0, bad, 1).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::CorruptMessage.code()
    );
    let big = "x".repeat(2 << 20);
    let r = client::produce(&mut c, "pe", 0, batch(&[&big]), 1).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::MessageTooLarge.code()
    );
    let r = client::produce(&mut c, "pe", 0, batch(&["x"]), 2).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_order_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "a0", 1).await;
    // Pipeline: acks=0 produce, then a metadata request; the only response is the metadata one.
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(client::name("a0"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&["z"]).into())),
            ])]);
    c.send(ApiKey::Produce, 9, &req).await;
    let ids: Vec<i32> = futures_lite_send_many(&mut c).await;
    for id in ids {
        let (cid, _) = c.recv_raw(ApiKey::Metadata, 12).await.expect("response");
        assert_eq!(cid, id, "responses come back in request order");
    }
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 12, &client::fetch_request("a0", 0, 0, 0, 0))
        .await;
    assert_eq!(f.responses[0].partitions[0].high_watermark, 1);
    server.shutdown().await;
}

async fn futures_lite_send_many(c: &mut Client) -> Vec<i32> {
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            c.send(ApiKey::Metadata, 12, &MetadataRequest::default())
                .await,
        );
    }
    ids
}

#[tokio::test]
async fn long_poll_is_woken_by_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "lp", 1).await;
    let addr = server.local_addr;
    // A fetch that would wait 10 minutes unless an append wakes it.
    let waiter = tokio::spawn(async move {
        let mut c2 = Client::connect(addr).await;
        let f: FetchResponse = c2
            .call(
                ApiKey::Fetch,
                12,
                &client::fetch_request("lp", 0, 0, 600_000, 1),
            )
            .await;
        f
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    client::produce(&mut c, "lp", 0, batch(&["wake"]), 1).await;
    let f = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("woken well before max_wait")
        .expect("task");
    assert_eq!(
        offsets(
            f.responses[0].partitions[0]
                .records
                .as_ref()
                .expect("records")
        ),
        vec![0]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn incremental_fetch_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "fs", 2).await;
    client::produce(&mut c, "fs", 0, batch(&["a"]), 1).await;
    let mut req = client::fetch_request("fs", 0, 0, 0, 0)
        .with_session_id(0)
        .with_session_epoch(0);
    req.topics[0].partitions.push(
        fetch_request::FetchPartition::default()
            .with_partition(1)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20),
    );
    let full: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert!(full.session_id > 0);
    assert_eq!(full.responses[0].partitions.len(), 2);
    // Incremental with no changes: partition 0 moved to offset 1, nothing new anywhere.
    let inc = client::fetch_request("fs", 0, 1, 0, 0)
        .with_session_id(full.session_id)
        .with_session_epoch(1);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &inc).await;
    assert_eq!(r.error_code, 0);
    assert!(
        r.responses.iter().all(|t| t.partitions.is_empty()),
        "no changes, no partitions: {r:?}"
    );
    // New data on partition 1 shows up without naming it.
    client::produce(&mut c, "fs", 1, batch(&["b"]), 1).await;
    let inc = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_id(full.session_id)
        .with_session_epoch(2);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &inc).await;
    let parts: Vec<i32> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .collect();
    assert_eq!(parts, vec![1]);
    // Wrong epoch.
    let bad = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_session_id(full.session_id)
        .with_session_epoch(9);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &bad).await;
    assert_eq!(r.error_code, ResponseError::InvalidFetchSessionEpoch.code());
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_produces_are_appended_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "pipe", 1).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        let v = i.to_string();
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(client::name("pipe"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(&[&v]).into())),
                ])]);
        ids.push(c.send(ApiKey::Produce, 9, &req).await);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let (cid, mut body) = c.recv_raw(ApiKey::Produce, 9).await.expect("response");
        assert_eq!(cid, id);
        let r = <ProduceResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 9)
            .expect("decode");
        assert_eq!(
            r.responses[0].partition_responses[0].base_offset, i as i64,
            "request {i} appended out of order"
        );
    }
    server.shutdown().await;
}
