//! A partition leader's view of its followers (Kafka's `Partition` leader
//! state): how far each has fetched, the ISR it may count on, and the high
//! watermark: the offset below which every in-sync replica has the log.
//!
//! A state machine: follower fetches and image changes in, effects out
//! (the high watermark moved, ask the controller for a larger ISR). The
//! ISR counted is Kafka's *maximal* ISR: the committed one plus a
//! proposed expansion, so from the moment a follower is proposed, writes
//! wait for it too, and nothing acknowledged is missing from it if the
//! controller hands it the partition.

use std::collections::HashMap;

use crate::metadata::{LeaderEpoch, NodeId};

/// How long a proposed ISR change may go unanswered before it is proposed again.
const PROPOSAL_RETRY_MS: i64 = 5_000;

/// What a follower's fetch changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FetchEffects {
    /// The high watermark advanced to this offset.
    pub high_watermark: Option<i64>,
    /// Ask the controller for this ISR (the follower caught up).
    pub propose_isr: Option<Vec<NodeId>>,
}

/// One follower's progress.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// Its log end offset: the offset it last fetched from.
    end: i64,
    /// When it last had everything the leader had (Kafka's
    /// `lastCaughtUpTimeMs`).
    caught_up_ms: i64,
    /// The leader's log end and the time at its last fetch.
    last_fetch: (i64, i64),
}

/// The leader side of one partition's replication.
#[derive(Debug)]
pub struct LeaderState {
    me: NodeId,
    leading: bool,
    epoch: LeaderEpoch,
    replicas: Vec<NodeId>,
    isr: Vec<NodeId>,
    proposed: Option<(Vec<NodeId>, i64)>,
    followers: HashMap<NodeId, Follower>,
    hw: i64,
    /// When this leadership started: ISR members not heard from yet count
    /// as caught up then.
    since_ms: i64,
}

impl Default for LeaderState {
    fn default() -> LeaderState {
        LeaderState::new()
    }
}

impl LeaderState {
    /// The state of a partition not led here (yet).
    pub fn new() -> LeaderState {
        LeaderState {
            me: NodeId::NONE,
            leading: false,
            epoch: LeaderEpoch::UNKNOWN,
            replicas: Vec::new(),
            isr: Vec::new(),
            proposed: None,
            followers: HashMap::new(),
            hw: 0,
            since_ms: 0,
        }
    }

    /// The partition's placement changed in the image (this node is `me`)
    /// at `now_ms`. `hw` is the high watermark this node knew (as a
    /// follower, from its leader).
    #[allow(clippy::too_many_arguments)]
    pub fn set_placement(
        &mut self,
        me: NodeId,
        leading: bool,
        epoch: LeaderEpoch,
        replicas: &[NodeId],
        isr: &[NodeId],
        hw: i64,
        now_ms: i64,
    ) {
        if !leading || epoch != self.epoch || !self.leading {
            // A new leadership starts without knowledge of the followers.
            self.followers.clear();
            self.proposed = None;
            self.hw = hw;
            self.since_ms = now_ms;
        }
        self.me = me;
        self.leading = leading;
        self.epoch = epoch;
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        if let Some((p, _)) = &self.proposed {
            if p.iter().all(|r| isr.contains(r)) {
                self.proposed = None;
            }
        }
        self.followers.retain(|n, _| replicas.contains(n));
    }

