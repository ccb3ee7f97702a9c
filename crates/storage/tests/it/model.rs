//! Random sequences of operations checked against a plain in-memory model.

use proptest::prelude::*;
use strom_storage::{FlushPolicy, Log, LogConfig, StorageError};

use crate::{batch, split};

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, size: usize },
    Read { pick: usize, max_bytes: usize },
    Roll,
    Truncate { pick: usize },
    DeleteBefore { pick: usize },
    RetainBytes { keep: u64 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..300).prop_map(|(records, size)| Op::Append { records, size }),
        4 => (any::<usize>(), 1usize..2000).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => Just(Op::Roll),
        1 => any::<usize>().prop_map(|pick| Op::Truncate { pick }),
        1 => any::<usize>().prop_map(|pick| Op::DeleteBefore { pick }),
        1 => (0u64..3000).prop_map(|keep| Op::RetainBytes { keep }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// The model: batches in order as (base offset, record count, bytes after the offset).
#[derive(Default)]
struct Model {
    batches: Vec<(i64, i32, Vec<u8>)>,
    start: i64,
    end: i64,
}

impl Model {
    fn containing(&self, offset: i64) -> Option<usize> {
        self.batches.iter().position(|b| b.0 + b.1 as i64 > offset)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60), fsync_each in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        // Both write paths: direct writes, and write-behind with group commit.
        let flush = if fsync_each { FlushPolicy::EveryAppend } else { FlushPolicy::Os };
        let cfg = LogConfig { segment_bytes: 1500, index_interval_bytes: 200, retention_ms: -1, flush, ..LogConfig::default() };
        let mut log = Log::open(dir.path(), cfg.clone()).expect("open");
        let mut m = Model::default();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { records, size } => {
                    let b = batch(records, &format!("{i}{}", "v".repeat(size)), i as i64);
                    let info = log.append(&b).expect("append");
                    prop_assert_eq!(info.base_offset, m.end);
                    m.batches.push((m.end, records as i32, b[8..].to_vec()));
                    m.end += records as i64;
                }
                Op::Read { pick, max_bytes } => {
                    let span = (m.end - m.start + 1).max(1) as usize;
                    let offset = m.start + (pick % span) as i64;
                    let r = log.read(offset, max_bytes, None).expect("read in range");
                    let got = split(&r.records);
                    match m.containing(offset) {
                        None => prop_assert!(got.is_empty()),
                        Some(ix) => {
                            prop_assert!(!got.is_empty(), "read at {} returned nothing", offset);
                            for (k, g) in got.iter().enumerate() {
                                prop_assert_eq!(g, &m.batches[ix + k]);
                            }
                        }
                    }
                    if m.start > 0 {
                        let below = log.read(m.start - 1, max_bytes, None);
                        let oor = matches!(below, Err(StorageError::OffsetOutOfRange { .. }));
                        prop_assert!(oor, "read below start must be out of range");
                    }
                }
                Op::Roll => log.roll_now().expect("roll"),
                Op::Truncate { pick } => {
                    let span = (m.end - m.start + 1).max(1) as usize;
                    let offset = m.start + (pick % span) as i64;
                    log.truncate_to(offset).expect("truncate");
                    if let Some(ix) = m.containing(offset) {
                        m.end = m.batches[ix].0;
                        m.batches.truncate(ix);
                    }
                    m.start = m.start.min(m.end);
                    prop_assert_eq!(log.log_end_offset(), m.end);
                }
                Op::DeleteBefore { pick } => {
                    let span = (m.end - m.start + 1).max(1) as usize;
                    let offset = m.start + (pick % span) as i64;
                    log.delete_records_before(offset).expect("delete records");
                    m.start = m.start.max(offset);
                    m.batches.retain(|b| b.0 + b.1 as i64 > m.start);
                    prop_assert_eq!(log.log_start_offset(), m.start);
                }
                Op::RetainBytes { keep } => {
                    log.set_config(LogConfig { retention_bytes: keep as i64, ..cfg.clone() });
                    log.apply_retention().expect("retention");
                    log.set_config(cfg.clone());
                    // Retention removes whole segments from the front: sync the model.
                    m.start = log.log_start_offset();
                    m.batches.retain(|b| b.0 + b.1 as i64 > m.start);
                    prop_assert!(log.log_end_offset() == m.end);
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().expect("close");
                    }
                    drop(log);
                    log = Log::open(dir.path(), cfg.clone()).expect("reopen");
                    prop_assert_eq!(log.log_end_offset(), m.end);
                    prop_assert_eq!(log.log_start_offset(), m.start);
                }
            }
        }
    }
}
