//! The log cleaner. The promise: after a clean, reading the log from its
//! start yields, at their original offsets and in order, the latest record
//! of every key below the cleaned offset (tombstones until
//! `delete.retention.ms` after the clean that first kept them) and every
//! record from there on; a reopen (clean or after a crash) finds the same.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use proptest::prelude::*;
use strom_record::{BatchBuilder, Compression, OwnedRecord};
use strom_storage::cleaner::{AbortedTxn, CleanContext, Cleaner, CleanerConfig, LastRecord};
use strom_storage::{Log, LogConfig};

use crate::manual_clock;

fn compacted() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        retention_ms: -1,
        compact: true,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// A batch of (key, value) records; `None` values are tombstones.
fn kv_batch(records: &[(String, Option<String>)], ts: i64, codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts).compression(codec);
    for (k, v) in records {
        b = b.push(OwnedRecord {
            key: Some(k.clone().into_bytes()),
            value: v.clone().map(String::into_bytes),
            timestamp: ts,
            ..Default::default()
        });
    }
    b.build()
}

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of the log from its start: (offset, key, value).
fn read_all(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pos = log.log_start_offset();
    while pos < log.log_end_offset() {
        let r = log.read(pos, 1 << 20, None).expect("read");
        if r.records.is_empty() {
            break;
        }
        let before = pos;
        for item in strom_record::Batches::verified(&r.records) {
            let (h, _, bytes) = item.expect("valid batch");
            strom_record::for_each_record(bytes, |rec| {
                if rec.offset >= pos {
                    out.push((
                        rec.offset,
                        rec.key.map(<[u8]>::to_vec),
                        rec.value.map(<[u8]>::to_vec),
                    ))
                }
            })
            .expect("readable records");
            pos = pos.max(h.next_offset());
        }
        assert!(pos > before, "read made progress");
    }
    out
}

fn ctx(log: &Log, now: i64) -> CleanContext {
    CleanContext {
        now_ms: now,
        last_stable_offset: log.log_end_offset(),
        ..CleanContext::default()
    }
}

fn cleaner() -> Cleaner {
    Cleaner::new(CleanerConfig {
        dedupe_buffer_bytes: 1 << 20,
        ..CleanerConfig::default()
    })
}

/// What the log must hold after a clean that reached `end`: below it the
/// latest record of each key (a tombstone only while `tombstones_stay`),
/// at and after it everything.
fn expected(written: &[Rec], end: i64, tombstones_stay: bool) -> Vec<Rec> {
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for (o, k, _) in written.iter().filter(|r| r.0 < end) {
        latest.insert(k.clone().expect("keyed"), *o);
    }
    written
        .iter()
        .filter(|(o, k, v)| {
            *o >= end
                || (latest.get(k.as_ref().expect("keyed")) == Some(o)
                    && (v.is_some() || tombstones_stay))
        })
        .cloned()
        .collect()
}

