//! Append, read, roll, indexes, timestamps, truncation, retention, DeleteRecords.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use strom_storage::{FlushPolicy, Log, LogConfig, StorageError, TimestampType};

use crate::{batch, manual_clock, split};

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

#[test]
fn append_assigns_offsets_and_read_returns_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let b1 = batch(3, "a", 1000);
    let b2 = batch(2, "b", 1001);
    assert_eq!(log.append(&b1).expect("append").base_offset, 0);
    let info = log.append(&b2).expect("append");
    assert_eq!(
        (info.base_offset, info.last_offset, info.log_append_time),
        (3, 4, -1)
    );
    assert_eq!(log.log_end_offset(), 5);
    // Reading offset 1 returns the batch that holds it, from its base offset.
    let r = log.read(1, 1 << 20, None).expect("read");
    let got = split(&r.records);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(got[1].2, b2[8..].to_vec());
    // max_bytes smaller than one batch still returns that batch whole.
    let r = log.read(3, 10, None).expect("read");
    assert_eq!(split(&r.records).len(), 1);
    // High-watermark bound.
    let r = log.read(0, 1 << 20, Some(3)).expect("read");
    assert_eq!(split(&r.records).len(), 1);
    // At the end: empty; past the end: out of range.
    assert!(log.read(5, 100, None).expect("read").records.is_empty());
    assert!(matches!(
        log.read(6, 100, None),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    let mut expected = Vec::new();
    for i in 0..200 {
        let b = batch(1 + i % 4, &format!("r{i}"), 1000 + i as i64);
        let info = log.append(&b).expect("append");
        expected.push((info.base_offset, b[8..].to_vec()));
    }
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    // Every batch is readable at each of its offsets.
    for (base, bytes) in &expected {
        let r = log.read(*base, 1, None).expect("read");
        let got = split(&r.records);
        assert_eq!(got[0].0, *base);
        assert_eq!(&got[0].2, bytes);
    }
    // Files carry Kafka's names.
    assert!(dir.path().join("00000000000000000000.log").exists());
    assert!(dir.path().join("00000000000000000000.index").exists());
    assert!(dir.path().join("00000000000000000000.timeindex").exists());
}

#[test]
fn segment_ms_rolls_by_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, t) = manual_clock(10_000);
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = Log::open_with_clock(dir.path(), cfg, clock).expect("open");
    log.append(&batch(1, "a", 10_000)).expect("append");
    t.fetch_add(500, Ordering::SeqCst);
    log.append(&batch(1, "b", 10_500)).expect("append");
    assert_eq!(log.segment_count(), 1);
    t.fetch_add(1000, Ordering::SeqCst);
    log.append(&batch(1, "c", 11_500)).expect("append");
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn log_append_time_overwrites_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, _t) = manual_clock(77_000);
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = Log::open_with_clock(dir.path(), cfg, clock).expect("open");
    let info = log.append(&batch(2, "a", 5)).expect("append");
    assert_eq!(info.log_append_time, 77_000);
    let r = log.read(0, 1 << 20, None).expect("read");
    let h = strom_record::BatchHeader::parse_and_verify(&r.records).expect("crc recomputed");
    assert_eq!(h.max_timestamp, 77_000);
}

#[test]
fn large_and_small_batches_keep_their_records_and_the_callers_buffer() {
    // Above 64 KiB a batch is written as patched header + records in place.
    for (records, append_time) in [(3, false), (3, true), (5_000, false), (5_000, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (clock, _t) = manual_clock(99_000);
        let cfg = LogConfig {
            timestamp_type: if append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            ..LogConfig::default()
        };
        let log = Log::open_with_clock(dir.path(), cfg, clock).expect("open");
        log.append(&batch(2, "first", 5)).expect("append");
        let b = batch(records, "big", 7);
        let before = b.clone();
        let info = log.append(&b).expect("append");
        assert_eq!(b, before, "the caller's bytes are not changed");
        assert_eq!(info.base_offset, 2);
        let r = log.read(2, 1 << 24, None).expect("read");
        let h = strom_record::BatchHeader::parse_and_verify(&r.records).expect("valid crc");
        assert_eq!((h.base_offset, h.records_count), (2, records as i32));
        assert_eq!(h.max_timestamp, if append_time { 99_000 } else { 7 });
        assert_eq!(
            &r.records[61..h.total_len()],
            &before[61..],
            "records as sent"
        );
    }
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for i in 0..100i64 {
        // Timestamps 0, 10, 20, ... except one spike.
        let ts = if i == 42 { 1_000_000 } else { i * 10 };
        log.append(&batch(1, "t", ts)).expect("append");
    }
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(55).expect("lookup"), Some((6, 60)));
    assert_eq!(
        log.offset_for_timestamp(990).expect("lookup"),
        Some((42, 1_000_000))
    );
    assert_eq!(log.offset_for_timestamp(2_000_000).expect("lookup"), None);
    assert_eq!(log.max_timestamp().expect("max"), Some((42, 1_000_000)));
    // Same answers after a clean reopen (indexes loaded from disk).
    log.close().expect("close");
    drop(log);
    let log = Log::open(dir.path(), small()).expect("reopen");
    assert_eq!(log.offset_for_timestamp(55).expect("lookup"), Some((6, 60)));
    assert_eq!(log.max_timestamp().expect("max"), Some((42, 1_000_000)));
}

