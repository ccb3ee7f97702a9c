//! Idempotent and transactional produce over the wire: sequence checks,
//! duplicates after restarts (snapshot and log-scan paths), transactions and
//! read_committed fetches.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_record::BatchBuilder;

use crate::client::{self, Client};

fn batch(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000).producer(pid, epoch, seq);
    for i in 0..n {
        b = b.record(None, Some(format!("v{seq}-{i}").as_bytes()));
    }
    if txn {
        b = b.transactional(false);
    }
    b.build()
}

/// (error code, base offset) of a one-partition produce.
async fn produce(c: &mut Client, topic: &str, records: Vec<u8>) -> (i16, i64) {
    let r = client::produce(c, topic, 0, records, -1).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init_pid(c: &mut Client, txn_id: Option<&str>) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn_id.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req).await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

async fn log_end(c: &mut Client, topic: &str, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(client::name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    r.topics[0].partitions[0].offset
}

#[tokio::test]
async fn sequences_are_checked_and_survive_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "idem", 1).await;
    let (pid, epoch) = init_pid(&mut c, None).await;
    let (pid2, _) = init_pid(&mut c, None).await;
    assert_ne!(pid, pid2, "every idempotent producer gets its own id");

    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch, 0, 3, false)).await,
        (0, 0)
    );
    // A retry is acknowledged with the original offset and not written again.
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch, 0, 3, false)).await,
        (0, 0)
    );
    assert_eq!(log_end(&mut c, "idem", 0).await, 3);
    let gap = produce(&mut c, "idem", batch(pid, epoch, 5, 1, false)).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch, 3, 2, false)).await,
        (0, 3)
    );
    // Two batches of one idempotent producer in one partition's data are refused.
    let mut two = batch(pid, epoch, 5, 1, false);
    two.extend(batch(pid, epoch, 6, 1, false));
    assert_eq!(
        produce(&mut c, "idem", two).await.0,
        ResponseError::InvalidRecord.code()
    );
    // A bumped epoch starts at sequence 0 and fences the old epoch.
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch + 1, 0, 1, false)).await,
        (0, 5)
    );
    let stale = produce(&mut c, "idem", batch(pid, epoch, 5, 1, false)).await;
    assert_eq!(stale.0, ResponseError::InvalidProducerEpoch.code());
    drop(c);
    server.shutdown().await;

    // Clean restart: the snapshot brings the state back.
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch + 1, 0, 1, false)).await,
        (0, 5)
    );
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch + 1, 1, 1, false)).await,
        (0, 6)
    );
    drop(c);
    server.shutdown().await;

    // As after a crash: no snapshot, no clean marker; the state comes from the log.
    let part = dir.path().join("idem-0");
    std::fs::remove_file(part.join("producer-state.json")).expect("snapshot written at shutdown");
    std::fs::remove_file(part.join("clean_shutdown")).expect("clean marker");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch + 1, 1, 1, false)).await,
        (0, 6)
    );
    assert_eq!(
        produce(&mut c, "idem", batch(pid, epoch + 1, 0, 1, false)).await,
        (0, 5)
    );
    let gap = produce(&mut c, "idem", batch(pid, epoch + 1, 9, 1, false)).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(log_end(&mut c, "idem", 0).await, 7);
    drop(c);
    server.shutdown().await;
}

