//! The producer against an in-process broker: idempotent by default, keys
//! placed like the Java client, transactions committed, aborted and fenced.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::*;
use strom_broker::ServerHandle;
use strom_client::producer::{partition_for_key, Producer, ProducerConfig, ProducerRecord};
use strom_client::{Admin, ClientError, Connection};
use strom_protocol::alloc::GuardedAlloc;

mod common;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

async fn start(dir: &std::path::Path) -> ServerHandle {
    common::start(dir, &[("num.partitions", "3")]).await
}

/// (high watermark, last stable offset, aborted producer ids) of a read_committed fetch.
async fn read_committed(addr: &str, topic: &str, partition: i32) -> (i64, i64, Vec<i64>) {
    let mut c = Connection::connect(addr, "it", Duration::from_secs(5))
        .await
        .expect("connect");
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_isolation_level(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(topic.to_string().into()))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = c.call_at(ApiKey::Fetch, 12, &req).await.expect("fetch");
    let p = &r.responses[0].partitions[0];
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| a.producer_id.0)
        .collect();
    (p.high_watermark, p.last_stable_offset, aborted)
}

#[tokio::test]
async fn idempotent_by_default_and_keys_land_like_java() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let addr = server.local_addr.to_string();
    let producer = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    assert!(producer.is_idempotent());
    let mut deliveries = Vec::new();
    for i in 0..20_000 {
        let key = format!("meter-{}", i % 50);
        let d = producer
            .send(
                ProducerRecord::new("readings")
                    .key(key.clone())
                    .value(format!("{i}")),
            )
            .await
            .expect("queued");
        deliveries.push((key, d));
    }
    producer.flush().await.expect("flush");
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (key, d) in deliveries {
        let m = d.await.expect("delivered");
        assert_eq!(m.partition, partition_for_key(key.as_bytes(), 3), "{key}");
        let prev = last.insert(m.partition, m.offset);
        assert!(
            prev.is_none_or(|p| m.offset == p + 1),
            "offsets in order per partition"
        );
    }
    assert_eq!(last.values().map(|o| o + 1).sum::<i64>(), 20_000);
    let mut admin = Admin::connect(&addr, Duration::from_secs(5))
        .await
        .expect("admin");
    let producers = admin
        .describe_producers("readings", vec![0, 1, 2])
        .await
        .expect("describe");
    assert_eq!(
        producers.len(),
        3,
        "one idempotent producer per partition: {producers:?}"
    );
    for p in producers {
        assert_eq!(
            p.last_sequence as i64, last[&p.partition],
            "sequence = offset - 0 for a fresh producer"
        );
    }
    producer.close().await.expect("close");
    server.shutdown().await;
}

/// A caller that drops the delivery futures still learns, after a flush,
/// how many records were acknowledged and how many failed, and why.
#[tokio::test]
async fn delivery_counts_cover_records_whose_futures_were_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let addr = server.local_addr.to_string();
    let mut admin = Admin::connect(&addr, Duration::from_secs(5))
        .await
        .expect("admin");
    let small = BTreeMap::from([("max.message.bytes".to_string(), "2000".to_string())]);
    admin
        .create_topic("small-batches", 1, -1, &small)
        .await
        .expect("create");
    let mut config = ProducerConfig::new(&addr);
    config.set("linger.ms", "50").expect("linger.ms");
    let producer = Producer::new(config).await.expect("producer");
    for i in 0..1_000 {
        drop(
            producer
                .send(ProducerRecord::new("readings").value(format!("{i}")))
                .await
                .expect("queued"),
        );
    }
    producer.flush().await.expect("flush");
    let counts = producer.delivery_counts();
    assert_eq!((counts.acknowledged, counts.failed), (1_000, 0));
    assert_eq!(counts.first_error, None);
    // Ten records of 500 bytes share one batch, which the topic refuses
    // (MESSAGE_TOO_LARGE is not retried): all ten count as failed.
    for _ in 0..10 {
        drop(
            producer
                .send(ProducerRecord::new("small-batches").value(vec![b'x'; 500]))
                .await
                .expect("queued"),
        );
    }
    producer.flush().await.expect("flush");
    let counts = producer.delivery_counts();
    assert_eq!((counts.acknowledged, counts.failed), (1_000, 10));
    let why = counts.first_error.unwrap_or_default();
    assert!(why.contains("max.message.bytes"), "{why}");
    producer.close().await.expect("close");
    server.shutdown().await;
}

