//! Produce: validate each partition's batches and append them as they came.
//!
//! Each batch's header and CRC32C are checked, then every record is walked
//! once (`strom_record::Validator`, as Kafka's log validator does): in
//! place when uncompressed, in a per-thread buffer when compressed. The
//! walk never copies a record and the stored bytes are the producer's; it
//! keeps out of the log every batch a consumer could not read past.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_record::{
    BatchError, BatchHeader, Batches, Compression, DecompressError, RecordProblem, ValidationError,
    ValidationPolicy, Validator,
};
use strom_storage::{FlushPolicy, StorageError};

use super::s;
use crate::broker::Broker;
use crate::metadata::LeaderEpoch;
use crate::partition::{AppendError, Appended};
use crate::replication::{self, Replicated};
use crate::topics::{Partition, Topic};

thread_local! {
    /// Each worker thread's validator: its decompression buffer and decoder
    /// states are reused, so validation allocates nothing per request once
    /// warm.
    static VALIDATOR: RefCell<Validator> = RefCell::new(Validator::new());
}

/// Why a partition's records were refused: the Kafka error, a message and,
/// for record-level problems, the records concerned (Produce v8+).
#[derive(Debug)]
struct Refusal {
    error: ResponseError,
    message: String,
    records: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    fn new(error: ResponseError, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            message: message.into(),
            records: Vec::new(),
        }
    }
}

fn record_error(index: u32, message: String) -> BatchIndexAndErrorMessage {
    BatchIndexAndErrorMessage::default()
        .with_batch_index(index as i32)
        .with_batch_index_error_message(Some(s(message)))
}

