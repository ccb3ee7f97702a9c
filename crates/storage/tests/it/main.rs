//! Integration tests of the partition log: one binary for all of them.

mod basics;
mod cleaner;
mod crash;
mod epochs;
mod model;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use strom_record::{BatchBuilder, OwnedRecord};
use strom_storage::Clock;

/// A clock tests move by hand.
pub fn manual_clock(start: i64) -> (Clock, Arc<AtomicI64>) {
    let t = Arc::new(AtomicI64::new(start));
    let t2 = t.clone();
    (Arc::new(move || t2.load(Ordering::SeqCst)), t)
}

/// A batch of `n` records with values `tag-i`, all stamped `ts`.
pub fn batch(n: usize, tag: &str, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts);
    for i in 0..n {
        b = b.push(OwnedRecord {
            value: Some(format!("{tag}-{i}").into_bytes()),
            timestamp: ts,
            ..Default::default()
        });
    }
    b.build()
}

/// Splits raw batches into (base offset, records count, bytes after the base offset).
pub fn split(bytes: &[u8]) -> Vec<(i64, i32, Vec<u8>)> {
    strom_record::Batches::verified(bytes)
        .map(|r| {
            let (h, _, b) = r.expect("valid batch from the log");
            (h.base_offset, h.records_count, b[8..].to_vec())
        })
        .collect()
}