#[test]
fn truncate_to_cuts_at_batch_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small()).expect("open");
    for i in 0..60 {
        log.append(&batch(3, &format!("x{i}"), i)).expect("append");
    }
    // Offset 100 is inside the batch [99, 101]: the whole batch goes.
    log.truncate_to(100).expect("truncate");
    assert_eq!(log.log_end_offset(), 99);
    let r = log.read(90, 1 << 20, None).expect("read");
    assert_eq!(split(&r.records).last().map(|b| b.0), Some(96));
    let info = log.append(&batch(1, "after", 0)).expect("append");
    assert_eq!(info.base_offset, 99);
    log.truncate_to(0).expect("truncate everything");
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(
        log.append(&batch(1, "again", 0))
            .expect("append")
            .base_offset,
        0
    );
}

#[test]
fn delete_records_and_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, t) = manual_clock(1_000_000);
    let cfg = LogConfig {
        retention_ms: 10_000,
        ..small()
    };
    let log = Log::open_with_clock(dir.path(), cfg.clone(), clock.clone()).expect("open");
    for i in 0..100 {
        log.append(&batch(2, &format!("d{i}"), 1_000_000 + i))
            .expect("append");
    }
    let segs = log.segment_count();
    assert_eq!(log.delete_records_before(150).expect("delete"), 150);
    assert!(matches!(
        log.read(149, 100, None),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        split(&log.read(150, 1, None).expect("read").records)[0].0,
        150
    );
    assert!(log.segment_count() < segs);
    assert!(matches!(
        log.delete_records_before(1000),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Start offset persists.
    drop(log);
    let log = Log::open_with_clock(dir.path(), cfg.clone(), clock.clone()).expect("reopen");
    assert_eq!(log.log_start_offset(), 150);
    // Retention by size keeps at most retention.bytes.
    for i in 0..100 {
        log.append(&batch(2, &format!("e{i}"), 1_000_000 + i))
            .expect("append");
    }
    log.set_config(LogConfig {
        retention_bytes: 4096,
        retention_ms: -1,
        ..cfg.clone()
    });
    assert!(log.apply_retention().expect("retention") > 0);
    assert!(log.size_bytes() <= 4096 + 4096);
    // Retention by time deletes everything (rolling the active segment) once old.
    log.set_config(cfg);
    t.fetch_add(60_000, Ordering::SeqCst);
    assert!(log.apply_retention().expect("retention") > 0);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    assert_eq!(log.log_end_offset(), 400);
    assert!(log.read(400, 100, None).expect("read").records.is_empty());
    assert_eq!(
        log.append(&batch(1, "new", 2_000_000))
            .expect("append")
            .base_offset,
        400
    );
}

#[test]
fn group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        flush: FlushPolicy::EveryAppend,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(dir.path(), cfg).expect("open"));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.append(&batch(1, &format!("{t}-{i}"), 0))
                        .expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(log.log_end_offset(), 400);
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < 400 {
        let r = log.read(at, 1 << 20, None).expect("read");
        for (base, n, _) in split(&r.records) {
            offsets.push(base);
            at = base + n as i64;
        }
    }
    assert_eq!(offsets, (0..400).collect::<Vec<_>>());
}

#[test]
fn idle_handles_are_released_and_reopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, t) = manual_clock(0);
    let log = Log::open_with_clock(dir.path(), small(), clock).expect("open");
    for i in 0..50 {
        log.append(&batch(2, &format!("h{i}"), 0)).expect("append");
    }
    assert!(log.open_file_count() >= 1);
    t.fetch_add(120_000, Ordering::SeqCst);
    assert!(log.release_idle_handles(60_000) >= 1);
    assert_eq!(log.open_file_count(), 0);
    assert_eq!(split(&log.read(0, 1, None).expect("read").records)[0].0, 0);
    log.append(&batch(1, "more", 0))
        .expect("append after release");
}

