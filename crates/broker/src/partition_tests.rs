//! Tests of [`Partition`](super::Partition): appends, placement, truncation.

use super::*;

/// A batch of `n` records at `offset` (as a leader's fetch returns it).
fn batch_at(offset: i64, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    for _ in 0..n {
        b = b.record(None, Some(b"v"));
    }
    let mut bytes = b.build();
    bytes[..8].copy_from_slice(&offset.to_be_bytes());
    bytes
}

fn ids(v: &[i32]) -> Vec<NodeId> {
    v.iter().map(|i| NodeId(*i)).collect()
}

fn follow(p: &Partition, epoch: i32) {
    p.set_placement(
        NodeId(2),
        NodeId(1),
        LeaderEpoch(epoch),
        &ids(&[1, 2]),
        &ids(&[1, 2]),
    );
}

#[test]
fn a_follower_of_a_new_leader_cuts_its_log_to_the_high_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Partition::open(
        "t",
        0,
        dir.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("open");
    follow(&p, 0);
    p.append_replicated(&batch_at(0, 5), LeaderEpoch(0))
        .expect("append");
    p.append_replicated(&batch_at(5, 5), LeaderEpoch(0))
        .expect("append");
    p.set_follower_high_watermark(5, LeaderEpoch(0));
    assert_eq!(p.log.log_end_offset(), 10);
    // The same leader, an ISR change: nothing is cut.
    follow(&p, 0);
    assert_eq!(p.log.log_end_offset(), 10);
    // A new leader: 5..10 may not be on it.
    follow(&p, 1);
    assert_eq!(p.log.log_end_offset(), 5);
    assert_eq!(p.high_watermark(), 5);
    // A fetch made at the old epoch that lands after the change is
    // dropped, and so is the high watermark it carried.
    p.append_replicated(&batch_at(5, 5), LeaderEpoch(0))
        .expect("stale");
    p.set_follower_high_watermark(2, LeaderEpoch(0));
    assert_eq!(p.log.log_end_offset(), 5);
    assert_eq!(p.high_watermark(), 5);
    p.append_replicated(&batch_at(5, 3), LeaderEpoch(1))
        .expect("append");
    assert_eq!(p.log.log_end_offset(), 8);
}

/// `batch_at`, written by the leader of `epoch`.
fn batch_of_epoch(offset: i64, n: usize, epoch: i32) -> Vec<u8> {
    let mut b = batch_at(offset, n);
    BatchHeader::set_partition_leader_epoch(&mut b, epoch);
    b
}

#[test]
fn a_follower_with_leader_epochs_keeps_its_log_until_the_leader_says_where_it_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Partition::open(
        "t",
        0,
        dir.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("open");
    follow(&p, 1);
    p.append_replicated(&batch_of_epoch(0, 5, 1), LeaderEpoch(1))
        .expect("append");
    p.append_replicated(&batch_of_epoch(5, 5, 1), LeaderEpoch(1))
        .expect("append");
    p.set_follower_high_watermark(5, LeaderEpoch(1));
    assert_eq!(p.log.latest_epoch(), Some(1));
    // A new leader: nothing is cut on a guess.
    follow(&p, 2);
    assert_eq!(p.log.log_end_offset(), 10);
    assert_eq!(p.high_watermark(), 5);
    // Its answer from an older epoch is ignored; at the epoch followed
    // the log is cut where the leader's epoch 1 ends.
    assert!(!p.truncate_diverged(7, LeaderEpoch(1)).expect("stale"));
    assert_eq!(p.log.log_end_offset(), 10);
    assert!(p.truncate_diverged(7, LeaderEpoch(2)).expect("cut"));
    assert_eq!(
        p.log.log_end_offset(),
        5,
        "the batch holding offset 7 goes whole"
    );
    assert_eq!(p.high_watermark(), 5);
    assert!(p.truncate_diverged(3, LeaderEpoch(2)).expect("cut"));
    assert_eq!(p.high_watermark(), 0, "below the high watermark: capped");
}

#[test]
fn a_leader_stamps_its_epoch_and_starts_it_at_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Partition::open(
        "t",
        0,
        dir.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("open");
    p.set_placement(
        NodeId(1),
        NodeId(1),
        LeaderEpoch(4),
        &ids(&[1, 2]),
        &ids(&[1]),
    );
    p.append(&BatchBuilder::new(0).record(None, Some(b"v")).build())
        .expect("append");
    p.set_placement(
        NodeId(1),
        NodeId(1),
        LeaderEpoch(6),
        &ids(&[1, 2]),
        &ids(&[1]),
    );
    let r = p.log.read(0, 1 << 20, None).expect("read");
    let (h, _, _) = Batches::new(&r.records)
        .next()
        .expect("one batch")
        .expect("valid");
    assert_eq!(h.partition_leader_epoch, 4);
    assert_eq!(p.log.end_offset_for_epoch(4), (4, 1));
    assert_eq!(p.log.end_offset_for_epoch(6), (6, 1));
    // Following now: appends keep the leader's epochs.
    follow(&p, 7);
    p.append_replicated(&batch_of_epoch(1, 2, 7), LeaderEpoch(7))
        .expect("append");
    // Epoch 6 wrote nothing and gives way to 7 at the same offset.
    assert_eq!(p.log.end_offset_for_epoch(6), (4, 1));
    assert_eq!(p.log.end_offset_for_epoch(7), (7, 3));
}

