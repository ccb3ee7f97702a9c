//! Turning fetched batches into records: decompression, control batches
//! skipped, and under read_committed the batches of aborted transactions
//! dropped (Kafka's algorithm: a producer's batches are skipped from the
//! first offset of its aborted transaction until its abort marker).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use strom_record::{for_each_record_shared, Batches};

use crate::error::ClientError;

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic (shared by the records of a fetch).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Key (a slice of the fetched buffer: no copy for uncompressed batches).
    pub key: Option<Bytes>,
    /// Value (`None`: tombstone).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The records of `data` at or after `from`, and the position after them.
/// `aborted` lists (producer id, first offset) of aborted transactions in
/// the range (read_committed only).
pub fn decode(
    topic: &Arc<str>,
    partition: i32,
    data: &Bytes,
    from: i64,
    aborted: Option<&[(i64, i64)]>,
) -> Result<(Vec<ConsumerRecord>, i64), ClientError> {
    let mut out = Vec::new();
    let mut next = from;
    let mut pending: Vec<(i64, i64)> = aborted.map(<[_]>::to_vec).unwrap_or_default();
    pending.sort_by_key(|(_, first)| std::cmp::Reverse(*first));
    let mut active: HashSet<i64> = HashSet::new();
    for item in Batches::new(data) {
        // A partial batch at the end (cut by max bytes) is fetched again next time.
        let Ok((h, _, bytes)) = item else { break };
        if h.next_offset() <= from {
            continue;
        }
        while pending
            .last()
            .is_some_and(|(_, first)| *first <= h.last_offset())
        {
            if let Some((pid, _)) = pending.pop() {
                active.insert(pid);
            }
        }
        next = h.next_offset();
        if h.is_control() {
            active.remove(&h.producer_id);
            continue;
        }
        if aborted.is_some() && h.is_transactional() && active.contains(&h.producer_id) {
            continue;
        }
        let batch = data.slice_ref(bytes);
        for_each_record_shared(&batch, |buf, r| {
            if r.offset >= from {
                out.push(ConsumerRecord {
                    topic: topic.clone(),
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.map(|k| buf.slice_ref(k)),
                    value: r.value.map(|v| buf.slice_ref(v)),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                v.map(|v| buf.slice_ref(v)),
                            )
                        })
                        .collect(),
                });
            }
        })
        .map_err(|e| {
            ClientError::Protocol(format!(
                "{topic}-{partition} at offset {}: {e}",
                h.base_offset
            ))
        })?;
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_record::{BatchBuilder, BatchHeader};

    fn at(mut b: Vec<u8>, offset: i64) -> Vec<u8> {
        BatchHeader::set_base_offset(&mut b, offset);
        b
    }

    #[test]
    fn aborted_batches_and_markers_are_skipped_under_read_committed() {
        let mut data = Vec::new();
        data.extend(at(
            BatchBuilder::new(0).record(None, Some(b"plain")).build(),
            0,
        ));
        data.extend(at(
            BatchBuilder::new(0)
                .producer(7, 0, 0)
                .transactional(false)
                .record(None, Some(b"gone"))
                .build(),
            1,
        ));
        data.extend(at(
            BatchBuilder::new(0)
                .producer(7, 0, -1)
                .transactional(true)
                .record(Some(&[0, 0, 0, 0]), None)
                .build(),
            2,
        ));
        data.extend(at(
            BatchBuilder::new(0)
                .producer(8, 0, 0)
                .transactional(false)
                .record(None, Some(b"kept"))
                .build(),
            3,
        ));
        let data = Bytes::from(data);
        let t: Arc<str> = Arc::from("t");
        let (rc, next) = decode(&t, 0, &data, 0, Some(&[(7, 1)])).expect("decodes");
        assert_eq!(
            rc.iter()
                .map(|r| r.value.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
            vec![&b"plain"[..], &b"kept"[..]]
        );
        assert_eq!(next, 4);
        let (ru, _) = decode(&t, 0, &data, 0, None).expect("decodes");
        assert_eq!(
            ru.len(),
            3,
            "read_uncommitted sees aborted records, never markers"
        );
        let (from2, _) = decode(&t, 0, &data, 3, None).expect("decodes");
        assert_eq!(from2.len(), 1);
    }
}