#[test]
fn new_logs_hold_no_open_files_until_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs: Vec<_> = (0..100)
        .map(|p| {
            Log::open(dir.path().join(format!("n-{p}")), LogConfig::default()).expect("create")
        })
        .collect();
    assert_eq!(logs.iter().map(|l| l.open_file_count()).sum::<usize>(), 0);
    assert!(dir.path().join("n-7/00000000000000000000.log").exists());
    logs[7].append(&batch(1, "x", 0)).expect("append");
    assert!(logs[7].open_file_count() >= 1);
    assert_eq!(
        split(&logs[7].read(0, 1 << 20, None).expect("read").records)[0].0,
        0
    );
}

#[test]
fn many_logs_open_without_opening_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut logs = Vec::new();
    for p in 0..200 {
        let log = Log::open(dir.path().join(format!("t-{p}")), LogConfig::default()).expect("open");
        log.append(&batch(1, "x", 0)).expect("append");
        log.close().expect("close");
        logs.push(log);
    }
    drop(logs);
    let reopened: Vec<_> = (0..200)
        .map(|p| {
            Log::open(dir.path().join(format!("t-{p}")), LogConfig::default()).expect("reopen")
        })
        .collect();
    assert_eq!(
        reopened.iter().map(|l| l.open_file_count()).sum::<usize>(),
        0
    );
    assert!(reopened.iter().all(|l| l.log_end_offset() == 1));
}

#[test]
fn rejects_garbage_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let junk = vec![0u8; 10];
    assert!(matches!(
        log.append(&junk),
        Err(StorageError::InvalidBatch(_))
    ));
    let empty = Vec::new();
    assert!(log.append(&empty).is_err());
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn read_spans_batches_with_upper_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    let mk = |vals: &[&str]| {
        let mut b = strom_record::BatchBuilder::new(1_700_000_000_000);
        for v in vals {
            b = b.record(Some(b"k"), Some(v.as_bytes()));
        }
        b.build()
    };
    log.append(&mk(&["a", "b", "c"])).expect("append");
    log.append(&mk(&["d"])).expect("append");
    let r = log.read(1, 1 << 20, Some(4)).expect("read");
    assert_eq!(
        split(&r.records).iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![0, 3]
    );
}

/// Disk space reserved ahead of the writes is handed back: a rolled
/// segment, and after a close the active one, hold no blocks past their
/// size, and every record reads back.
#[test]
fn reserved_space_is_handed_back_at_roll_and_close() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config).expect("open");
    let value = "v".repeat(60_000);
    for i in 0..40 {
        log.append(&batch(1, &format!("{value}{i}"), 1000 + i))
            .expect("append");
    }
    assert!(
        log.segment_count() >= 2,
        "segments: {}",
        log.segment_count()
    );
    log.close().expect("close");
    let mut segments = 0;
    for entry in std::fs::read_dir(dir.path()).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            let m = std::fs::metadata(&path).expect("metadata");
            let allocated = m.blocks() * 512;
            assert!(
                allocated < m.len() + (64 << 10),
                "{} holds {allocated} bytes of disk for {} of data",
                path.display(),
                m.len()
            );
            segments += 1;
        }
    }
    assert!(segments >= 2);
    let log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.log_end_offset(), 40);
    let r = log.read(39, 1 << 20, None).expect("read");
    assert_eq!(split(&r.records)[0].0, 39);
}

#[test]
fn a_follower_append_keeps_the_leaders_offsets_and_refuses_overlap() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let leader = Log::open(
        leader_dir.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small()
        },
    )
    .expect("open");
    for i in 0..30 {
        leader
            .append(&batch(1 + i % 3, &format!("r{i}"), 1000))
            .expect("append");
    }
    let copied = leader.read(0, 1 << 20, None).expect("read").records;
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let follower = Log::open(follower_dir.path(), small()).expect("open");
    let info = follower
        .append_replicated(&copied, |_| Ok::<(), ()>(()))
        .expect("append")
        .expect("gate");
    assert_eq!(info.base_offset, 0);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    // Byte for byte the leader's batches: offsets and append times kept.
    let again = follower.read(0, 1 << 20, None).expect("read").records;
    assert_eq!(again, copied);
    // The same bytes again overlap the log and are refused, changing nothing.
    assert!(matches!(
        follower.append_replicated(&copied, |_| Ok::<(), ()>(())),
        Err(StorageError::OffsetOverlap { offset: 0, .. })
    ));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    // A batch may start past the end (the leader's log has a gap there).
    let mut later = batch(2, "later", 2000);
    later[..8].copy_from_slice(&(leader.log_end_offset() + 10).to_be_bytes());
    let info = follower
        .append_replicated(&later, |_| Ok::<(), ()>(()))
        .expect("append")
        .expect("gate");
    assert_eq!(info.base_offset, leader.log_end_offset() + 10);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset() + 12);
}