#[tokio::test]
async fn transactions_bound_read_committed_fetches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "tx", 1).await;
    client::create_topic(&mut c, "other", 1).await;
    let (pid, epoch) = init_pid(&mut c, Some("app")).await;
    let txn = TransactionalId(StrBytes::from_static_str("app"));

    // Not added to the transaction: refused.
    let r = produce(&mut c, "tx", batch(pid, epoch, 0, 2, true)).await;
    assert_eq!(r.0, ResponseError::InvalidTxnState.code());

    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn.clone())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(client::name("tx"))
                .with_partitions(vec![0]),
        ]);
    let r: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, 3, &add).await;
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(
        produce(&mut c, "tx", batch(pid, epoch, 0, 2, true)).await,
        (0, 0)
    );
    let plain = BatchBuilder::new(1_700_000_000_000)
        .record(None, Some(b"plain"))
        .build();
    assert_eq!(produce(&mut c, "tx", plain).await, (0, 2));

    // The open transaction holds the last stable offset at its first offset.
    assert_eq!(log_end(&mut c, "tx", 1).await, 0);
    assert_eq!(log_end(&mut c, "tx", 0).await, 3);
    let f: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &client::fetch_request("tx", 0, 0, 0, 0).with_isolation_level(1),
        )
        .await;
    let pd = &f.responses[0].partitions[0];
    assert_eq!(pd.last_stable_offset, 0);
    assert!(pd.records.as_ref().is_none_or(Bytes::is_empty));

    let end = EndTxnRequest::default()
        .with_transactional_id(txn.clone())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(false);
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &end).await;
    assert_eq!(r.error_code, 0);
    // A retried EndTxn succeeds; a commit of the aborted transaction does not.
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &end).await;
    assert_eq!(r.error_code, 0);
    let r: EndTxnResponse = c
        .call(ApiKey::EndTxn, 3, &end.clone().with_committed(true))
        .await;
    assert_eq!(r.error_code, ResponseError::InvalidTxnState.code());

    // Marker at offset 3; everything is stable; the abort is listed for read_committed.
    assert_eq!(log_end(&mut c, "tx", 1).await, 4);
    let f: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &client::fetch_request("tx", 0, 0, 0, 0).with_isolation_level(1),
        )
        .await;
    let pd = &f.responses[0].partitions[0];
    assert_eq!((pd.high_watermark, pd.last_stable_offset), (4, 4));
    let aborted = pd
        .aborted_transactions
        .as_ref()
        .expect("aborted list for read_committed");
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid, 0)
    );

    // A new InitProducerId for the id fences the old epoch.
    let (pid_again, epoch2) = init_pid(&mut c, Some("app")).await;
    assert_eq!((pid_again, epoch2), (pid, epoch + 1));
    let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &end).await;
    assert_eq!(r.error_code, ResponseError::ProducerFenced.code());
    drop(c);
    server.shutdown().await;
}

#[tokio::test]
async fn idle_producers_and_transactional_ids_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(
        dir.path(),
        &[
            ("producer.id.expiration.ms", "200"),
            ("transactional.id.expiration.ms", "200"),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                "50",
            ),
        ],
    )
    .await;
    let mut c = Client::connect(server.local_addr).await;
    client::create_topic(&mut c, "exp", 1).await;
    let (pid, epoch) = init_pid(&mut c, None).await;
    init_pid(&mut c, Some("short-lived")).await;
    assert_eq!(
        produce(&mut c, "exp", batch(pid, epoch, 0, 1, false)).await,
        (0, 0)
    );
    let gap = produce(&mut c, "exp", batch(pid, epoch, 7, 1, false)).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());

    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(client::name("exp"))
            .with_partition_indexes(vec![0]),
    ]);
    let r: DescribeProducersResponse = c.call(ApiKey::DescribeProducers, 0, &req).await;
    assert!(
        r.topics[0].partitions[0].active_producers.is_empty(),
        "idle producer forgotten"
    );
    // A forgotten producer starts again at any sequence.
    assert_eq!(
        produce(&mut c, "exp", batch(pid, epoch, 7, 1, false)).await,
        (0, 1)
    );
    let r: ListTransactionsResponse = c
        .call(
            ApiKey::ListTransactions,
            0,
            &ListTransactionsRequest::default(),
        )
        .await;
    assert!(
        r.transaction_states.is_empty(),
        "idle transactional id forgotten"
    );
    drop(c);
    server.shutdown().await;
}