#[test]
fn keeps_the_latest_value_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, _t) = manual_clock(1_000_000);
    let log = Log::open_with_clock(dir.path(), compacted(), clock).expect("open");
    let mut written = Vec::new();
    for i in 0..1_000 {
        let k = format!("key-{}", i % 50);
        let v = format!("value-{i}");
        let info = log
            .append(&kv_batch(
                &[(k.clone(), Some(v.clone()))],
                1_000_000,
                Compression::None,
            ))
            .expect("append");
        written.push((info.base_offset, Some(k.into_bytes()), Some(v.into_bytes())));
    }
    let size_before = log.size_bytes();
    let segs_before = log.segment_count();
    let out = cleaner()
        .clean(&log, &ctx(&log, 1_000_000))
        .expect("clean")
        .expect("something to clean");
    let end = out.end_offset;
    assert!(end > 900, "cleaned up to the active segment: {end}");
    assert_eq!(read_all(&log), expected(&written, end, true));
    assert!(
        log.size_bytes() < size_before / 2,
        "{} -> {}",
        size_before,
        log.size_bytes()
    );
    // Groups are made of segments up to segment.bytes before cleaning: the
    // next clean merges the small cleaned segments.
    for i in 0..100 {
        let k = format!("key-{}", i % 50);
        let info = log
            .append(&kv_batch(
                &[(k.clone(), Some(format!("again-{i}")))],
                1_000_000,
                Compression::None,
            ))
            .expect("append");
        written.push((
            info.base_offset,
            Some(k.into_bytes()),
            Some(format!("again-{i}").into_bytes()),
        ));
    }
    log.roll_now().expect("roll");
    let end = cleaner()
        .clean(&log, &ctx(&log, 1_000_000))
        .expect("clean")
        .expect("cleaned")
        .end_offset;
    assert_eq!(read_all(&log), expected(&written, end, true));
    assert!(
        log.segment_count() < segs_before / 2,
        "{segs_before} -> {}",
        log.segment_count()
    );
    let c = log.cleaner_checkpoint().expect("checkpoint");
    assert_eq!(c.first_dirty_offset, end);
    assert_eq!(c.cleans, 2);
    assert!(c.bytes_reclaimed > 0);
    // Nothing new: nothing to clean.
    assert!(cleaner()
        .clean(&log, &ctx(&log, 1_000_000))
        .expect("clean")
        .is_none());
    // Clean close and crash (no close) both reopen to the same records.
    let after = read_all(&log);
    log.close().expect("close");
    drop(log);
    let log = Log::open(dir.path(), compacted()).expect("reopen");
    assert_eq!(read_all(&log), after);
    drop(log);
    std::fs::remove_file(dir.path().join("clean_shutdown")).expect("unmark");
    let log = Log::open(dir.path(), compacted()).expect("recover");
    assert_eq!(read_all(&log), after, "recovery accepts the offset gaps");
    assert_eq!(log.log_end_offset(), 1_100);
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, t) = manual_clock(5_000);
    let log = Log::open_with_clock(dir.path(), compacted(), clock).expect("open");
    let mut written = Vec::new();
    let put = |written: &mut Vec<Rec>, log: &Log, k: &str, v: Option<&str>| {
        let info = log
            .append(&kv_batch(
                &[(k.into(), v.map(String::from))],
                5_000,
                Compression::Gzip,
            ))
            .expect("append");
        written.push((
            info.base_offset,
            Some(k.as_bytes().to_vec()),
            v.map(|v| v.as_bytes().to_vec()),
        ));
    };
    for i in 0..100 {
        put(&mut written, &log, &format!("k{}", i % 10), Some("v"));
    }
    put(&mut written, &log, "k3", None);
    put(&mut written, &log, "k4", None);
    log.roll_now().expect("roll");
    let mut c = cleaner();
    let out = c
        .clean(&log, &ctx(&log, 5_000))
        .expect("clean")
        .expect("cleaned");
    let end = out.end_offset;
    let first = read_all(&log);
    assert_eq!(first, expected(&written, end, true));
    assert!(
        first.iter().any(|r| r.2.is_none()),
        "tombstones kept at first"
    );
    // Later, past the horizon, a clean (made due by new data) removes them.
    t.store(5_000 + 1_001, Ordering::SeqCst);
    for i in 0..50 {
        put(&mut written, &log, &format!("k{}", i % 10), Some("w"));
    }
    log.roll_now().expect("roll");
    let out = c
        .clean(&log, &ctx(&log, 6_001))
        .expect("clean")
        .expect("cleaned");
    let now = read_all(&log);
    assert_eq!(now, expected(&written, out.end_offset, false));
    assert!(now.iter().all(|r| r.2.is_some()), "no tombstone left");
}

#[test]
fn aborted_transactions_go_and_producer_state_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (clock, _t) = manual_clock(10_000);
    let log = Log::open_with_clock(dir.path(), compacted(), clock).expect("open");
    let txn = |seq: i32, k: &str| {
        BatchBuilder::new(10_000)
            .producer(9, 0, seq)
            .transactional(false)
            .record(Some(k.as_bytes()), Some(b"t"))
            .build()
    };
    let marker = |abort: bool| {
        let key = [0u8, 0, 0, if abort { 0 } else { 1 }];
        BatchBuilder::new(10_000)
            .producer(9, 0, -1)
            .transactional(true)
            .record(Some(&key), Some(&[0, 0, 0, 0, 0, 0]))
            .build()
    };
    let first = log.append(&txn(0, "a")).expect("append").base_offset;
    log.append(&txn(1, "b")).expect("append");
    let abort_at = log.append(&marker(true)).expect("abort").base_offset;
    let committed = log.append(&txn(2, "c")).expect("append").base_offset;
    let commit_at = log.append(&marker(false)).expect("commit").base_offset;
    for i in 0..40 {
        log.append(&kv_batch(
            &[(format!("p{i}"), Some("x".into()))],
            10_000,
            Compression::None,
        ))
        .expect("append");
    }
    log.roll_now().expect("roll");
    let mut context = ctx(&log, 10_000);
    context.aborted = vec![AbortedTxn {
        producer_id: 9,
        first_offset: first,
        last_offset: abort_at,
    }];
    context.producers.insert(
        9,
        LastRecord {
            last_data_offset: Some(committed),
            epoch: 0,
        },
    );
    let mut c = cleaner();
    let out = c.clean(&log, &context).expect("clean").expect("cleaned");
    assert!(out.removed_abort_markers.is_empty(), "its data was there");
    let recs = read_all(&log);
    let offsets: Vec<i64> = recs.iter().map(|r| r.0).collect();
    assert!(
        !offsets.contains(&first) && !offsets.contains(&(first + 1)),
        "aborted data gone"
    );
    assert!(
        offsets.contains(&abort_at) && offsets.contains(&commit_at),
        "markers stay"
    );
    assert!(offsets.contains(&committed), "committed data stays");
    // The next clean finds the abort marker with no data left: it stamps
    // it with a delete horizon; a clean after that horizon drops it, and
    // keeps the producer's last batch.
    let mut clean_at = |now: i64| {
        log.append(&kv_batch(
            &[("p0".into(), Some("y".into()))],
            now,
            Compression::None,
        ))
        .expect("append");
        log.roll_now().expect("roll");
        let mut later = ctx(&log, now);
        later.aborted = context.aborted.clone();
        later.producers = context.producers.clone();
        c.clean(&log, &later).expect("clean").expect("cleaned")
    };
    assert!(clean_at(20_000).removed_abort_markers.is_empty());
    assert!(
        read_all(&log).iter().any(|r| r.0 == abort_at),
        "kept until its horizon"
    );
    assert!(clean_at(20_999).removed_abort_markers.is_empty());
    assert_eq!(clean_at(21_000).removed_abort_markers, vec![(9, abort_at)]);
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    assert!(!offsets.contains(&abort_at));
    assert!(offsets.contains(&committed));
}