/// The Kafka error for a batch the validator refused, as Kafka answers:
/// INVALID_RECORD for records it cannot accept, INVALID_TIMESTAMP for
/// timestamps, CORRUPT_MESSAGE for a compressed payload that does not
/// decompress, MESSAGE_TOO_LARGE for one that decompresses past the bound
/// (the Java producer then splits the batch).
fn refusal(e: ValidationError, problems: &[RecordProblem], tp: &str) -> Refusal {
    let message = format!("{e} (in {tp})");
    let error = match &e {
        ValidationError::ClientLogAppendTime => ResponseError::InvalidTimestamp,
        ValidationError::Decompress(DecompressError::TooLarge { .. }) => {
            ResponseError::MessageTooLarge
        }
        ValidationError::Decompress(_) => ResponseError::CorruptMessage,
        ValidationError::Refused {
            timestamps: true, ..
        } => ResponseError::InvalidTimestamp,
        _ => ResponseError::InvalidRecord,
    };
    let records = match &e {
        ValidationError::Record { index, fault } => vec![record_error(*index, fault.to_string())],
        ValidationError::Refused { .. } => problems
            .iter()
            .map(|p| record_error(p.index, p.kind.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    Refusal {
        error,
        message,
        records,
    }
}

/// What the topic allows, read once per partition under one lock.
fn policy(broker: &Broker, topic: &Topic) -> ValidationPolicy {
    let image = broker.topics.image();
    let none = std::collections::BTreeMap::new();
    let overrides = image.topic(&topic.name).map_or(&none, |t| &t.configs);
    let get = |name: &str| {
        crate::config::topic_def(name)
            .map(|d| crate::config::topic_value(broker.topics.broker(), overrides, d).0)
            .unwrap_or_default()
    };
    let num = |name: &str, default: i64| get(name).trim().parse::<i64>().unwrap_or(default);
    ValidationPolicy {
        now_ms: broker.clock().wall_ms(),
        timestamp_before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
        timestamp_after_max_ms: num("message.timestamp.after.max.ms", 3_600_000),
        create_time: get("message.timestamp.type") != "LogAppendTime",
        compacted: get("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "compact"),
        max_message_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
    }
}

/// The topic's `min.insync.replicas`.
fn min_insync(broker: &Broker, topic: &Topic) -> i64 {
    crate::config::topic_def("min.insync.replicas")
        .map(|d| {
            let overrides = broker.topics.configs_of(&topic.name);
            crate::config::topic_value(broker.topics.broker(), &overrides, d).0
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Checks a partition's records: every batch's header, CRC, size and records.
fn validate(
    records: &[u8],
    version: i16,
    policy: &ValidationPolicy,
    tp: &str,
) -> Result<(), Refusal> {
    if records.is_empty() {
        return Err(Refusal::new(
            ResponseError::CorruptMessage,
            "no record batch in the request",
        ));
    }
    let max_message_bytes = policy.max_message_bytes;
    for item in Batches::verified(records) {
        let (h, _, bytes) = item.map_err(|e| match e {
            BatchError::BadMagic(m) => Refusal::new(
                ResponseError::UnsupportedForMessageFormat,
                format!("record batch magic {m} is not supported; use v2 (Kafka 0.11+)"),
            ),
            other => Refusal::new(ResponseError::CorruptMessage, other.to_string()),
        })?;
        if bytes.len() > max_message_bytes {
            return Err(Refusal::new(
                ResponseError::MessageTooLarge,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes={max_message_bytes}",
                    bytes.len()
                ),
            ));
        }
        if version < 7 && h.compression() == Some(Compression::Zstd) {
            return Err(Refusal::new(
                ResponseError::UnsupportedCompressionType,
                format!("Produce v{version} may not carry zstd batches (v7+ may)"),
            ));
        }
        VALIDATOR.with(|v| {
            let mut v = v.borrow_mut();
            v.validate(bytes, &h, policy)
                .map_err(|e| refusal(e, v.record_problems(), tp))
        })?;
    }
    Ok(())
}

/// Which entries of the request (numbered across topics) another entry
/// for the same topic-partition comes after. Kafka appends only the last
/// entry for a partition and answers for it once; the earlier ones are
/// neither appended nor answered. Also says whether a topic name repeats.
fn superseded(req: &ProduceRequest) -> (Vec<bool>, bool) {
    let n: usize = req.topic_data.iter().map(|t| t.partition_data.len()).sum();
    if n <= 1 {
        return (Vec::new(), false);
    }
    let mut seen = HashSet::with_capacity(n);
    let mut flags = vec![false; n];
    let mut i = n;
    for td in req.topic_data.iter().rev() {
        for pd in td.partition_data.iter().rev() {
            i -= 1;
            flags[i] = !seen.insert((td.name.0.as_str(), pd.index));
        }
    }
    let mut names = HashSet::with_capacity(req.topic_data.len());
    let repeats = !req
        .topic_data
        .iter()
        .all(|t| names.insert(t.name.0.as_str()));
    (flags, repeats)
}

/// A transactional batch may only go to a partition its open transaction
/// holds (the check of KIP-890, cheap here: the coordinator is local).
fn verify_transaction(broker: &Broker, p: &Partition, records: &[u8]) -> Result<(), Refusal> {
    match BatchHeader::parse(records) {
        Ok(h) if h.is_transactional() && h.producer_id >= 0 => broker
            .txns
            .verify_produce(h.producer_id, h.producer_epoch, &p.topic, p.index)
            .map_err(|e| {
                let msg = format!(
                    "producer {} epoch {} has no open transaction holding {}-{}",
                    h.producer_id, h.producer_epoch, p.topic, p.index
                );
                Refusal::new(e, msg)
            }),
        _ => Ok(()),
    }
}

async fn append(p: Arc<Partition>, records: Bytes) -> Result<Appended, AppendError> {
    // The request's bytes are written as they are (the log patches copies
    // of the batch headers): no copy of the records here.
    if p.log.config().flush == FlushPolicy::EveryAppend {
        // The fsync blocks: keep it off the async workers.
        tokio::task::spawn_blocking(move || p.append(&records))
            .await
            .unwrap_or_else(|e| {
                Err(AppendError::Storage(StorageError::Io {
                    path: Default::default(),
                    source: std::io::Error::other(e),
                }))
            })
    } else {
        p.append(&records)
    }
}

/// Waits for the in-sync replicas to have what an acks=all produce wrote.
async fn replicated(
    p: &Partition,
    appended: Appended,
    epoch: LeaderEpoch,
    deadline: Instant,
    min_isr: i64,
) -> Result<Appended, Refusal> {
    let end = match appended {
        Appended::Written(info) => info.last_offset + 1,
        Appended::Duplicate { base_offset } => base_offset + 1,
    };
    match replication::wait_replicated(p, end, epoch, deadline).await {
        // The ISR shrank below min.insync.replicas while the records were
        // being replicated: written, but not as durable as asked.
        Replicated::Yes if (p.isr_size() as i64) < min_isr => Err(Refusal::new(
            ResponseError::NotEnoughReplicasAfterAppend,
            format!(
                "The size of the current ISR : {} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {}-{}",
                p.isr_size(),
                p.topic,
                p.index
            ),
        )),
        Replicated::Yes => Ok(appended),
        Replicated::TimedOut => Err(Refusal::new(
            ResponseError::RequestTimedOut,
            format!(
                "the in-sync replicas of {}-{} did not confirm the records in time",
                p.topic, p.index
            ),
        )),
        Replicated::NotLeader => Err(Refusal::new(
            ResponseError::NotLeaderOrFollower,
            format!(
                "this broker stopped leading {}-{} before its replicas confirmed the records",
                p.topic, p.index
            ),
        )),
    }
}

/// The Kafka error for a failed append.
fn append_error(p: &Partition, e: AppendError) -> Refusal {
    let (error, message) = match e {
        AppendError::Sequence(e) => (e.code(), e.to_string()),
        AppendError::MultipleBatches => (ResponseError::InvalidRecord, e.to_string()),
        AppendError::Storage(StorageError::InvalidBatch(b)) => {
            (ResponseError::CorruptMessage, b.to_string())
        }
        AppendError::Storage(e @ StorageError::BatchTooLarge { .. }) => {
            (ResponseError::RecordListTooLarge, e.to_string())
        }
        AppendError::Storage(other) => {
            tracing::error!(topic = %p.topic, partition = p.index, error = %other, "append failed");
            (ResponseError::KafkaStorageError, other.to_string())
        }
    };
    Refusal::new(error, message)
}

/// Handles a Produce request; the caller drops the response when acks=0.
pub async fn handle(broker: &Broker, version: i16, req: ProduceRequest) -> ProduceResponse {
    let acks_ok = matches!(req.acks, -1..=1);
    // acks=all waits for the in-sync replicas up to the request's timeout.
    let deadline = Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let (superseded, topic_repeats) = superseded(&req);
    let mut entry = 0usize;
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    for td in req.topic_data {
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            entry += 1;
            if superseded.get(entry - 1) == Some(&true) {
                continue;
            }
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1);
            let led = broker.replicas.leader_of(&td.name.0, pd.index);
            let epoch = led.as_ref().map_or(LeaderEpoch::UNKNOWN, |l| l.epoch);
            let part = led.map(|led| (led.topic, led.log));
            let part_ref = part.as_ref().ok().cloned();
            let outcome: Result<_, Refusal> = match (acks_ok, part) {
                (false, _) => Err(Refusal::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {}", req.acks),
                )),
                (true, Err(e)) => Err(Refusal::new(e.code(), e.to_string())),
                (true, Ok((_, p)))
                    if p.topic == crate::group::store::OFFSETS_TOPIC
                        || p.topic == crate::txn::log::TXN_TOPIC =>
                {
                    Err(Refusal::new(
                        ResponseError::InvalidTopicException,
                        format!("Cannot append to internal topic {}", p.topic),
                    ))
                }
                (true, Ok((t, p)))
                    if req.acks == -1 && min_insync(broker, &t) > p.isr_size() as i64 =>
                {
                    Err(Refusal::new(
                        ResponseError::NotEnoughReplicas,
                        format!("The size of the current ISR : {} is insufficient to satisfy the min.isr requirement of {} for partition {}-{}", p.isr_size(), min_insync(broker, &t), p.topic, p.index),
                    ))
                }
                (true, Ok((t, p))) => {
                    let records = pd.records.unwrap_or_default();
                    let tp = format!("{}-{}", p.topic, p.index);
                    match validate(&records, version, &policy(broker, &t), &tp)
                        .and_then(|()| verify_transaction(broker, &p, &records))
                    {
                        Err(e) => Err(e),
                        Ok(()) => match append(p.clone(), records).await {
                            Err(e) => Err(append_error(&p, e)),
                            Ok(appended) if req.acks == -1 => {
                                replicated(&p, appended, epoch, deadline, min_insync(broker, &t))
                                    .await
                            }
                            Ok(appended) => Ok(appended),
                        },
                    }
                }
            };
            match outcome {
                Ok(Appended::Written(info)) => {
                    r = r
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time);
                    if version >= 5 {
                        r = r.with_log_start_offset(info.log_start_offset);
                    }
                }
                Ok(Appended::Duplicate { base_offset }) => {
                    r = r.with_base_offset(base_offset);
                    if let (true, Some((_, p))) = (version >= 5, part_ref) {
                        r = r.with_log_start_offset(p.log.log_start_offset());
                    }
                }
                Err(refused) => {
                    r = r.with_error_code(refused.error.code());
                    if version >= 8 {
                        r = r
                            .with_error_message(Some(s(refused.message)))
                            .with_record_errors(refused.records);
                    }
                }
            }
            parts.push(r);
        }
        // A topic named twice is answered once, as Kafka does.
        let earlier = topic_repeats
            .then(|| responses.iter_mut().find(|t| t.name == td.name))
            .flatten();
        match earlier {
            Some(t) => t.partition_responses.extend(parts),
            None if parts.is_empty() && topic_repeats => {}
            None => responses.push(
                TopicProduceResponse::default()
                    .with_name(td.name)
                    .with_partition_responses(parts),
            ),
        }
    }
    ProduceResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;
    use strom_record::{BatchBuilder, BatchProblem, RecordFault, RecordProblemKind};

    fn policy() -> ValidationPolicy {
        ValidationPolicy {
            now_ms: crate::clock::Clock::wall_ms(&crate::clock::SystemClock),
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            create_time: true,
            compacted: false,
            max_message_bytes: 1 << 20,
        }
    }

    fn code(records: &[u8], version: i16, p: &ValidationPolicy) -> Option<ResponseError> {
        validate(records, version, p, "t-0").err().map(|r| r.error)
    }

    #[test]
    fn batch_checks_map_to_kafka_errors() {
        let good = BatchBuilder::new(0).record(None, Some(b"v")).build();
        let p = policy();
        assert_eq!(code(&good, 9, &p), None);
        let small = ValidationPolicy {
            max_message_bytes: 10,
            ..p
        };
        assert_eq!(code(&good, 9, &small), Some(ResponseError::MessageTooLarge));
        let mut bad = good.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert_eq!(code(&bad, 9, &p), Some(ResponseError::CorruptMessage));
        let mut old = good.clone();
        old[16] = 1;
        assert_eq!(
            code(&old, 9, &p),
            Some(ResponseError::UnsupportedForMessageFormat)
        );
        assert_eq!(code(&[], 9, &p), Some(ResponseError::CorruptMessage));
        let zstd = BatchBuilder::new(0)
            .compression(Compression::Zstd)
            .record(None, Some(b"v"))
            .build();
        assert_eq!(
            code(&zstd, 6, &p),
            Some(ResponseError::UnsupportedCompressionType)
        );
        assert_eq!(code(&zstd, 7, &p), None);
        let compacted = ValidationPolicy {
            compacted: true,
            ..p
        };
        let r = validate(&good, 9, &compacted, "t-0").expect_err("no key");
        assert_eq!(r.error, ResponseError::InvalidRecord);
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.records[0].batch_index, 0);
        assert!(r.message.contains("t-0"), "{}", r.message);
    }

    #[test]
    fn validation_errors_map_to_kafka_codes() {
        let code = |e: ValidationError| refusal(e, &[], "t-0").error;
        assert_eq!(
            code(ValidationError::Batch(BatchProblem::Control)),
            ResponseError::InvalidRecord
        );
        assert_eq!(
            code(ValidationError::ClientLogAppendTime),
            ResponseError::InvalidTimestamp
        );
        assert_eq!(
            code(ValidationError::Decompress(DecompressError::TooLarge {
                limit: 1
            })),
            ResponseError::MessageTooLarge
        );
        assert_eq!(
            code(ValidationError::Decompress(DecompressError::Corrupt {
                codec: "zstd",
                reason: "x".into()
            })),
            ResponseError::CorruptMessage
        );
        let fault = ValidationError::Record {
            index: 3,
            fault: RecordFault::Attributes(1),
        };
        let r = refusal(fault, &[], "t-0");
        assert_eq!(r.error, ResponseError::InvalidRecord);
        assert_eq!(r.records[0].batch_index, 3);
        let ts = RecordProblemKind::Timestamp {
            timestamp: 5,
            lower: 6,
            upper: 7,
        };
        let problems = [
            RecordProblem {
                index: 1,
                kind: RecordProblemKind::NoKey,
            },
            RecordProblem { index: 2, kind: ts },
        ];
        let refused = ValidationError::Refused {
            count: 2,
            first_index: 1,
            first: RecordProblemKind::NoKey,
            timestamps: true,
        };
        let r = refusal(refused, &problems, "t-0");
        assert_eq!(r.error, ResponseError::InvalidTimestamp);
        let listed: Vec<i32> = r.records.iter().map(|e| e.batch_index).collect();
        assert_eq!(listed, vec![1, 2]);
    }

    #[test]
    fn only_the_last_entry_for_a_partition_counts() {
        let topic = |name: &str, parts: &[i32]| {
            TopicProduceData::default()
                .with_name(TopicName(s(name)))
                .with_partition_data(
                    parts
                        .iter()
                        .map(|i| PartitionProduceData::default().with_index(*i))
                        .collect(),
                )
        };
        let req = ProduceRequest::default().with_topic_data(vec![
            topic("a", &[0, 1, 0]),
            topic("b", &[0]),
            topic("a", &[1]),
        ]);
        assert_eq!(
            superseded(&req),
            (vec![true, true, false, false, false], true)
        );
        let plain =
            ProduceRequest::default().with_topic_data(vec![topic("a", &[0, 1]), topic("b", &[0])]);
        assert_eq!(superseded(&plain), (vec![false, false, false], false));
    }
}
