//! The value of a group-metadata record in `__consumer_offsets`: the
//! group's protocol, generation and, once its rebalance has completed, its
//! members with their subscriptions and assignments (as Kafka's
//! `GroupMetadataValue` holds them), so a coordinator that takes the group
//! over (a moved partition, a restart) knows its members and the group
//! goes on Stable, with no rebalance.
//!
//! ```text
//! version=101:i16 protocol_type:str generation:i32 protocol:str leader:str
//!   member_count:i32 { id:str has_instance:i8 [instance_id:str] client_id:str
//!   client_host:str rebalance_timeout_ms:i32 session_timeout_ms:i32
//!   subscription:bytes assignment:bytes }*
//! ```
//! (`bytes` is an i32 length and the bytes; version 100, written by earlier
//! versions, ends after `protocol`.)

use bytes::{Buf, BufMut};

use super::store::{get_str, put_str};

const V_NO_MEMBERS: i16 = 100;
const V_MEMBERS: i16 = 101;

/// A group's stored metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    /// "consumer", "connect", ... ("" when unknown).
    pub protocol_type: String,
    /// Generation (or KIP-848 group epoch).
    pub generation: i32,
    /// The chosen protocol (assignor).
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// The members of a completed rebalance (empty otherwise).
    pub members: Vec<StoredMember>,
}

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredMember {
    /// Member id.
    pub id: String,
    /// Static membership id (KIP-345).
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Its metadata for the chosen protocol.
    pub subscription: Vec<u8>,
    /// Its assignment.
    pub assignment: Vec<u8>,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_i32(b.len().min(i32::MAX as usize) as i32);
    out.extend_from_slice(&b[..b.len().min(i32::MAX as usize)]);
}

fn get_bytes(b: &mut &[u8]) -> Option<Vec<u8>> {
    if b.remaining() < 4 {
        return None;
    }
    let len = usize::try_from(b.get_i32()).ok()?;
    if b.remaining() < len {
        return None;
    }
    let out = b[..len].to_vec();
    b.advance(len);
    Some(out)
}

fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

impl GroupValue {
    /// The record value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.put_i16(V_MEMBERS);
        put_str(&mut v, &self.protocol_type);
        v.put_i32(self.generation);
        put_str(&mut v, self.protocol.as_deref().unwrap_or(""));
        put_str(&mut v, self.leader.as_deref().unwrap_or(""));
        v.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut v, &m.id);
            match &m.instance_id {
                Some(i) => {
                    v.put_i8(1);
                    put_str(&mut v, i);
                }
                None => v.put_i8(0),
            }
            put_str(&mut v, &m.client_id);
            put_str(&mut v, &m.client_host);
            v.put_i32(m.rebalance_timeout_ms);
            v.put_i32(m.session_timeout_ms);
            put_bytes(&mut v, &m.subscription);
            put_bytes(&mut v, &m.assignment);
        }
        v
    }

    /// Reads a record value; `None` if it is not one (or is cut short).
    pub fn decode(mut v: &[u8]) -> Option<GroupValue> {
        if v.remaining() < 2 {
            return None;
        }
        let version = v.get_i16();
        if version != V_NO_MEMBERS && version != V_MEMBERS {
            return None;
        }
        let protocol_type = get_str(&mut v)?;
        let generation = get_i32(&mut v)?;
        let protocol = Some(get_str(&mut v)?).filter(|p| !p.is_empty());
        let mut out = GroupValue {
            protocol_type,
            generation,
            protocol,
            ..Default::default()
        };
        if version == V_NO_MEMBERS {
            return Some(out);
        }
        out.leader = Some(get_str(&mut v)?).filter(|l| !l.is_empty());
        let count = get_i32(&mut v)?;
        // Each member takes more than one byte: a count past the bytes left is a lie.
        if count < 0 || count as usize > v.remaining() {
            return None;
        }
        for _ in 0..count {
            let id = get_str(&mut v)?;
            if v.remaining() < 1 {
                return None;
            }
            let instance_id = match v.get_i8() {
                0 => None,
                _ => Some(get_str(&mut v)?),
            };
            out.members.push(StoredMember {
                id,
                instance_id,
                client_id: get_str(&mut v)?,
                client_host: get_str(&mut v)?,
                rebalance_timeout_ms: get_i32(&mut v)?,
                session_timeout_ms: get_i32(&mut v)?,
                subscription: get_bytes(&mut v)?,
                assignment: get_bytes(&mut v)?,
            });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupValue {
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            members: vec![
                StoredMember {
                    id: "m1".into(),
                    instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: vec![0, 1, 2],
                    assignment: vec![3, 4],
                },
                StoredMember {
                    id: "m2".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn round_trips_and_reads_the_older_version() {
        let g = sample();
        assert_eq!(GroupValue::decode(&g.encode()), Some(g));
        let mut old = Vec::new();
        old.put_i16(100);
        put_str(&mut old, "consumer");
        old.put_i32(5);
        put_str(&mut old, "range");
        let g = GroupValue::decode(&old).expect("v100");
        assert_eq!((g.generation, g.protocol.as_deref()), (5, Some("range")));
        assert!(g.members.is_empty() && g.leader.is_none());
    }

    #[test]
    fn cut_short_or_lying_values_are_refused() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert_eq!(GroupValue::decode(&bytes[..n]), None, "cut at {n}");
        }
        let mut lie = GroupValue::default().encode();
        let at = lie.len() - 4;
        lie[at..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(GroupValue::decode(&lie), None);
    }
}
