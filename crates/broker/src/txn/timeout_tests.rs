//! Transaction timeouts and transactional-id expiry, driven by a manual
//! clock: no sleeping, and the exact edge of each timeout is checked.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::{TxnConfig, TxnCoordinator};
use crate::clock::ManualClock;
use crate::group::test_support::{config, coordinator_on, topics_of};
use crate::group::GroupCoordinator;

fn txn_config() -> TxnConfig {
    TxnConfig {
        state_replication_factor: 1,
        state_min_isr: 1,
        write_timeout: Duration::from_secs(5),
        max_timeout_ms: 900_000,
        id_expiration_ms: 600_000,
        state_partitions: 3,
        state_segment_bytes: 104_857_600,
        producer_id_expiration_ms: 86_400_000,
    }
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> (GroupCoordinator, TxnCoordinator) {
    let groups = coordinator_on(dir, config(3_600_000), clock);
    let txns = TxnCoordinator::open(topics_of(&groups), dir, txn_config()).expect("txns");
    (groups, txns)
}

#[test]
fn an_open_transaction_is_aborted_once_its_timeout_passes_and_its_producer_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new();
    let (groups, txns) = open(dir.path(), clock.clone());
    let (pid, epoch) = txns
        .init_producer_id(&groups, Some("tx"), 10_000, None, 4)
        .expect("init");
    txns.add_partitions("tx", pid, epoch, vec![("t".into(), 0)], 3)
        .expect("add");
    clock.advance(Duration::from_millis(10_000));
    txns.tick(&groups);
    assert_eq!(
        txns.describe("tx").expect("tx").state,
        "Ongoing",
        "at the limit"
    );
    clock.advance(Duration::from_millis(1));
    txns.tick(&groups);
    let d = txns.describe("tx").expect("tx");
    assert_eq!(d.state, "CompleteAbort");
    assert!(d.epoch > epoch, "the epoch was bumped");
    // The producer that let it time out is fenced.
    let late = txns.end_txn(&groups, "tx", pid, epoch, true, 3);
    assert_eq!(late, Err(ResponseError::ProducerFenced));
}

#[test]
fn an_idle_transactional_id_expires_after_transactional_id_expiration_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new();
    let (groups, txns) = open(dir.path(), clock.clone());
    txns.init_producer_id(&groups, Some("idle"), 10_000, None, 4)
        .expect("init");
    clock.advance(Duration::from_millis(600_000));
    txns.tick(&groups);
    assert!(txns.describe("idle").is_some(), "kept at the limit");
    clock.advance(Duration::from_millis(1));
    txns.tick(&groups);
    assert!(txns.describe("idle").is_none(), "expired past it");
}