#[test]
fn readers_see_whole_batches_while_segments_are_swapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(Log::open(dir.path(), compacted()).expect("open"));
    for i in 0..2_000 {
        log.append(&kv_batch(
            &[(format!("k{}", i % 30), Some(format!("v{i}")))],
            1,
            Compression::Lz4,
        ))
        .expect("append");
    }
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let recs = read_all(&log);
                assert!(recs.windows(2).all(|w| w[0].0 < w[1].0), "offsets in order");
            }
        })
    };
    let mut c = cleaner();
    for _ in 0..5 {
        let _ = c.clean(&log, &ctx(&log, 1)).expect("clean");
    }
    reader.join().expect("reader saw consistent data");
}

#[test]
fn a_full_offset_map_cleans_in_several_rounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), compacted()).expect("open");
    let mut written = Vec::new();
    for i in 0..3_000 {
        let k = format!("key-{}", i % 1_000);
        let info = log
            .append(&kv_batch(
                &[(k.clone(), Some(format!("{i}")))],
                1,
                Compression::None,
            ))
            .expect("append");
        written.push((
            info.base_offset,
            Some(k.into_bytes()),
            Some(format!("{i}").into_bytes()),
        ));
    }
    // A 256-slot map takes 230 keys per round.
    let mut c = Cleaner::new(CleanerConfig {
        dedupe_buffer_bytes: 0,
        ..CleanerConfig::default()
    });
    let mut rounds = 0;
    while let Some(out) = c.clean(&log, &ctx(&log, 1)).expect("clean") {
        rounds += 1;
        assert!(out.keys <= 230);
        assert_eq!(read_all(&log), expected(&written, out.end_offset, true));
        if rounds > 100 {
            panic!("no end to cleaning");
        }
    }
    assert!(rounds > 3, "{rounds}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random keyed writes (with tombstones, in batches of any codec), then
    /// cleans at random points: the log always reads as the model says.
    #[test]
    fn cleaned_log_matches_the_model(
        ops in proptest::collection::vec((0u8..12, proptest::option::weighted(0.85, 0u16..1000), 1usize..4, 0usize..5), 1..300),
        clean_every in 20usize..120,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), compacted()).expect("open");
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        let mut written: Vec<Rec> = Vec::new();
        let mut c = cleaner();
        let mut end = 0;
        for (i, (k, v, n, codec)) in ops.iter().enumerate() {
            let recs: Vec<(String, Option<String>)> = (0..*n)
                .map(|j| (format!("k{}", (*k as usize + j) % 12), v.map(|v| format!("v{v}-{j}"))))
                .collect();
            let info = log.append(&kv_batch(&recs, 1, codecs[*codec])).expect("append");
            for (j, (k, v)) in recs.into_iter().enumerate() {
                written.push((info.base_offset + j as i64, Some(k.into_bytes()), v.map(String::into_bytes)));
            }
            if i % clean_every == clean_every - 1 {
                if let Some(out) = c.clean(&log, &ctx(&log, 1)).expect("clean") {
                    end = out.end_offset;
                }
                prop_assert_eq!(read_all(&log), expected(&written, end, true));
            }
        }
        let before = read_all(&log);
        drop(log);
        let _ = std::fs::remove_file(dir.path().join("clean_shutdown"));
        let log = Log::open(dir.path(), compacted()).expect("recover");
        prop_assert_eq!(read_all(&log), before);
    }
}
