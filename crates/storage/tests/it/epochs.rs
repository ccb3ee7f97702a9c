//! Leader epochs in the log: stamped by a leader, kept from a leader's
//! batches by a follower, cut with the log, and kept across a restart.

use strom_record::{BatchHeader, Batches};
use strom_storage::{EpochEntry, Log, LogConfig, LEADER_EPOCH_CHECKPOINT};

use crate::batch;

fn epochs_of(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .iter()
        .map(|e: &EpochEntry| (e.epoch, e.start_offset))
        .collect()
}

/// (base offset, partition leader epoch) of every batch in the log.
fn stamped(log: &Log) -> Vec<(i64, i32)> {
    let r = log.read(0, 1 << 20, None).expect("read");
    Batches::verified(&r.records)
        .map(|b| {
            let (h, _, _) = b.expect("valid batch");
            (h.base_offset, h.partition_leader_epoch)
        })
        .collect()
}

#[test]
fn a_leader_stamps_its_epoch_and_the_cache_records_where_each_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    log.append(&batch(2, "none", 1)).expect("append");
    assert!(log.leader_epochs().is_empty(), "no leader: nothing stamped");
    log.lead_at_epoch(3);
    log.append(&batch(3, "a", 1)).expect("append");
    log.lead_at_epoch(3);
    log.append(&batch(1, "b", 1)).expect("append");
    log.lead_at_epoch(5);
    log.append(&batch(4, "c", 1)).expect("append");
    assert_eq!(stamped(&log), vec![(0, -1), (2, 3), (5, 3), (6, 5)]);
    assert_eq!(epochs_of(&log), vec![(3, 2), (5, 6)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 6));
    assert_eq!(log.end_offset_for_epoch(4), (3, 6));
    assert_eq!(log.end_offset_for_epoch(5), (5, 10));
    assert_eq!(log.end_offset_for_epoch(6), (-1, -1));

    // The cut drops epoch 5; a reopen after a crash keeps the rest.
    log.truncate_to(6).expect("truncate");
    assert_eq!(epochs_of(&log), vec![(3, 2)]);
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(epochs_of(&log), vec![(3, 2)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 6));
    let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("read");
    assert_eq!(text, "0\n1\n3 2\n");
}

#[test]
fn a_follower_keeps_the_leaders_epochs_and_the_log_start_moves_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mut copied = Vec::new();
    for (base, epoch, n) in [(0i64, 1, 4usize), (4, 1, 2), (6, 4, 3)] {
        let mut b = batch(n, "r", 1);
        BatchHeader::set_base_offset(&mut b, base);
        BatchHeader::set_partition_leader_epoch(&mut b, epoch);
        copied.extend_from_slice(&b);
    }
    log.append_replicated(&copied, |_| Ok::<(), ()>(()))
        .expect("append")
        .expect("gate");
    assert_eq!(epochs_of(&log), vec![(1, 0), (4, 6)]);
    assert_eq!(stamped(&log), vec![(0, 1), (4, 1), (6, 4)]);
    log.delete_records_before(5).expect("delete records");
    assert_eq!(epochs_of(&log), vec![(1, 5), (4, 6)]);
    // An epoch led here without a record is gone after a restart (as in
    // Kafka: the next leadership assigns its own).
    log.lead_at_epoch(7);
    assert_eq!(epochs_of(&log), vec![(1, 5), (4, 6), (7, 9)]);
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(epochs_of(&log), vec![(1, 5), (4, 6)]);
    // A cut inside epoch 4's batch removes the whole batch and the epoch.
    log.truncate_to(8).expect("truncate");
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(epochs_of(&log), vec![(1, 5)]);
}