#[test]
fn a_restarted_replica_cuts_to_its_checkpoint_or_to_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = Partition::open(
            "t",
            0,
            dir.path(),
            LogConfig::default(),
            crate::clock::system(),
        )
        .expect("open");
        follow(&p, 0);
        p.append_replicated(&batch_at(0, 10), LeaderEpoch(0))
            .expect("append");
        p.append_replicated(&batch_at(10, 10), LeaderEpoch(0))
            .expect("append");
        p.set_follower_high_watermark(10, LeaderEpoch(0));
        p.checkpoint_high_watermark().expect("checkpoint");
        p.log.close().expect("close");
    }
    let p = Partition::open(
        "t",
        0,
        dir.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("reopen");
    assert_eq!(p.log.log_end_offset(), 20);
    follow(&p, 0);
    assert_eq!(p.log.log_end_offset(), 10, "cut to the checkpoint");
    p.log.close().expect("close");

    // No checkpoint (killed before the first one): refetch it all.
    std::fs::remove_file(dir.path().join(hw_checkpoint::FILE)).expect("rm");
    let p = Partition::open(
        "t",
        0,
        dir.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("reopen");
    follow(&p, 0);
    assert_eq!(p.log.log_end_offset(), 0);
}

#[test]
fn a_single_replica_partition_keeps_no_checkpoint_and_is_never_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Partition::open(
        "t",
        0,
        dir.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("open");
    p.set_placement(NodeId(1), NodeId(1), LeaderEpoch(0), &ids(&[1]), &ids(&[1]));
    p.append(&BatchBuilder::new(0).record(None, Some(b"v")).build())
        .expect("append");
    p.checkpoint_high_watermark().expect("checkpoint");
    assert!(!dir.path().join(hw_checkpoint::FILE).exists());
    p.set_placement(NodeId(1), NodeId(1), LeaderEpoch(1), &ids(&[1]), &ids(&[1]));
    assert_eq!(p.log.log_end_offset(), 1);
    // Offline (its one broker fenced), and back: never cut.
    p.set_placement(
        NodeId(1),
        NodeId::NONE,
        LeaderEpoch(2),
        &ids(&[1]),
        &ids(&[1]),
    );
    p.set_placement(NodeId(1), NodeId(1), LeaderEpoch(3), &ids(&[1]), &ids(&[1]));
    assert_eq!(p.log.log_end_offset(), 1);
    let dir2 = tempfile::tempdir().expect("tempdir");
    let q = Partition::open(
        "t",
        0,
        dir2.path(),
        LogConfig::default(),
        crate::clock::system(),
    )
    .expect("open");
    q.append(&BatchBuilder::new(0).record(None, Some(b"v")).build())
        .expect("append");
    // Starting up while offline (no checkpoint either): kept.
    q.set_placement(
        NodeId(2),
        NodeId::NONE,
        LeaderEpoch(2),
        &ids(&[1, 2]),
        &ids(&[1]),
    );
    assert_eq!(q.log.log_end_offset(), 1);
}

#[tokio::test]
async fn a_produce_waiting_on_a_replica_moved_away_is_not_acknowledged() {
    use crate::replication::{wait_replicated, Replicated};
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Arc::new(
        Partition::open(
            "t",
            0,
            dir.path(),
            LogConfig::default(),
            crate::clock::system(),
        )
        .expect("open"),
    );
    p.set_placement(
        NodeId(1),
        NodeId(1),
        LeaderEpoch(0),
        &ids(&[1, 2]),
        &ids(&[1, 2]),
    );
    p.on_follower_fetch(NodeId(2), 0);
    p.append(&BatchBuilder::new(0).record(None, Some(b"v")).build())
        .expect("append");
    assert_eq!(p.high_watermark(), 0, "follower 2 does not have it yet");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { wait_replicated(&p, 1, LeaderEpoch(0), deadline).await }
    });
    tokio::task::yield_now().await;
    // The partition moves to broker 2 alone; this replica is dropped.
    p.set_placement(NodeId(1), NodeId(2), LeaderEpoch(1), &ids(&[2]), &ids(&[2]));
    assert_eq!(waiting.await.expect("join"), Replicated::NotLeader);
    assert_eq!(p.high_watermark(), 0);
}

#[test]
fn a_follower_that_stops_fetching_leaves_the_isr_once_the_lag_time_has_passed() {
    let clock = crate::clock::ManualClock::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Partition::open("t", 0, dir.path(), LogConfig::default(), clock.clone()).expect("open");
    p.set_placement(
        NodeId(1),
        NodeId(1),
        LeaderEpoch(4),
        &ids(&[1, 2, 3]),
        &ids(&[1, 2, 3]),
    );
    p.append(&BatchBuilder::new(0).record(None, Some(b"v")).build())
        .expect("append");
    let lag = std::time::Duration::from_millis(30_000);
    clock.advance(lag);
    p.on_follower_fetch(NodeId(2), 1);
    p.on_follower_fetch(NodeId(3), 0);
    assert_eq!(
        p.isr_to_shrink(30_000),
        None,
        "no one is past the lag time yet"
    );
    clock.advance(std::time::Duration::from_millis(1));
    // Follower 2 caught up just now; follower 3 never has since placement.
    assert_eq!(
        p.isr_to_shrink(30_000),
        Some((LeaderEpoch(4), ids(&[1, 2])))
    );
}
