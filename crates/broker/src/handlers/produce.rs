//! Produce: validate each partition's batches as raw bytes and append them.
//!
//! Validation reads only batch headers and checks CRC32C; records are never
//! decoded (DESIGN.md decision 2).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_record::{BatchError, BatchHeader, Batches};
use strom_storage::{FlushPolicy, StorageError};

use super::s;
use crate::broker::Broker;
use crate::partition::{AppendError, Appended};
use crate::topics::{Partition, Topic};

/// Why a partition's records were refused.
fn validate(records: &[u8], max_message_bytes: usize) -> Result<(), (ResponseError, String)> {
    if records.is_empty() {
        return Err((
            ResponseError::CorruptMessage,
            "no record batch in the request".into(),
        ));
    }
    for item in Batches::verified(records) {
        let (h, _, bytes) = item.map_err(|e| match e {
            BatchError::BadMagic(m) => (
                ResponseError::UnsupportedForMessageFormat,
                format!("record batch magic {m} is not supported; use v2 (Kafka 0.11+)"),
            ),
            other => (ResponseError::CorruptMessage, other.to_string()),
        })?;
        if bytes.len() > max_message_bytes {
            return Err((
                ResponseError::MessageTooLarge,
                format!(
                    "record batch of {} bytes exceeds max.message.bytes={max_message_bytes}",
                    bytes.len()
                ),
            ));
        }
        validate_header(&h)?;
    }
    Ok(())
}

fn validate_header(h: &BatchHeader) -> Result<(), (ResponseError, String)> {
    if h.records_count == 0 {
        return Err((
            ResponseError::InvalidRecord,
            "record batch holds no records".into(),
        ));
    }
    if h.last_offset_delta != h.records_count - 1 {
        return Err((
            ResponseError::InvalidRecord,
            format!(
                "last offset delta {} does not match {} records",
                h.last_offset_delta, h.records_count
            ),
        ));
    }
    if h.compression().is_none() {
        return Err((
            ResponseError::InvalidRecord,
            format!(
                "unknown compression codec in attributes {:#x}",
                h.attributes
            ),
        ));
    }
    if h.is_control() {
        return Err((
            ResponseError::InvalidRecord,
            "clients may not produce control batches".into(),
        ));
    }
    Ok(())
}

/// A transactional batch may only go to a partition its open transaction
/// holds (the check of KIP-890, cheap here: the coordinator is local).
fn verify_transaction(
    broker: &Broker,
    p: &Partition,
    records: &[u8],
) -> Result<(), (ResponseError, String)> {
    match BatchHeader::parse(records) {
        Ok(h) if h.is_transactional() && h.producer_id >= 0 => broker
            .txns
            .verify_produce(h.producer_id, h.producer_epoch, &p.topic, p.index)
            .map_err(|e| {
                let msg = format!(
                    "producer {} epoch {} has no open transaction holding {}-{}",
                    h.producer_id, h.producer_epoch, p.topic, p.index
                );
                (e, msg)
            }),
        _ => Ok(()),
    }
}

/// The topic's `max.message.bytes`, read under the config lock without copying the map.
fn max_message_bytes(broker: &Broker, topic: &Topic) -> usize {
    let Some(d) = crate::config::topic_def("max.message.bytes") else {
        return 1_048_588;
    };
    let overrides = topic.configs.read();
    crate::config::topic_value(broker.topics.broker(), &overrides, d)
        .0
        .parse()
        .unwrap_or(1_048_588)
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

/// The Kafka error for a failed append.
fn append_error(p: &Partition, e: AppendError) -> (ResponseError, String) {
    match e {
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
    }
}

/// Handles a Produce request; the caller drops the response when acks=0.
pub async fn handle(broker: &Broker, version: i16, req: ProduceRequest) -> ProduceResponse {
    let acks_ok = matches!(req.acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut appended = false;
    for td in req.topic_data {
        let topic = broker.topics.get(&td.name.0);
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1);
            let part = topic
                .as_ref()
                .and_then(|t| t.partition(pd.index).map(|p| (t, p)));
            let part_ref = part.clone();
            let outcome: Result<_, (ResponseError, String)> = match (acks_ok, part) {
                (false, _) => Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {}", req.acks),
                )),
                (true, None) => Err((
                    ResponseError::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.".into(),
                )),
                (true, Some((_, p)))
                    if p.topic == crate::group::store::OFFSETS_TOPIC
                        || p.topic == crate::txn::log::TXN_TOPIC =>
                {
                    Err((
                        ResponseError::InvalidTopicException,
                        format!("Cannot append to internal topic {}", p.topic),
                    ))
                }
                (true, Some((t, p))) => {
                    let records = pd.records.unwrap_or_default();
                    match validate(&records, max_message_bytes(broker, t))
                        .and_then(|()| verify_transaction(broker, &p, &records))
                    {
                        Err(e) => Err(e),
                        Ok(()) => append(p.clone(), records)
                            .await
                            .map_err(|e| append_error(&p, e)),
                    }
                }
            };
            match outcome {
                Ok(Appended::Written(info)) => {
                    appended = true;
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
                Err((e, msg)) => {
                    r = r.with_error_code(e.code());
                    if version >= 8 {
                        r = r.with_error_message(Some(s(msg)));
                    }
                }
            }
            parts.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_partition_responses(parts),
        );
    }
    if appended {
        broker.topics.notify_append();
    }
    ProduceResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_record::BatchBuilder;

    #[test]
    fn validation_maps_to_kafka_errors() {
        let good = BatchBuilder::new(0).record(None, Some(b"v")).build();
        assert!(validate(&good, 1 << 20).is_ok());
        assert_eq!(
            validate(&good, 10).map_err(|e| e.0),
            Err(ResponseError::MessageTooLarge)
        );
        let mut bad = good.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert_eq!(
            validate(&bad, 1 << 20).map_err(|e| e.0),
            Err(ResponseError::CorruptMessage)
        );
        let mut old = good.clone();
        old[16] = 1;
        assert_eq!(
            validate(&old, 1 << 20).map_err(|e| e.0),
            Err(ResponseError::UnsupportedForMessageFormat)
        );
        assert_eq!(
            validate(&[], 1 << 20).map_err(|e| e.0),
            Err(ResponseError::CorruptMessage)
        );
    }
}
