//! The embedded consumer protocol of classic groups: subscriptions and
//! assignments as opaque bytes in JoinGroup/SyncGroup (a version i16, then
//! the struct), and the client-side assignors the group leader runs.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as SubscribedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// A member's subscription as the group leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions the member owns now (cooperative protocol; version 1+).
    pub owned: Vec<(String, i32)>,
    /// The generation those partitions were assigned in (-1: unknown; version 2+).
    pub generation: i32,
}

/// Encodes a subscription at version 2: topics, the partitions owned now
/// and the generation they came from (what cooperative assignors need).
pub fn encode_subscription(topics: &[String], owned: &[(String, i32)], generation: i32) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            by_topic(owned)
                .into_iter()
                .map(|(t, ps)| {
                    SubscribedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_generation_id(generation);
    let mut out = BytesMut::new();
    out.put_i16(2);
    // Encoding our own small struct into a growable buffer does not fail.
    let _ = sub.encode(&mut out, 2);
    out.freeze()
}

fn by_topic(partitions: &[(String, i32)]) -> BTreeMap<&str, Vec<i32>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
}

/// Reads the consumer protocol's fixed-width fields with bounds checks.
/// Hand-written on purpose: these bytes come from other group members, and
/// a generic decoder would size vectors from their counts before checking them.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    /// An array count no larger than the bytes left could hold at `min` bytes per item.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n <= (self.buf.len() - self.pos) / min.max(1)).then_some(n)
    }
}

/// Decodes another member's subscription (any version; later fields a
/// version lacks keep their defaults, unreadable bytes give an empty one).
pub fn decode_subscription(bytes: &Bytes) -> Subscription {
    let mut r = Reader { buf: bytes, pos: 0 };
    let parse = |r: &mut Reader<'_>| -> Option<Subscription> {
        let version = r.i16()?;
        let n = r.count(2)?;
        let mut sub = Subscription {
            topics: (0..n).map(|_| r.string()).collect::<Option<_>>()?,
            owned: Vec::new(),
            generation: -1,
        };
        if version < 1 {
            return Some(sub);
        }
        let user_data = r.i32()?;
        if user_data > 0 {
            r.take(user_data as usize)?;
        }
        let topics = r.count(6)?;
        for _ in 0..topics {
            let t = r.string()?;
            let n = r.count(4)?;
            for _ in 0..n {
                sub.owned.push((t.clone(), r.i32()?));
            }
        }
        if version >= 2 {
            sub.generation = r.i32()?;
        }
        Some(sub)
    };
    match parse(&mut r) {
        Some(sub) => sub,
        // A version-0 reader only needs the topics: keep them if the rest is odd.
        None => {
            let mut r = Reader { buf: bytes, pos: 2 };
            let topics = r
                .count(2)
                .and_then(|n| (0..n).map(|_| r.string()).collect::<Option<Vec<_>>>())
                .unwrap_or_default();
            Subscription {
                topics,
                owned: Vec::new(),
                generation: -1,
            }
        }
    }
}

/// Encodes an assignment (version 0).
pub fn encode_assignment(partitions: &[(String, i32)]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic(partitions)
            .into_iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(0);
    let _ = a.encode(&mut out, 0);
    out.freeze()
}

/// Decodes an assignment into (topic, partition)s (empty if unreadable).
pub fn decode_assignment(bytes: &Bytes) -> Vec<(String, i32)> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let parse = |r: &mut Reader<'_>| -> Option<Vec<(String, i32)>> {
        r.i16()?; // version: the partitions come first in every version
        let topics = r.count(6)?;
        let mut out = Vec::new();
        for _ in 0..topics {
            let t = r.string()?;
            let n = r.count(4)?;
            for _ in 0..n {
                out.push((t.clone(), r.i32()?));
            }
        }
        Some(out)
    };
    parse(&mut r).unwrap_or_default()
}

/// Members (id, subscribed topics) and partition counts in, assignment out.
pub type Assignment = BTreeMap<String, Vec<(String, i32)>>;

/// Kafka's `range` assignor: per topic, consecutive ranges of partitions to
/// the subscribed members in member-id order, the first ones getting one more.
pub fn range(members: &[(String, Vec<String>)], partitions: &BTreeMap<String, i32>) -> Assignment {
    let mut out: Assignment = members
        .iter()
        .map(|(m, _)| (m.clone(), Vec::new()))
        .collect();
    for (topic, &n) in partitions {
        let mut subs: Vec<&String> = members
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        subs.sort();
        if subs.is_empty() {
            continue;
        }
        let per = n / subs.len() as i32;
        let extra = n % subs.len() as i32;
        let mut next = 0;
        for (i, m) in subs.into_iter().enumerate() {
            let count = per + i32::from((i as i32) < extra);
            if let Some(list) = out.get_mut(m) {
                list.extend((next..next + count).map(|p| (topic.clone(), p)));
            }
            next += count;
        }
    }
    out
}

/// Kafka's `roundrobin` assignor: all partitions, sorted, dealt in turn to
/// the members (in id order) subscribed to their topic.
pub fn round_robin(
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = members
        .iter()
        .map(|(m, _)| (m.clone(), Vec::new()))
        .collect();
    let mut ids: Vec<&(String, Vec<String>)> = members.iter().collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    if ids.is_empty() {
        return out;
    }
    let mut turn = 0usize;
    for (topic, &n) in partitions {
        for p in 0..n {
            for _ in 0..ids.len() {
                let (m, ts) = ids[turn % ids.len()];
                turn += 1;
                if ts.contains(topic) {
                    if let Some(list) = out.get_mut(m) {
                        list.push((topic.clone(), p));
                    }
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trips() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let owned = vec![("a".to_string(), 3), ("b".to_string(), 0)];
        let sub = decode_subscription(&encode_subscription(&topics, &owned, 7));
        assert_eq!(sub.topics, topics);
        assert_eq!(sub.owned, owned);
        assert_eq!(sub.generation, 7);
        // Version 0 (topics and user data only), as older clients send it.
        let v0 = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_subscription(&v0).topics, vec!["t".to_string()]);
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ];
        assert_eq!(decode_assignment(&encode_assignment(&parts)), parts);
        // Hostile counts cost nothing: no allocation sized by them.
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_empty());
        assert!(decode_subscription(&Bytes::from_static(&[
            0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a'
        ]))
        .topics
        .is_empty());
        let mut bytes = encode_assignment(&parts).to_vec();
        for i in 0..bytes.len() {
            let saved = bytes[i];
            bytes[i] = 0x7f;
            let _ = decode_assignment(&Bytes::from(bytes.clone()));
            bytes[i] = saved;
        }
    }

    #[test]
    fn assignors_match_kafka() {
        let members = vec![
            ("m2".to_string(), vec!["t".to_string()]),
            ("m1".to_string(), vec!["t".to_string()]),
        ];
        let parts: BTreeMap<String, i32> = [("t".to_string(), 5)].into_iter().collect();
        let r = range(&members, &parts);
        assert_eq!(
            r["m1"],
            (0..3).map(|p| ("t".to_string(), p)).collect::<Vec<_>>()
        );
        assert_eq!(
            r["m2"],
            (3..5).map(|p| ("t".to_string(), p)).collect::<Vec<_>>()
        );
        let rr = round_robin(&members, &parts);
        assert_eq!(
            rr["m1"].iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        assert_eq!(rr["m2"].iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 3]);
    }
}
