//! The single-voter quorum (the single-node default) and recovery of its files.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::*;
use strom_quorum::{DiskError, Quorum, QuorumConfig, QuorumError};

fn single(dir: &std::path::Path) -> QuorumConfig {
    let addr = free_addrs(1)[0];
    let voters = [(1, addr)].into_iter().collect();
    config(1, &voters, addr, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_commits_at_once_and_keeps_state_across_restarts() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let sm = RecordingSm::default();
    let q = Quorum::start(single(dir.path()), sm.clone()).await.unwrap();
    assert_eq!(q.leader(), Some(1));
    let first = q
        .propose(b"e0".to_vec())
        .await
        .expect("commits right after start");
    for i in 1..10 {
        q.propose(format!("e{i}").into_bytes()).await.unwrap();
    }
    let before = sm.entries();
    assert_eq!(before.len(), 10);
    match Quorum::start(single(dir.path()), RecordingSm::default()).await {
        Err(QuorumError::Disk(DiskError::Locked { .. })) => {}
        other => panic!("a second node on the same directory must fail, got {other:?}"),
    }
    assert_eq!(before[0], (first, b"e0".to_vec()));
    let d = q.describe();
    assert_eq!(d.leader_id, Some(1));
    assert_eq!(d.high_watermark, before[9].0 + 1);
    q.shutdown().await;

    let sm2 = RecordingSm::default();
    let q = Quorum::start(single(dir.path()), sm2.clone())
        .await
        .unwrap();
    assert_eq!(sm2.entries(), before, "state replayed before start returns");
    let next = q.propose(b"e10".to_vec()).await.unwrap();
    assert!(next > before[9].0);
    assert_eq!(sm2.len(), 11);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_restores_from_its_snapshot() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = single(dir.path());
    cfg.snapshot_every = 20;
    let sm = RecordingSm::default();
    let q = Quorum::start(cfg.clone(), sm.clone()).await.unwrap();
    for i in 0..70 {
        q.propose(format!("s{i}").into_bytes()).await.unwrap();
    }
    let before = sm.entries();
    q.shutdown().await;
    assert!(cfg.dir.join("snapshot").exists());

    let sm2 = RecordingSm::default();
    let q = Quorum::start(cfg, sm2.clone()).await.unwrap();
    assert_eq!(sm2.restores(), 1);
    assert_eq!(sm2.entries(), before);
    q.propose(b"more".to_vec()).await.unwrap();
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_and_damage_is_reported() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cfg = single(dir.path());
    let sm = RecordingSm::default();
    let q = Quorum::start(cfg.clone(), sm.clone()).await.unwrap();
    for i in 0..5 {
        q.propose(format!("t{i}").into_bytes()).await.unwrap();
    }
    let before = sm.entries();
    q.shutdown().await;

    // A cut write: a header promising 100 bytes, then only 10 of them.
    let log = cfg.dir.join("log");
    let good_len = std::fs::metadata(&log).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[0xab; 14]).unwrap();
    drop(f);

    let sm2 = RecordingSm::default();
    let q = Quorum::start(cfg.clone(), sm2.clone())
        .await
        .expect("a torn tail is recovered");
    assert_eq!(sm2.entries(), before);
    q.propose(b"after".to_vec()).await.unwrap();
    q.shutdown().await;
    assert!(std::fs::metadata(&log).unwrap().len() > good_len);

    // A flipped byte in the first record is damage, not a torn tail.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    match Quorum::start(cfg, RecordingSm::default()).await {
        Err(QuorumError::Disk(DiskError::Corrupt { offset, .. })) => assert_eq!(offset, 0),
        other => panic!("expected a damaged-file error, got {other:?}"),
    }
}
