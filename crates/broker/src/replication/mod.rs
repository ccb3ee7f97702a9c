//! Replication between brokers: a leader tracks its followers and the high
//! watermark ([`leader`]); a follower copies the leader's log by fetching
//! it ([`fetcher`]). Part 1 of the cluster uses it to move partitions
//! between brokers (reassignment: the new replica catches up as a
//! follower, joins the ISR, then takes over).

pub mod coordinator_write;
pub mod fetcher;
pub mod hw_checkpoint;
pub mod leader;
pub mod peer;
pub mod throttle;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::metadata::controller::{ControllerReply, ControllerRequest};
use crate::metadata::{LeaderEpoch, NodeId};
use crate::partition::Partition;
use crate::topics::Topics;

/// Asks the controller for `isr` as the ISR of partition `index` of topic
/// `topic_id`, led here at `epoch` (Kafka's AlterPartition), in the
/// background; a refusal or failure lets the next follower fetch ask again.
pub fn propose_isr(
    topics: Arc<Topics>,
    p: Arc<Partition>,
    topic_id: Uuid,
    epoch: LeaderEpoch,
    isr: Vec<NodeId>,
) {
    let leader = topics.node();
    tokio::spawn(async move {
        let req = ControllerRequest::AlterPartition {
            topic_id,
            partition: p.index,
            leader,
            epoch,
            isr: isr.clone(),
        };
        match topics.store().call_async(req).await {
            Ok(ControllerReply::Reassigned { results, .. })
                if results.iter().all(|r| r.is_ok()) =>
            {
                tracing::info!(topic = %p.topic, partition = p.index, isr = ?isr, "ISR changed");
            }
            other => {
                tracing::warn!(topic = %p.topic, partition = p.index, isr = ?isr, reply = ?other, "ISR change refused or failed");
                p.isr_proposal_failed();
            }
        }
    });
}

/// Proposes ISRs without the followers of partitions led here that have
/// not caught up for `lag_ms` (`replica.lag.time.max.ms`; Kafka's ISR
/// expiration task).
pub fn shrink_isrs(topics: &Arc<Topics>, lag_ms: i64) {
    let me = topics.node();
    let image = topics.image();
    for ti in image.topics() {
        for (i, placed) in ti.partitions.iter().enumerate() {
            if placed.leader != me || placed.isr.len() < 2 {
                continue;
            }
            let Some(p) = topics.get(&ti.name).and_then(|t| t.partition(i as i32)) else {
                continue;
            };
            if let Some((epoch, isr)) = p.isr_to_shrink(lag_ms) {
                tracing::warn!(topic = %p.topic, partition = p.index, isr = ?isr, lag_ms, "followers fell behind for longer than replica.lag.time.max.ms; shrinking the ISR");
                propose_isr(topics.clone(), p, ti.id, epoch, isr);
            }
        }
    }
}

/// How an acks=all produce's wait for its replicas ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Replicated {
    /// Every in-sync replica has the records.
    Yes,
    /// The deadline passed first (REQUEST_TIMED_OUT).
    TimedOut,
    /// This node stopped leading the partition (NOT_LEADER_OR_FOLLOWER).
    NotLeader,
}

/// Waits until the high watermark of `p` reaches `end` (the offset after
/// the produced records), as Kafka's produce purgatory does for acks=all.
/// Returns at once when no follower is in the ISR.
pub async fn wait_replicated(
    p: &Partition,
    end: i64,
    epoch: LeaderEpoch,
    deadline: Instant,
) -> Replicated {
    // The common case (no follower in the ISR, or followers already there)
    // costs one atomic load.
    if p.high_watermark() >= end {
        return Replicated::Yes;
    }
    loop {
        let waiter = Arc::new(Notify::new());
        p.waiters.register(&waiter);
        if p.high_watermark() >= end {
            return Replicated::Yes;
        }
        if p.replication_epoch() != epoch || !p.is_leading() {
            return Replicated::NotLeader;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => return Replicated::TimedOut,
        }
    }
}
