//! Fetch responses written as a list of buffers: the record data read from
//! the log goes to the socket as it is instead of being copied into the
//! response (see [`crate::parts`]). Byte for byte what `kafka-protocol`
//! encodes (checked by the tests below), for versions 4–16.

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, LeaderIdAndEpoch, PartitionData, SnapshotId,
};
use kafka_protocol::messages::FetchResponse;

use crate::parts::{put_bytes_len, put_count, put_str, put_uvarint, Parts};

/// True when this writer encodes `p` exactly as `kafka-protocol` would:
/// every tagged field at its default (a single broker sets none of them).
fn plain_partition(p: &PartitionData, version: i16) -> bool {
    p.unknown_tagged_fields.is_empty()
        && p.diverging_epoch == EpochEndOffset::default()
        && p.current_leader == LeaderIdAndEpoch::default()
        && p.snapshot_id == SnapshotId::default()
        && (version >= 11 || p.preferred_read_replica == -1)
        && p.aborted_transactions
            .iter()
            .flatten()
            .all(|a| a.unknown_tagged_fields.is_empty())
}

/// The whole response frame (size prefix and response header included) as
/// buffers to write in order; `None` when this writer does not cover the
/// version or a field (then encode with `kafka-protocol`).
pub fn fetch_response_parts(
    correlation_id: i32,
    version: i16,
    resp: &FetchResponse,
) -> Option<Vec<Bytes>> {
    if !(4..=16).contains(&version)
        || !resp.unknown_tagged_fields.is_empty()
        || !resp.node_endpoints.is_empty()
        || (version < 7 && resp.session_id != 0)
        || resp.responses.iter().any(|t| {
            !t.unknown_tagged_fields.is_empty()
                || t.partitions.iter().any(|p| !plain_partition(p, version))
        })
    {
        return None;
    }
    let flexible = version >= 12;
    let mut parts = Parts::new();
    let out = parts.out();
    out.put_i32(correlation_id);
    if flexible {
        put_uvarint(out, 0); // response header tagged fields
    }
    out.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        out.put_i16(resp.error_code);
        out.put_i32(resp.session_id);
    }
    put_count(out, resp.responses.len(), flexible);
    for t in &resp.responses {
        let out = parts.out();
        if version <= 12 {
            put_str(out, Some(&t.topic.0), flexible);
        } else {
            out.put_slice(t.topic_id.as_bytes());
        }
        put_count(out, t.partitions.len(), flexible);
        for p in &t.partitions {
            let out = parts.out();
            out.put_i32(p.partition_index);
            out.put_i16(p.error_code);
            out.put_i64(p.high_watermark);
            out.put_i64(p.last_stable_offset);
            if version >= 5 {
                out.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None if flexible => put_uvarint(out, 0),
                None => out.put_i32(-1),
                Some(list) => {
                    put_count(out, list.len(), flexible);
                    for a in list {
                        out.put_i64(a.producer_id.0);
                        out.put_i64(a.first_offset);
                        if flexible {
                            put_uvarint(out, 0);
                        }
                    }
                }
            }
            if version >= 11 {
                out.put_i32(p.preferred_read_replica.0);
            }
            put_bytes_len(out, p.records.as_ref().map(Bytes::len), flexible);
            if let Some(records) = &p.records {
                parts.bytes(records);
            }
            if flexible {
                put_uvarint(parts.out(), 0); // partition tagged fields
            }
        }
        if flexible {
            put_uvarint(parts.out(), 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(parts.out(), 0); // response tagged fields
    }
    Some(parts.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_response;
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
    use kafka_protocol::messages::{ApiKey, BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn partition(i: i32, records: Option<Bytes>, aborted: Option<usize>) -> PartitionData {
        PartitionData::default()
            .with_partition_index(i)
            .with_error_code(if i == 2 { 1 } else { 0 })
            .with_high_watermark(1_000 + i64::from(i))
            .with_last_stable_offset(900)
            .with_log_start_offset(10)
            .with_aborted_transactions(aborted.map(|n| {
                (0..n)
                    .map(|k| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(k as i64 + 5))
                            .with_first_offset(k as i64 * 3)
                    })
                    .collect()
            }))
            .with_records(records)
    }

    fn response(version: i16) -> FetchResponse {
        // Small and large record data (large ones become parts of their own).
        let small = Bytes::from(vec![3u8; 300]);
        let large = Bytes::from(vec![9u8; 100_000]);
        let topic = |name: &str, id: u8, partitions| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.into())))
                .with_topic_id(uuid::Uuid::from_bytes([id; 16]))
                .with_partitions(partitions)
        };
        FetchResponse::default()
            .with_throttle_time_ms(7)
            .with_session_id(if version >= 7 { 42 } else { 0 })
            .with_responses(vec![
                topic(
                    "alpha",
                    1,
                    vec![
                        partition(0, Some(large.clone()), None),
                        partition(1, Some(small.clone()), Some(0)),
                        partition(2, None, Some(2)),
                    ],
                ),
                topic("b", 2, vec![partition(5, Some(Bytes::new()), None)]),
                topic("empty", 3, vec![]),
            ])
    }

    #[test]
    fn same_bytes_as_kafka_protocol() {
        for version in 4..=16 {
            let mut resp = response(version);
            if version >= 11 {
                resp.responses[0].partitions[1].preferred_read_replica = BrokerId(3);
            }
            let parts = fetch_response_parts(99, version, &resp).expect("covered version");
            assert!(
                parts.len() >= 3,
                "the large records are a part of their own"
            );
            let mut theirs = BytesMut::new();
            encode_response(&mut theirs, ApiKey::Fetch, version, 99, &resp).expect("encodes");
            assert_eq!(parts.concat(), theirs.to_vec(), "version {version}");
        }
    }

    #[test]
    fn fields_this_writer_does_not_cover_fall_back() {
        let mut resp = response(16);
        assert!(fetch_response_parts(1, 17, &resp).is_none());
        assert!(fetch_response_parts(1, 3, &resp).is_none());
        resp.responses[0].partitions[0].current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(2))
            .with_leader_epoch(4);
        assert!(fetch_response_parts(1, 16, &resp).is_none());
        let mut resp = response(10);
        resp.responses[0].partitions[0].preferred_read_replica = BrokerId(1);
        assert!(fetch_response_parts(1, 10, &resp).is_none());
    }
}
