//! Transaction state records in the internal compacted topic
//! `__transaction_state`, in Kafka's layout:
//!
//! ```text
//! key:   version=0:i16 transactional_id:str
//! value: version=0:i16 producer_id:i64 producer_epoch:i16 timeout_ms:i32 state:i8
//!        partitions:[topic:str [partition:i32]] last_update_ms:i64 start_ms:i64
//! ```
//!
//! Strings are an i16 length and UTF-8; arrays an i32 count. A null value
//! deletes the transactional id (expiry). The partition of an id is
//! `abs(id.hashCode) % transaction.state.log.num.partitions`, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut};

use crate::group::store::{get_str, put_str};

/// Name of the internal topic.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Kafka's transaction states, with their codes in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction open.
    Empty = 0,
    /// Partitions were added; records may be in flight.
    Ongoing = 1,
    /// Commit decided; markers being written.
    PrepareCommit = 2,
    /// Abort decided; markers being written.
    PrepareAbort = 3,
    /// Last transaction committed.
    CompleteCommit = 4,
    /// Last transaction aborted.
    CompleteAbort = 5,
    /// Expired.
    Dead = 6,
    /// Being fenced by a new producer.
    PrepareEpochFence = 7,
}

impl TxnState {
    /// Kafka's name, as DescribeTransactions and ListTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Every state, for validating ListTransactions filters.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    fn from_code(c: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| *s as i8 == c)
    }
}

/// What the log keeps about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Transaction timeout.
    pub timeout_ms: i32,
    /// State.
    pub state: TxnState,
    /// Partitions in the transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Last change (ms).
    pub last_update_ms: i64,
    /// When the open transaction started (ms), or -1.
    pub start_ms: i64,
}

/// The record key for a transactional id.
pub fn encode_key(id: &str) -> Vec<u8> {
    let mut k = Vec::new();
    k.put_i16(0);
    put_str(&mut k, id);
    k
}

/// The record value.
pub fn encode_value(r: &TxnRecord) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_i16(0);
    v.put_i64(r.producer_id);
    v.put_i16(r.epoch);
    v.put_i32(r.timeout_ms);
    v.put_i8(r.state as i8);
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &r.partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    v.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        put_str(&mut v, t);
        v.put_i32(ps.len() as i32);
        for p in ps {
            v.put_i32(p);
        }
    }
    v.put_i64(r.last_update_ms);
    v.put_i64(r.start_ms);
    v
}

/// Decodes a record: the id and its state (`None` for a tombstone), or
/// `None` overall when the bytes are not a record this version understands.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<TxnRecord>)> {
    let mut k = key;
    if k.remaining() < 2 || k.get_i16() != 0 {
        return None;
    }
    let id = get_str(&mut k)?;
    let Some(mut v) = value else {
        return Some((id, None));
    };
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 || v.get_i16() != 0 {
        return None;
    }
    let producer_id = v.get_i64();
    let epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_code(v.get_i8())?;
    let topics = v.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let t = get_str(&mut v)?;
        if v.remaining() < 4 {
            return None;
        }
        let n = v.get_i32();
        for _ in 0..n.max(0) {
            if v.remaining() < 4 {
                return None;
            }
            partitions.insert((t.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some((
        id,
        Some(TxnRecord {
            producer_id,
            epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = TxnRecord {
            producer_id: 42,
            epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 7,
            start_ms: 5,
        };
        let k = encode_key("tx");
        let v = encode_value(&r);
        assert_eq!(decode(&k, Some(&v)), Some(("tx".to_string(), Some(r))));
        assert_eq!(decode(&k, None), Some(("tx".to_string(), None)));
        assert_eq!(decode(&k, Some(&v[..v.len() - 1])), None);
        assert_eq!(decode(&[0, 1], None), None);
    }
}
