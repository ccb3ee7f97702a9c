//! Groups and committed offsets per `__consumer_offsets` partition: read
//! from its log when this node opens or when leadership of the partition
//! arrives, dropped when it leaves (Kafka's `onElection`/`onResignation`).

use std::collections::HashMap;

use crate::metadata::LeaderEpoch;
use crate::topics::Partition;
use crate::txn::producer_state::Marker;

use std::time::Instant;

use bytes::Bytes;

use super::state::{Group, GroupState, Member};
use super::store::{self, Entry, GroupValue, OFFSETS_TOPIC};
use super::GroupCoordinator;

impl GroupCoordinator {
    /// Loads every `__consumer_offsets` partition this node leads (at open).
    pub(super) fn replay(&self) {
        let Some(t) = self.topics.get(OFFSETS_TOPIC) else {
            return;
        };
        let (mut groups, mut records) = (0, 0);
        for p in t.hosted().iter().filter(|p| p.is_leading()) {
            let (g, r) = self.load(p, p.replication_epoch());
            groups += g;
            records += r;
        }
        tracing::info!(
            groups,
            records,
            "rebuilt consumer groups from {OFFSETS_TOPIC}"
        );
    }

    /// Leadership of `__consumer_offsets` partition `index` arrived at
    /// `epoch`: rebuilds its groups from the log (the log is read without
    /// holding the groups' lock). A partition already loaded at `epoch` is
    /// left as it is.
    pub fn load_partition(&self, index: i32, epoch: LeaderEpoch) {
        if self.loaded.lock().get(&index) == Some(&epoch) {
            return;
        }
        let Some(p) = self
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partition(index))
        else {
            return;
        };
        let (groups, records) = self.load(&p, epoch);
        tracing::info!(
            partition = index,
            leader_epoch = epoch.0,
            groups,
            records,
            "loaded consumer groups from {OFFSETS_TOPIC}: leadership arrived"
        );
    }

    /// Replaces the groups of partition `p` with those its log holds;
    /// returns how many groups and records it read.
    fn load(&self, p: &Partition, epoch: LeaderEpoch) -> (usize, usize) {
        let (read, records) = read_groups(p, self.wall_ms(), self.now());
        let n = self.offsets_partitions();
        let count = read.len();
        self.groups.replace_where(
            |id| store::partition_for(id, n) == p.index,
            read.into_values(),
        );
        self.loaded.lock().insert(p.index, epoch);
        (count, records)
    }

    /// Leadership of `__consumer_offsets` partition `index` left this node:
    /// its groups are dropped (their requests now get NOT_COORDINATOR; a
    /// waiting JoinGroup or SyncGroup is answered and rejoins at the new
    /// coordinator).
    pub fn unload_partition(&self, index: i32) {
        self.loaded.lock().remove(&index);
        let n = self.offsets_partitions();
        let dropped = self.groups.replace_where(
            |id| store::partition_for(id, n) == index,
            std::iter::empty(),
        );
        tracing::info!(
            partition = index,
            groups = dropped,
            "unloaded consumer groups: leadership of {OFFSETS_TOPIC} moved"
        );
    }
}

/// The groups one `__consumer_offsets` partition holds, and how many
/// records it read.
fn read_groups(p: &Partition, now: i64, seen: Instant) -> (HashMap<String, Group>, usize) {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut records = 0usize;
    {
        let scanned = crate::partition::scan_batches(&p.log, 0, |h, bytes| {
            if h.is_control() {
                // A transaction marker: its offsets join the committed ones or go.
                let mut marker = None;
                let _ = strom_record::for_each_record(bytes, |rec| {
                    marker = marker.or(rec.key.and_then(Marker::from_key));
                });
                for g in groups.values_mut() {
                    if let Some(o) = g.txn_offsets.remove(&h.producer_id) {
                        if marker == Some(Marker::Commit) {
                            g.offsets.extend(o);
                        }
                    }
                }
                return;
            }
            let txn = h.is_transactional().then_some(h.producer_id);
            let res = strom_record::for_each_record(bytes, |rec| {
                records += 1;
                match rec.key.and_then(|k| store::decode(k, rec.value)) {
                    Some(Entry::Offset {
                        group,
                        topic,
                        partition,
                        value,
                    }) => {
                        let g = groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        match value {
                            Some(c) => match txn {
                                Some(pid) => {
                                    g.txn_offsets
                                        .entry(pid)
                                        .or_default()
                                        .insert((topic, partition), c);
                                }
                                None => {
                                    g.offsets.insert((topic, partition), c);
                                }
                            },
                            None => {
                                g.offsets.remove(&(topic, partition));
                            }
                        }
                    }
                    Some(Entry::Group {
                        group,
                        value: Some(v),
                    }) => {
                        let g = groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        restore(g, v, now, seen);
                    }
                    Some(Entry::Group { group, value: None }) => {
                        groups.remove(&group);
                    }
                    None => {}
                }
            });
            if let Err(e) = res {
                tracing::warn!(partition = p.index, error = %e, "skipping unreadable __consumer_offsets batch");
            }
        });
        if let Err(e) = scanned {
            tracing::error!(partition = p.index, error = %e, "cannot replay __consumer_offsets");
        }
    }
    groups.retain(|_, g| {
        !g.offsets.is_empty() || !g.txn_offsets.is_empty() || g.protocol_type.is_some()
    });
    (groups, records)
}

/// Applies one stored group value: a completed rebalance brings its members
/// back Stable, their sessions starting now (as when a coordinator loads a
/// group in Kafka); anything else leaves the group Empty until they rejoin.
fn restore(g: &mut Group, v: GroupValue, now_ms: i64, seen: Instant) {
    g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
    g.generation = v.generation;
    g.protocol = v.protocol;
    let protocol = g.protocol.clone().unwrap_or_default();
    g.members = v
        .members
        .into_iter()
        .map(|m| Member {
            id: m.id,
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: vec![(protocol.clone(), Bytes::from(m.subscription))],
            assignment: Bytes::from(m.assignment),
            last_seen: seen,
            awaiting_join: None,
            awaiting_sync: None,
        })
        .collect();
    if g.members.is_empty() {
        g.state = GroupState::Empty;
        g.leader = None;
        g.empty_since_ms.get_or_insert(now_ms);
    } else {
        g.state = GroupState::Stable;
        g.leader = v.leader;
        g.empty_since_ms = None;
    }
}