#[tokio::test]
async fn transactions_commit_abort_and_fence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let addr = server.local_addr.to_string();
    let mut cfg = ProducerConfig::new(&addr);
    cfg.set("transactional.id", "billing").expect("config");
    let producer = Producer::new(cfg.clone()).await.expect("producer");
    assert!(
        producer
            .send(ProducerRecord::new("invoices"))
            .await
            .is_err(),
        "no send outside a transaction"
    );
    producer.init_transactions().await.expect("init");

    producer.begin_transaction().await.expect("begin");
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new("invoices")
                    .partition(0)
                    .value(format!("aborted-{i}")),
            )
            .await
            .expect("queued");
    }
    producer.abort_transaction().await.expect("abort");
    let mut admin = Admin::connect(&addr, Duration::from_secs(5))
        .await
        .expect("admin");
    let d = admin
        .describe_transaction("billing")
        .await
        .expect("describe");
    assert_eq!(d.state, "CompleteAbort");
    let (hw, lso, aborted) = read_committed(&addr, "invoices", 0).await;
    assert_eq!((hw, lso), (11, 11), "10 records and the abort marker");
    assert_eq!(aborted, vec![d.producer_id]);

    // Offsets sent in an aborted transaction are dropped; in a committed one, kept.
    let group = strom_client::producer::ConsumerGroupMetadata::new("billing-app");
    producer.begin_transaction().await.expect("begin");
    producer
        .send_offsets_to_transaction(&[("invoices".to_string(), 0, 7)], &group)
        .await
        .expect("offsets");
    producer.abort_transaction().await.expect("abort");
    assert!(admin
        .committed("billing-app")
        .await
        .expect("committed")
        .is_empty());

    producer.begin_transaction().await.expect("begin");
    let f = producer
        .send(
            ProducerRecord::new("invoices")
                .partition(0)
                .value("committed"),
        )
        .await
        .expect("queued");
    producer
        .send_offsets_to_transaction(&[("invoices".to_string(), 0, 42)], &group)
        .await
        .expect("offsets");
    producer.commit_transaction().await.expect("commit");
    let m = f.await.expect("delivered");
    let (hw, lso, _) = read_committed(&addr, "invoices", 0).await;
    assert_eq!(
        (lso, hw),
        (m.offset + 2, m.offset + 2),
        "record and commit marker are stable"
    );
    assert_eq!(
        admin
            .describe_transaction("billing")
            .await
            .expect("describe")
            .state,
        "CompleteCommit"
    );
    let committed = admin.committed("billing-app").await.expect("committed");
    assert_eq!(committed.get(&("invoices".to_string(), 0)), Some(&42));

    // A second producer with the same id fences the first.
    producer.begin_transaction().await.expect("begin");
    producer
        .send(ProducerRecord::new("invoices").partition(0).value("zombie"))
        .await
        .expect("queued");
    producer.flush().await.expect("flush");
    let fresh = Producer::new(cfg).await.expect("producer");
    fresh
        .init_transactions()
        .await
        .expect("init fences the old one");
    let e = producer.commit_transaction().await.expect_err("fenced");
    assert!(
        matches!(
            e,
            ClientError::Kafka {
                error: kafka_protocol::error::ResponseError::ProducerFenced,
                ..
            }
        ),
        "{e}"
    );
    server.shutdown().await;
}
