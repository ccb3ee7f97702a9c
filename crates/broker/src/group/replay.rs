//! Rebuilding groups and committed offsets from `__consumer_offsets` at start-up.

use crate::txn::producer_state::Marker;

use super::state::Group;
use super::store::{self, Entry, OFFSETS_TOPIC};
use super::{now_ms, GroupCoordinator};

impl GroupCoordinator {
    /// Reads every `__consumer_offsets` partition and rebuilds the groups.
    pub(super) fn replay(&self) {
        let Some(t) = self.topics.get(OFFSETS_TOPIC) else {
            return;
        };
        let now = now_ms();
        let mut groups = self.groups.lock();
        let mut records = 0usize;
        let n = t.partition_count() as i32;
        for p in t.hosted().iter() {
            let scanned = crate::partition::scan_batches(&p.log, 0, |h, bytes| {
                if h.is_control() {
                    // A transaction marker: its offsets join the committed ones or go.
                    let mut marker = None;
                    let _ = strom_record::for_each_record(bytes, |rec| {
                        marker = marker.or(rec.key.and_then(Marker::from_key));
                    });
                    for g in groups.values_mut() {
                        if store::partition_for(&g.id, n) != p.index {
                            continue;
                        }
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
                            value: Some((ptype, generation, protocol)),
                        }) => {
                            let g = groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group, now));
                            g.protocol_type = (!ptype.is_empty()).then_some(ptype);
                            g.generation = generation;
                            g.protocol = protocol;
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
        tracing::info!(
            groups = groups.len(),
            records,
            "rebuilt consumer groups from __consumer_offsets"
        );
    }
}
