//! Produce requests written as a list of buffers (`strom_protocol::parts`):
//! the small encoded parts (header, topic and partition fields, length
//! prefixes) between the record batches, which go to the socket as they
//! are (one vectored write) instead of being copied into one request
//! buffer. Byte for byte what `kafka-protocol` encodes (checked by the test
//! below), for versions 3–11.

use bytes::{BufMut, Bytes};
use strom_protocol::parts::{put_bytes_len, put_count, put_str, put_uvarint, Parts};

/// The fields of a Produce request; `topics` holds each partition's batch.
#[derive(Debug)]
pub(super) struct Produce<'a> {
    pub transactional_id: Option<&'a str>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<(&'a str, Vec<(i32, Bytes)>)>,
}

/// The whole frame (size prefix included) as buffers to write in order;
/// `None` for versions this writer does not know.
pub(super) fn frame(
    version: i16,
    correlation_id: i32,
    client_id: &str,
    req: &Produce<'_>,
) -> Option<Vec<Bytes>> {
    if !(3..=11).contains(&version) {
        return None;
    }
    let flexible = version >= 9;
    let mut parts = Parts::new();
    let out = parts.out();
    out.put_i16(0); // api key: Produce
    out.put_i16(version);
    out.put_i32(correlation_id);
    put_str(out, Some(client_id), false); // header client id is never compact
    if flexible {
        put_uvarint(out, 0); // header tagged fields
    }
    put_str(out, req.transactional_id, flexible);
    out.put_i16(req.acks);
    out.put_i32(req.timeout_ms);
    put_count(out, req.topics.len(), flexible);
    for (topic, partitions) in &req.topics {
        let out = parts.out();
        put_str(out, Some(topic), flexible);
        put_count(out, partitions.len(), flexible);
        for (index, batch) in partitions {
            let out = parts.out();
            out.put_i32(*index);
            put_bytes_len(out, Some(batch.len()), flexible);
            parts.bytes(batch);
            if flexible {
                put_uvarint(parts.out(), 0); // partition tagged fields
            }
        }
        if flexible {
            put_uvarint(parts.out(), 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(parts.out(), 0); // request tagged fields
    }
    Some(parts.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::encode_request;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn same_bytes_as_kafka_protocol() {
        let batch = |n: u8| Bytes::from(vec![n; 70 + n as usize]);
        for version in 3..=11 {
            for txn in [None, Some("tx-1")] {
                let req = Produce {
                    transactional_id: txn,
                    acks: -1,
                    timeout_ms: 30_000,
                    topics: vec![
                        ("a", vec![(0, batch(1)), (3, batch(2))]),
                        ("bb", vec![(1, batch(3))]),
                    ],
                };
                let ours: Vec<u8> = frame(version, 77, "client-x", &req)
                    .expect("known version")
                    .concat();
                let theirs = ProduceRequest::default()
                    .with_transactional_id(
                        txn.map(|t| TransactionalId(StrBytes::from_string(t.into()))),
                    )
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(
                        req.topics
                            .iter()
                            .map(|(t, ps)| {
                                produce_request::TopicProduceData::default()
                                    .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                    .with_partition_data(
                                        ps.iter()
                                            .map(|(i, b)| {
                                                produce_request::PartitionProduceData::default()
                                                    .with_index(*i)
                                                    .with_records(Some(b.clone()))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                let theirs = encode_request(ApiKey::Produce, version, 77, "client-x", &theirs)
                    .expect("encodes");
                assert_eq!(ours, theirs.to_vec(), "version {version}, txn {txn:?}");
            }
        }
        assert!(frame(
            12,
            1,
            "c",
            &Produce {
                transactional_id: None,
                acks: 1,
                timeout_ms: 1,
                topics: vec![]
            }
        )
        .is_none());
    }
}
