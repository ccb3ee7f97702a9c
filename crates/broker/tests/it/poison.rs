//! Batches whose CRC is right but whose records are not (issue 25): the
//! promise is that Produce refuses them with Kafka's error, stores nothing
//! of them, and the partition stays readable to its end.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_record::{for_each_record, BatchBuilder, BatchHeader, Batches, Compression, OwnedRecord};
use tokio::io::AsyncWriteExt;

use crate::client::{self, name, Client};

/// The issue's Produce v9 frame: snappy attributes over `deadbeef`×4, CRC correct.
const SNAPPY_GARBAGE: &str = "000000880000000900000001000e616363657074616e63652d7261770000ffff000027100211702d736e617070792d6761726261676502000000004e000000000000000000000041ffffffff02624997a7000200000000000001a2381876a8000001a2381876a8ffffffffffffffffffffffffffff00000001deadbeefdeadbeefdeadbeefdeadbeef000000";
/// The issue's record-length lie: 1000 declared for a 10-byte record.
const RECLEN_LIE: &str = "0000007e0000000900000001000e616363657074616e63652d7261770000ffff00002710020d702d7265636c656e2d6c696502000000004800000000000000000000003bffffffff02967b91ae000000000000000001a2381876a8000001a2381876a8ffffffffffffffffffffffffffff00000001d00f000000026b027600000000";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sends a raw Produce v9 frame and decodes the answer.
async fn raw_produce(c: &mut Client, frame: &[u8]) -> ProduceResponse {
    c.stream.write_all(frame).await.expect("write");
    let (_, mut body) = c.recv_raw(ApiKey::Produce, 9).await.expect("response");
    ProduceResponse::decode(&mut body, 9).expect("decode")
}

async fn create(c: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

/// Every record of the partition from offset 0, read back; panics on any
/// batch that does not decode.
async fn read_all(c: &mut Client, topic: &str) -> Vec<(i64, Option<Vec<u8>>)> {
    let f: FetchResponse = c
        .call(ApiKey::Fetch, 12, &client::fetch_request(topic, 0, 0, 0, 0))
        .await;
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut out = Vec::new();
    for b in Batches::verified(p.records.as_deref().unwrap_or_default()) {
        let (_, _, bytes) = b.expect("stored batches are whole");
        for_each_record(bytes, |r| out.push((r.offset, r.value.map(<[u8]>::to_vec))))
            .expect("every stored record decodes");
    }
    assert_eq!(
        out.len() as i64,
        p.high_watermark,
        "records up to the high watermark"
    );
    out
}

fn good(values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(now_ms());
    for v in values {
        b = b.record(Some(b"k"), Some(v.as_bytes()));
    }
    b.build()
}

fn partition(r: &ProduceResponse) -> &produce_response::PartitionProduceResponse {
    &r.responses[0].partition_responses[0]
}

#[tokio::test]
async fn the_issues_frames_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    create(&mut c, "p-snappy-garbage", &[]).await;
    create(&mut c, "p-reclen-lie", &[]).await;

    let r = raw_produce(&mut c, &unhex(SNAPPY_GARBAGE)).await;
    let p = partition(&r);
    assert_eq!(p.error_code, ResponseError::CorruptMessage.code());
    let msg = p.error_message.as_deref().unwrap_or_default();
    assert!(msg.contains("snappy"), "{msg}");

    let r = raw_produce(&mut c, &unhex(RECLEN_LIE)).await;
    let p = partition(&r);
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 0);

    for topic in ["p-snappy-garbage", "p-reclen-lie"] {
        let r = client::produce(&mut c, topic, 0, good(&["a", "b"]), -1).await;
        assert_eq!(
            (partition(&r).error_code, partition(&r).base_offset),
            (0, 0)
        );
        assert_eq!(
            read_all(&mut c, topic).await,
            vec![(0, Some(b"a".to_vec())), (1, Some(b"b".to_vec()))],
            "{topic}: only the good batch, from offset 0"
        );
    }
}

/// A batch around a hand-made records section (CRC recomputed).
fn with_section(attributes: i16, section: &[u8], count: i32) -> Vec<u8> {
    let mut b = good(&["x"]);
    b.truncate(61);
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    BatchHeader::seal(&mut b);
    b
}

