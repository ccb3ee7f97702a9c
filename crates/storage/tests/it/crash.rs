//! Crash recovery. The promise: after the files are cut or corrupted at any
//! byte position and the log is reopened, every batch written completely
//! before the damage is readable at its original offsets, nothing at or after
//! the damage is, and nothing panics.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use strom_storage::{Log, LogConfig};

use crate::{batch, split};

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// Segment files in order with their sizes.
fn segment_files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("readdir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let len = fs::metadata(&p).expect("stat").len();
            (p, len)
        })
        .collect();
    v.sort();
    v
}

/// Writes `n` batches and returns (base offset, bytes-after-offset, global end position) per batch.
fn fill(dir: &Path, n: usize) -> Vec<(i64, Vec<u8>, u64)> {
    let log = Log::open(dir, cfg()).expect("open");
    let mut out = Vec::new();
    for i in 0..n {
        let b = batch(
            1 + i % 5,
            &format!("crash-{i}-{}", "x".repeat(i % 37)),
            i as i64,
        );
        let info = log.append(&b).expect("append");
        out.push((info.base_offset, b[8..].to_vec(), 0));
    }
    // No close: this is a crash.
    drop(log);
    // Global end position of each batch across segments, in order.
    let mut pos = 0u64;
    let files = segment_files(dir);
    let mut i = 0;
    for (path, len) in &files {
        let bytes = fs::read(path).expect("read");
        for r in strom_record::Batches::new(&bytes) {
            let (h, at, _) = r.expect("valid");
            assert_eq!(h.base_offset, out[i].0);
            out[i].2 = pos + (at + h.total_len()) as u64;
            i += 1;
        }
        pos += len;
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Cut,
    Zero,
    Flip,
    Garbage,
}

/// Damages the global byte position `at` (counting across segments in order)
/// and returns the global position of the first byte that actually changed.
fn damage(dir: &Path, at: u64, how: Damage) -> u64 {
    let mut base = 0;
    for (path, len) in segment_files(dir) {
        if at < base + len {
            let local = at - base;
            let before = fs::read(&path).expect("read");
            let mut bytes = before.clone();
            match how {
                Damage::Cut => bytes.truncate(local as usize),
                Damage::Zero => bytes[local as usize..].iter_mut().for_each(|b| *b = 0),
                Damage::Flip => bytes[local as usize] ^= 0x5a,
                Damage::Garbage => {
                    bytes.truncate(local as usize);
                    bytes.extend((0..300u32).map(|i| (i * 31 % 251) as u8));
                }
            }
            fs::write(&path, &bytes).expect("write");
            let first_diff = (0..before.len().max(bytes.len()))
                .find(|i| before.get(*i) != bytes.get(*i))
                .unwrap_or(before.len());
            return base + first_diff as u64;
        }
        base += len;
    }
    at
}

fn check_after_damage(dir: &Path, written: &[(i64, Vec<u8>, u64)], at: u64, how: Damage) {
    let log = Log::open(dir, cfg()).expect("reopen after damage must not fail");
    let survivors: Vec<_> = written.iter().filter(|w| w.2 <= at).collect();
    let expected_end = survivors
        .last()
        .map_or(0, |w| w.0 + split_count(&w.1) as i64);
    assert_eq!(
        log.log_end_offset(),
        expected_end,
        "damage at {at} ({how:?})"
    );
    let mut offset = 0;
    let mut seen = 0;
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 16, None).expect("read survivors");
        for (base, n, bytes) in split(&r.records) {
            let w = survivors[seen];
            assert_eq!(base, w.0);
            assert_eq!(bytes, w.1);
            seen += 1;
            offset = base + n as i64;
        }
    }
    assert_eq!(seen, survivors.len());
    // The log keeps working after recovery.
    let b = batch(1, "after", 0);
    assert_eq!(log.append(&b).expect("append").base_offset, expected_end);
}

fn split_count(bytes_after_offset: &[u8]) -> i32 {
    // records_count sits at byte 57 of the batch, i.e. 49 after the offset field.
    i32::from_be_bytes([
        bytes_after_offset[49],
        bytes_after_offset[50],
        bytes_after_offset[51],
        bytes_after_offset[52],
    ])
}

#[test]
fn torn_tail_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = fill(dir.path(), 40);
    let total: u64 = segment_files(dir.path()).iter().map(|f| f.1).sum();
    let at = damage(dir.path(), total - 7, Damage::Cut);
    check_after_damage(dir.path(), &written, at, Damage::Cut);
}

#[test]
fn missing_and_corrupt_indexes_are_rebuilt_after_clean_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), cfg()).expect("open");
    for i in 0..200 {
        log.append(&batch(2, &format!("ix{i}"), i)).expect("append");
    }
    log.close().expect("close");
    drop(log);
    let idx: Vec<_> = fs::read_dir(dir.path())
        .expect("readdir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "index"))
        .collect();
    assert!(idx.len() > 2);
    fs::remove_file(&idx[0]).expect("remove");
    fs::write(&idx[1], b"garbage!garbage!").expect("corrupt");
    let mut f = OpenOptions::new().append(true).open(&idx[2]).expect("open");
    f.write_all(&[1, 2, 3]).expect("torn");
    let log = Log::open(dir.path(), cfg()).expect("reopen");
    for off in (0..400).step_by(7) {
        let r = log.read(off, 1, None).expect("read");
        let (base, n, _) = split(&r.records)[0];
        assert!(base <= off && off < base + n as i64);
    }
}

#[test]
fn clean_shutdown_skips_scan_but_unclean_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), cfg()).expect("open");
    for i in 0..30 {
        log.append(&batch(1, &format!("c{i}"), i)).expect("append");
    }
    log.close().expect("close");
    drop(log);
    assert!(dir.path().join("clean_shutdown").exists());
    let log = Log::open(dir.path(), cfg()).expect("reopen");
    assert_eq!(log.log_end_offset(), 30);
    log.append(&batch(1, "d", 0)).expect("append");
    assert!(
        !dir.path().join("clean_shutdown").exists(),
        "marker removed on first write"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn damage_anywhere_keeps_everything_before_it(
        n in 5usize..60,
        frac in 0.0f64..1.0,
        how in prop_oneof![Just(Damage::Cut), Just(Damage::Zero), Just(Damage::Flip), Just(Damage::Garbage)],
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = fill(dir.path(), n);
        let total: u64 = segment_files(dir.path()).iter().map(|f| f.1).sum();
        let mut at = ((total as f64) * frac) as u64;
        if at >= total { at = total - 1; }
        // Flipping a byte of the leader-epoch field (not covered by the CRC)
        // is undetectable by design, as in Kafka; move such flips forward.
        if matches!(how, Damage::Flip) {
            let in_batch = at - written.iter().rev().find(|w| w.2 <= at).map_or(0, |w| w.2);
            if (12..16).contains(&in_batch) { at += 4; }
        }
        let at = damage(dir.path(), at, how);
        check_after_damage(dir.path(), &written, at, how);
    }
}

#[test]
fn untouched_log_closes_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    Log::open(dir.path(), cfg())
        .expect("create")
        .close()
        .expect("close");
    assert!(dir.path().join("clean_shutdown").exists());
}
