//! The ticker: expires sessions, completes rebalances past their deadline,
//! expires committed offsets of empty groups and removes dead groups.

use crate::net::log::Escaped;
use std::time::{Duration, Instant};

use super::join::try_complete;
use super::membership::{after_removal, remove_member};
use super::state::{Group, GroupState};
use super::store::Entry;
use super::GroupCoordinator;

impl GroupCoordinator {
    /// Expires sessions, completes rebalances past their deadline, expires offsets.
    pub fn tick(&self) {
        self.tick_at(self.now())
    }

    /// One tick at `now`.
    pub(crate) fn tick_at(&self, now: Instant) {
        let wall = self.wall_ms();
        let session = Duration::from_millis(self.config.consumer_session_timeout_ms.max(0) as u64);
        // One group at a time, each under its own lock.
        for id in self.groups.ids() {
            self.groups.with_removing(&id, |g| {
                let gone = self.tick_group(g, now, wall, session)
                    && self
                        .persist(
                            &g.id,
                            &[Entry::Group {
                                group: g.id.clone(),
                                value: None,
                            }],
                        )
                        .is_ok();
                ((), gone)
            });
        }
    }

    /// One group's share of a tick; whether it is empty past its retention
    /// and may go.
    fn tick_group(&self, g: &mut Group, now: Instant, wall: i64, session: Duration) -> bool {
        {
            if let Some(cg) = g.consumer.as_mut() {
                let expired: Vec<String> = cg
                    .members
                    .values()
                    .filter(|m| now.duration_since(m.last_seen) > session)
                    .map(|m| m.id.clone())
                    .collect();
                if !expired.is_empty() {
                    for id in &expired {
                        tracing::info!(group = %g.id, member = %id, "session expired; removing member (KIP-848)");
                        cg.members.remove(id);
                    }
                    cg.group_epoch += 1;
                    let topics = &self.topics;
                    cg.recompute(|t| topics.get(t).map(|t| (t.id, t.partition_count() as i32)));
                    if cg.members.is_empty() {
                        g.state = GroupState::Empty;
                        g.empty_since_ms = Some(wall);
                    }
                }
            }
            g.pending.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
                .filter(|m| {
                    now.duration_since(m.last_seen)
                        > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %g.id, member = %id, "session expired; removing member");
                remove_member(g, id);
            }
            if !expired.is_empty() {
                after_removal(g, now, self.wall_ms());
            }
            if g.state == GroupState::PreparingRebalance {
                try_complete(g, now, self.wall_ms());
                if matches!(g.state, GroupState::CompletingRebalance | GroupState::Empty) {
                    self.persist_group(g);
                }
            }
            if g.state == GroupState::Empty {
                let since = g.empty_since_ms.unwrap_or(wall);
                let retention = self.config.offsets_retention_ms;
                let doomed: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(_, c)| {
                        let base = if g.protocol_type.is_some() {
                            since
                        } else {
                            c.commit_timestamp
                        };
                        wall - base > retention
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                if !doomed.is_empty() {
                    let entries: Vec<Entry> = doomed
                        .iter()
                        .map(|(t, p)| Entry::Offset {
                            group: g.id.clone(),
                            topic: t.clone(),
                            partition: *p,
                            value: None,
                        })
                        .collect();
                    if self.persist(&g.id, &entries).is_ok() {
                        for k in &doomed {
                            g.offsets.remove(k);
                        }
                        tracing::info!(group = %Escaped(&g.id), partitions = doomed.len(), "expired committed offsets (offsets.retention.minutes)");
                    }
                }
                return g.offsets.is_empty() && g.members.is_empty() && wall - since > retention;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::Committed;
    use super::super::test_support::{config, consumer_beat, coordinator, coordinator_on};
    use super::*;
    use crate::clock::ManualClock;

    fn commit(c: &GroupCoordinator, group: &str, offset: i64) {
        let committed = Committed {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: c.wall_ms(),
        };
        c.commit(group, -1, "", None, vec![("t".into(), 0, committed)])
            .expect("commit");
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = coordinator(dir.path(), 0);
        commit(&c, "old", 5);
        std::thread::sleep(Duration::from_millis(5));
        c.tick();
        assert!(c.fetch_offsets("old", None).is_empty(), "expired");
        assert!(c.list(&[]).is_empty(), "the group is gone too");
        // A long retention keeps them, across a restart (replayed from __consumer_offsets).
        let dir = tempfile::tempdir().expect("tempdir");
        let c = coordinator(dir.path(), 3_600_000);
        commit(&c, "kept", 7);
        c.tick();
        drop(c);
        let c = coordinator(dir.path(), 3_600_000);
        let got = c.fetch_offsets("kept", None);
        assert_eq!(got[0].1[0].1.as_ref().map(|c| c.offset), Some(7));
    }

    #[test]
    fn offsets_expire_when_the_clock_passes_their_retention_and_not_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new();
        let c = coordinator_on(dir.path(), config(60_000), clock.clone());
        commit(&c, "g", 3);
        clock.advance(Duration::from_millis(60_000));
        c.tick();
        assert!(!c.fetch_offsets("g", None).is_empty(), "kept at the limit");
        clock.advance(Duration::from_millis(1));
        c.tick();
        assert!(c.fetch_offsets("g", None).is_empty(), "expired past it");
    }

    #[test]
    fn a_consumer_member_that_stops_heartbeating_is_removed_after_its_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new();
        let c = coordinator_on(dir.path(), config(3_600_000), clock.clone());
        let beat = |member: &str, epoch: i32| consumer_beat(&c, member, epoch, None);
        let a = beat("a", 0);
        let b = beat("b", 0);
        assert_eq!((a.error, b.error), (0, 0));
        // group.consumer.session.timeout.ms is 45 s; "a" keeps beating.
        clock.advance(Duration::from_millis(30_000));
        assert_eq!(beat("a", a.member_epoch).error, 0);
        clock.advance(Duration::from_millis(15_001));
        c.tick();
        let members = |c: &GroupCoordinator| {
            let d = c.describe_consumer_group("g").expect("group");
            d.members
                .iter()
                .map(|m| m.member_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(members(&c), vec!["a".to_string()], "b expired, a did not");
        clock.advance(Duration::from_millis(45_001));
        c.tick();
        assert!(members(&c).is_empty());
    }
}