    /// The ISR writes wait for: committed plus proposed.
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut v = self.isr.clone();
        if let Some((p, _)) = &self.proposed {
            for r in p {
                if !v.contains(r) {
                    v.push(*r);
                }
            }
        }
        v
    }

    /// True when some other replica is in the maximal ISR: the high
    /// watermark is then held to what the followers have.
    pub fn has_isr_followers(&self) -> bool {
        self.leading && self.maximal_isr().iter().any(|r| *r != self.me)
    }

    /// The high watermark, given the leader's log end `leo`.
    pub fn high_watermark(&self, leo: i64) -> i64 {
        if !self.has_isr_followers() {
            return leo;
        }
        let lowest = self
            .maximal_isr()
            .iter()
            .filter(|r| **r != self.me)
            .map(|r| self.followers.get(r).map_or(0, |f| f.end))
            .min()
            .unwrap_or(leo);
        self.hw.max(lowest.min(leo))
    }

    /// Follower `node` fetched from `offset` (so it has everything below
    /// it) while the leader's log ended at `leo`, at `now_ms`.
    pub fn on_follower_fetch(
        &mut self,
        node: NodeId,
        offset: i64,
        leo: i64,
        now_ms: i64,
    ) -> FetchEffects {
        let mut effects = FetchEffects::default();
        if !self.leading || !self.replicas.contains(&node) {
            return effects;
        }
        let before = self.high_watermark(leo);
        // Caught up: it has the leader's end now, or the end the leader had
        // at its previous fetch (then it was caught up at that fetch).
        let previous = self.followers.get(&node).copied();
        let caught_up_ms = if offset >= leo {
            now_ms
        } else {
            match previous {
                Some(f) if offset >= f.last_fetch.0 => f.caught_up_ms.max(f.last_fetch.1),
                Some(f) => f.caught_up_ms,
                None => self.since_ms,
            }
        };
        self.followers.insert(
            node,
            Follower {
                end: offset,
                caught_up_ms,
                last_fetch: (leo, now_ms),
            },
        );
        let after = self.high_watermark(leo);
        if self.has_isr_followers() {
            self.hw = after;
        }
        if after > before {
            effects.high_watermark = Some(after);
        }
        // In sync (Kafka's rule for joining the ISR): the follower has
        // everything below the high watermark, which is everything
        // acknowledged. Alone in the ISR the leader acknowledges up to its
        // log end, so the follower must reach it; from the moment it is
        // proposed it holds the high watermark, so nothing acknowledged
        // can be missing from it if the controller hands it the partition.
        // (Being close to the end is not enough: the records between were
        // acknowledged, and would be lost with the leadership.)
        let caught_up = offset >= after;
        let in_isr = self.maximal_isr().contains(&node);
        let retry = self
            .proposed
            .as_ref()
            .is_some_and(|(_, at)| now_ms - at > PROPOSAL_RETRY_MS);
        if caught_up && (!in_isr || retry) {
            let mut isr = self.maximal_isr();
            if !isr.contains(&node) {
                isr.push(node);
            }
            self.proposed = Some((isr.clone(), now_ms));
            effects.propose_isr = Some(isr);
        }
        effects
    }

    /// The ISR without the followers that have not caught up for longer
    /// than `lag_ms` at `now_ms` (`replica.lag.time.max.ms`), when there
    /// are any and no other change is pending: to propose to the
    /// controller. Until it commits, the high watermark still waits for
    /// them (the committed ISR is what a new leader is chosen from).
    pub fn isr_to_shrink(&mut self, now_ms: i64, lag_ms: i64) -> Option<Vec<NodeId>> {
        if !self.leading {
            return None;
        }
        let pending = self
            .proposed
            .as_ref()
            .is_some_and(|(_, at)| now_ms - at <= PROPOSAL_RETRY_MS);
        if pending {
            return None;
        }
        let lagging = |r: &NodeId| {
            *r != self.me && {
                let at = self
                    .followers
                    .get(r)
                    .map_or(self.since_ms, |f| f.caught_up_ms);
                now_ms - at > lag_ms
            }
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<NodeId> = self.isr.iter().copied().filter(|r| !lagging(r)).collect();
        self.proposed = Some((isr.clone(), now_ms));
        Some(isr)
    }

    /// The controller refused or lost a proposal: forget it, so the next
    /// fetch proposes again.
    pub fn proposal_failed(&mut self) {
        self.proposed = None;
    }

    /// Whether a placement was ever given (false until the first).
    pub fn placed(&self) -> bool {
        self.me != NodeId::NONE
    }

    /// Whether the partition has replicas besides this one.
    pub fn replicated(&self) -> bool {
        self.replicas.iter().any(|r| *r != self.me)
    }

    /// This node leads the partition.
    pub fn leading(&self) -> bool {
        self.leading
    }

    /// The leader epoch this state leads at.
    pub fn epoch(&self) -> LeaderEpoch {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(replicas: &[i32], isr: &[i32]) -> LeaderState {
        let ids = |v: &[i32]| v.iter().map(|i| NodeId(*i)).collect::<Vec<_>>();
        let mut s = LeaderState::new();
        s.set_placement(
            NodeId(1),
            true,
            LeaderEpoch(0),
            &ids(replicas),
            &ids(isr),
            0,
            0,
        );
        s
    }

    #[test]
    fn alone_in_the_isr_the_high_watermark_is_the_log_end() {
        let s = leader(&[1, 4], &[1]);
        assert!(!s.has_isr_followers());
        assert_eq!(s.high_watermark(42), 42);
    }

    #[test]
    fn a_follower_that_catches_up_is_proposed_and_then_holds_the_high_watermark() {
        let mut s = leader(&[1, 4], &[1]);
        // Behind: no proposal.
        let e = s.on_follower_fetch(NodeId(4), 10, 100, 0);
        assert_eq!(e.propose_isr, None);
        // At the end: proposed, and counted at once.
        let e = s.on_follower_fetch(NodeId(4), 100, 100, 1);
        assert_eq!(e.propose_isr, Some(vec![NodeId(1), NodeId(4)]));
        assert!(s.has_isr_followers());
        // New writes: the high watermark waits for the follower.
        assert_eq!(s.high_watermark(150), 100);
        let e = s.on_follower_fetch(NodeId(4), 150, 150, 2);
        assert_eq!(e.high_watermark, Some(150));
        assert_eq!(e.propose_isr, None, "proposed once");
        // The commit arrives: the same ISR, nothing more to propose.
        s.set_placement(
            NodeId(1),
            true,
            LeaderEpoch(0),
            &[NodeId(1), NodeId(4)],
            &[NodeId(1), NodeId(4)],
            0,
            2,
        );
        assert_eq!(s.high_watermark(160), 150);
    }

    #[test]
    fn close_to_the_end_is_not_in_sync_while_acknowledged_records_are_missing() {
        let mut s = leader(&[1, 4], &[1]);
        assert_eq!(s.on_follower_fetch(NodeId(4), 50, 100, 0).propose_isr, None);
        // It has what the log held at its last fetch, but 100..120 were
        // acknowledged (the leader is alone in the ISR): not in sync.
        assert_eq!(
            s.on_follower_fetch(NodeId(4), 100, 120, 1).propose_isr,
            None
        );
        assert!(s
            .on_follower_fetch(NodeId(4), 120, 120, 2)
            .propose_isr
            .is_some());
    }

    #[test]
    fn with_another_follower_in_sync_reaching_the_high_watermark_is_enough() {
        let mut s = leader(&[1, 2, 4], &[1, 2]);
        s.on_follower_fetch(NodeId(2), 90, 100, 0);
        assert_eq!(s.high_watermark(100), 90);
        assert_eq!(s.on_follower_fetch(NodeId(4), 80, 100, 1).propose_isr, None);
        assert_eq!(
            s.on_follower_fetch(NodeId(4), 95, 100, 2).propose_isr,
            Some(vec![NodeId(1), NodeId(2), NodeId(4)])
        );
    }

    #[test]
    fn a_failed_proposal_is_retried_and_strangers_are_ignored() {
        let mut s = leader(&[1, 4], &[1]);
        assert!(s
            .on_follower_fetch(NodeId(4), 5, 5, 0)
            .propose_isr
            .is_some());
        s.proposal_failed();
        assert!(s
            .on_follower_fetch(NodeId(4), 5, 5, 1)
            .propose_isr
            .is_some());
        assert_eq!(
            s.on_follower_fetch(NodeId(9), 5, 5, 2),
            FetchEffects::default()
        );
    }

    #[test]
    fn the_high_watermark_never_goes_back() {
        let mut s = leader(&[1, 2], &[1, 2]);
        s.on_follower_fetch(NodeId(2), 80, 100, 0);
        assert_eq!(s.high_watermark(100), 80);
        // A follower restarting from an older offset does not lower it.
        s.on_follower_fetch(NodeId(2), 60, 100, 1);
        assert_eq!(s.high_watermark(100), 80);
    }

    #[test]
    fn a_follower_behind_for_longer_than_the_lag_time_is_proposed_out_of_the_isr() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3]);
        // 2 keeps up (the end it had at its previous fetch), 3 stops.
        s.on_follower_fetch(NodeId(2), 100, 100, 1_000);
        s.on_follower_fetch(NodeId(3), 100, 100, 1_000);
        s.on_follower_fetch(NodeId(2), 100, 150, 20_000);
        s.on_follower_fetch(NodeId(2), 150, 200, 40_000);
        assert_eq!(s.isr_to_shrink(30_000, 30_000), None);
        assert_eq!(
            s.isr_to_shrink(40_000, 30_000),
            Some(vec![NodeId(1), NodeId(2)])
        );
        // Proposed once; until it commits, the high watermark waits for 3.
        assert_eq!(s.isr_to_shrink(40_001, 30_000), None);
        assert_eq!(s.high_watermark(200), 100);
        s.set_placement(
            NodeId(1),
            true,
            LeaderEpoch(0),
            &[NodeId(1), NodeId(2), NodeId(3)],
            &[NodeId(1), NodeId(2)],
            0,
            40_002,
        );
        assert_eq!(s.high_watermark(200), 150);
    }

    #[test]
    fn an_isr_member_never_heard_from_counts_from_the_start_of_the_leadership() {
        let mut s = leader(&[1, 2], &[1, 2]);
        assert_eq!(s.isr_to_shrink(30_000, 30_000), None);
        assert_eq!(s.isr_to_shrink(30_001, 30_000), Some(vec![NodeId(1)]));
    }
}
