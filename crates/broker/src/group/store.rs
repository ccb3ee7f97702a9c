//! Group state in the internal compacted topic `__consumer_offsets`.
//!
//! Records use Kafka's key layouts so the data reads the same way:
//!
//! ```text
//! offset commit  key: version=1:i16 group:str topic:str partition:i32
//!                value: version=3:i16 offset:i64 leader_epoch:i32 metadata:str commit_timestamp:i64
//! group metadata key: version=2:i16 group:str
//!                value: Strom's own, see [`super::group_value`]
//! ```
//!
//! Strings are an i16 length and UTF-8 bytes. A null value (tombstone)
//! deletes the key. The partition of a group is `hash(group) % partitions`,
//! Kafka's `abs(groupId.hashCode) % offsets.topic.num.partitions`, so a group
//! stays on one partition and the topic can be spread over brokers later.

use bytes::{Buf, BufMut};

pub use super::group_value::{GroupValue, StoredMember};

/// Name of the internal topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`, for Kafka-compatible group placement.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition that holds `group`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    // Kafka: Utils.abs(hashCode) % n, where abs(MIN_VALUE) is 0.
    let h = java_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A decoded record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A committed offset (`None` value: deleted).
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The commit, or `None` for a tombstone.
        value: Option<Committed>,
    },
    /// Group metadata (`None` value: the group was deleted).
    Group {
        /// Group id.
        group: String,
        /// Protocol, generation, members; `None` for a tombstone.
        value: Option<GroupValue>,
    },
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: String,
    /// When the commit was made (ms).
    pub commit_timestamp: i64,
}

/// Writes a Kafka internal-record string: i16 length, UTF-8 bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(b.len() as i16);
    out.extend_from_slice(b);
}

/// Reads a string written by [`put_str`] (a negative length reads as "").
pub(crate) fn get_str(b: &mut &[u8]) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 {
        return Some(String::new());
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8_lossy(&b[..len]).into_owned();
    b.advance(len);
    Some(s)
}

/// Encodes an entry as (key, value) record bytes.
pub fn encode(e: &Entry) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut key = Vec::new();
    match e {
        Entry::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            key.put_i16(1);
            put_str(&mut key, group);
            put_str(&mut key, topic);
            key.put_i32(*partition);
            let value = value.as_ref().map(|c| {
                let mut v = Vec::new();
                v.put_i16(3);
                v.put_i64(c.offset);
                v.put_i32(c.leader_epoch);
                put_str(&mut v, &c.metadata);
                v.put_i64(c.commit_timestamp);
                v
            });
            (key, value)
        }
        Entry::Group { group, value } => {
            key.put_i16(2);
            put_str(&mut key, group);
            let value = value.as_ref().map(GroupValue::encode);
            (key, value)
        }
    }
}

/// Decodes a record; `None` for keys this version does not understand.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Entry> {
    let mut k = key;
    if k.remaining() < 2 {
        return None;
    }
    match k.get_i16() {
        0 | 1 => {
            let group = get_str(&mut k)?;
            let topic = get_str(&mut k)?;
            if k.remaining() < 4 {
                return None;
            }
            let partition = k.get_i32();
            let value = match value {
                None => None,
                Some(mut v) => {
                    if v.remaining() < 2 + 8 {
                        return None;
                    }
                    let version = v.get_i16();
                    let offset = v.get_i64();
                    let leader_epoch = if version >= 3 && v.remaining() >= 4 {
                        v.get_i32()
                    } else {
                        -1
                    };
                    let metadata = get_str(&mut v)?;
                    let commit_timestamp = if v.remaining() >= 8 { v.get_i64() } else { 0 };
                    Some(Committed {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                    })
                }
            };
            Some(Entry::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = get_str(&mut k)?;
            let value = match value {
                None => None,
                Some(v) => Some(GroupValue::decode(v)?),
            };
            Some(Entry::Group { group, value })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_placement() {
        let e = Entry::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(Committed {
                offset: 42,
                leader_epoch: 0,
                metadata: "m".into(),
                commit_timestamp: 9,
            }),
        };
        let (k, v) = encode(&e);
        assert_eq!(decode(&k, v.as_deref()), Some(e));
        let g = Entry::Group {
            group: "g".into(),
            value: Some(GroupValue {
                protocol_type: "consumer".into(),
                generation: 5,
                protocol: Some("range".into()),
                ..Default::default()
            }),
        };
        let (k, v) = encode(&g);
        assert_eq!(decode(&k, v.as_deref()), Some(g));
        let t = Entry::Group {
            group: "g".into(),
            value: None,
        };
        let (k, v) = encode(&t);
        assert_eq!(decode(&k, v.as_deref()), Some(t));
        // Values printed by the JDK's String.hashCode and Math.abs(h) % 50.
        assert_eq!(
            (java_hash("my-group"), partition_for("my-group", 50)),
            (-1906497762, 12)
        );
        assert_eq!((java_hash("g1"), partition_for("g1", 50)), (3242, 42));
        assert_eq!(
            (java_hash("über-gruppe"), partition_for("über-gruppe", 50)),
            (-650381771, 21)
        );
        assert!(decode(&[0, 9, 1], None).is_none());
        assert!(decode(&[0, 1, 0, 5, b'a'], None).is_none());
    }
}