#[tokio::test]
async fn record_lies_bombs_and_header_tricks_get_kafkas_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    create(&mut c, "lies", &[("max.message.bytes", "65536")]).await;
    let code = |r: &ProduceResponse| partition(r).error_code;
    // Value length -5: librdkafka stops there without a word.
    let minus_five = with_section(0, &[0x0c, 0, 0, 0, 1, 9, 0], 1);
    let r = client::produce(&mut c, "lies", 0, minus_five, -1).await;
    assert_eq!(code(&r), ResponseError::InvalidRecord.code());
    // 8 MiB of zeros in zstd: over 64 × 64 KiB once decompressed.
    let bomb = BatchBuilder::new(now_ms())
        .compression(Compression::Zstd)
        .record(None, Some(&vec![0u8; 8 << 20]))
        .build();
    assert!(bomb.len() < 65536);
    let r = client::produce(&mut c, "lies", 0, bomb, -1).await;
    assert_eq!(code(&r), ResponseError::MessageTooLarge.code());
    // Client-set LogAppendTime, a transactional batch without producer,
    // the cleaner's delete-horizon bit.
    let one = &good(&["v"])[61..];
    let lat = with_section(0x08, one, 1);
    let r = client::produce(&mut c, "lies", 0, lat, -1).await;
    assert_eq!(code(&r), ResponseError::InvalidTimestamp.code());
    for attrs in [0x10, 0x40] {
        let r = client::produce(&mut c, "lies", 0, with_section(attrs, one, 1), -1).await;
        assert_eq!(code(&r), ResponseError::InvalidRecord.code(), "{attrs:#x}");
    }
    let r = client::produce(&mut c, "lies", 0, good(&["ok"]), -1).await;
    assert_eq!(code(&r), 0);
    assert_eq!(
        read_all(&mut c, "lies").await,
        vec![(0, Some(b"ok".to_vec()))]
    );
}

#[tokio::test]
async fn compacted_topics_need_keys_and_timestamps_stay_in_their_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    create(&mut c, "compacted", &[("cleanup.policy", "compact,delete")]).await;
    create(
        &mut c,
        "recent",
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .await;
    create(&mut c, "plain", &[]).await;
    let now = now_ms();
    let keyless = BatchBuilder::new(now)
        .record(Some(b"k"), Some(b"1"))
        .record(None, Some(b"2"))
        .record(Some(b"k"), None)
        .record(None, None)
        .build();
    let r = client::produce(&mut c, "compacted", 0, keyless, -1).await;
    let p = partition(&r);
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    let listed: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(listed, vec![1, 3]);
    let keyed = BatchBuilder::new(now).record(Some(b"k"), None).build();
    assert_eq!(
        code_of(client::produce(&mut c, "compacted", 0, keyed, -1).await),
        0
    );

    let at = |ts: i64| OwnedRecord {
        value: Some(b"v".to_vec()),
        timestamp: ts,
        ..Default::default()
    };
    let hour = 3_600_000;
    // Two hours ahead: past the default message.timestamp.after.max.ms (1 h).
    let future = BatchBuilder::new(now)
        .push(at(now))
        .push(at(now + 2 * hour))
        .build();
    let r = client::produce(&mut c, "plain", 0, future, -1).await;
    let p = partition(&r);
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 1);
    // Ten minutes old on a topic that allows one minute.
    let old = BatchBuilder::new(now - 600_000)
        .push(at(now - 600_000))
        .build();
    let r = client::produce(&mut c, "recent", 0, old.clone(), -1).await;
    assert_eq!(code_of(r), ResponseError::InvalidTimestamp.code());
    assert_eq!(
        code_of(client::produce(&mut c, "plain", 0, old, -1).await),
        0
    );
}

fn code_of(r: ProduceResponse) -> i16 {
    partition(&r).error_code
}

#[tokio::test]
async fn a_partition_named_twice_is_appended_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    create(&mut c, "twice", &[]).await;
    let entry = |v: &str| {
        produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(Bytes::from(good(&[v]))))
    };
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(name("twice"))
                .with_partition_data(vec![entry("first")]),
            produce_request::TopicProduceData::default()
                .with_name(name("twice"))
                .with_partition_data(vec![entry("second")]),
        ]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    // As Kafka: the last entry for the partition wins and is answered once.
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].partition_responses.len(), 1);
    assert_eq!(partition(&r).error_code, 0);
    assert_eq!(
        read_all(&mut c, "twice").await,
        vec![(0, Some(b"second".to_vec()))]
    );
}
