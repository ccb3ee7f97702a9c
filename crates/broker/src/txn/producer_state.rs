//! What one partition knows about the producers writing to it: each
//! idempotent producer's epoch and its last five batches (to spot retries
//! and gaps), the transactions still open (which bound the last stable
//! offset) and the aborted ones (which read_committed fetches must skip).
//!
//! The state is a function of the log: [`ProducerState::apply`] folds one
//! batch header in, both when the broker appends and when it replays the log
//! after a restart. A snapshot file saves the replay of everything below its
//! offset; only the log after it is scanned again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use strom_record::BatchHeader;
use thiserror::Error;

/// Batches remembered per producer for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_KEPT: usize = 5;

/// File in the partition directory holding the last snapshot.
pub const SNAPSHOT_FILE: &str = "producer-state.json";

/// Why an idempotent or transactional batch was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SequenceError {
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: a gap, or an old batch no longer cached.
    #[error("out of order sequence number for producer {producer_id} epoch {epoch}: got {first_seq}, expected {expected}")]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// Its epoch.
        epoch: i16,
        /// The batch's first sequence.
        first_seq: i32,
        /// The sequence that would have been in order.
        expected: i32,
    },
    /// INVALID_PRODUCER_EPOCH: a zombie with an older epoch.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch the partition knows.
        current: i16,
    },
    /// INVALID_TXN_STATE: plain batch while a transaction is open, or the reverse.
    #[error("{0}")]
    TxnState(String),
}

impl SequenceError {
    /// The Kafka error code to answer with.
    pub fn code(&self) -> ResponseError {
        match self {
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceError::TxnState(_) => ResponseError::InvalidTxnState,
        }
    }
}

/// What to do with a batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Append,
    /// A retry of a batch already in the log at this base offset: acknowledge, do not write.
    Duplicate {
        /// Where the original landed.
        base_offset: i64,
    },
}

/// The kind of a control batch (its record key's type field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// ABORT marker (type 0).
    Abort,
    /// COMMIT marker (type 1).
    Commit,
}

impl Marker {
    /// Reads the marker type from a control record key (`version: i16, type: i16`).
    pub fn from_key(key: &[u8]) -> Option<Marker> {
        match key.get(2..4)? {
            [0, 0] => Some(Marker::Abort),
            [0, 1] => Some(Marker::Commit),
            _ => None,
        }
    }

    /// The control record key for this marker.
    pub fn key(self) -> [u8; 4] {
        [0, 0, 0, matches!(self, Marker::Commit) as u8]
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

/// One producer as this partition sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// Largest record timestamp of its last batch.
    pub last_timestamp: i64,
    /// Broker time of its last write (expiry is measured from it).
    pub last_update_ms: i64,
    /// First offset of its open transaction on this partition.
    pub txn_first_offset: Option<i64>,
    /// Coordinator epoch of its last transaction marker.
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    /// Sequence number of its last batch's last record, or -1.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }
}

/// A transaction that was aborted: read_committed consumers drop the
/// producer's batches in `first_offset..=last_offset`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// First offset of the transaction on this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// The producer state of one partition.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProducerState {
    entries: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions, in marker order.
    aborted: Vec<AbortedTxn>,
    /// Every batch below this offset has been folded in.
    applied_end: i64,
    /// The largest producer id ever folded in, kept when its producer
    /// expires: the floor for producer ids should `producer-id-block` be lost.
    #[serde(default)]
    highest_producer_id: Option<i64>,
    #[serde(skip)]
    dirty: bool,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_seq(h: &BatchHeader) -> i32 {
    let last = h.base_sequence as i64 + h.last_offset_delta as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

impl ProducerState {
    /// Checks a client batch from an idempotent or transactional producer
    /// (`producer_id >= 0`) against what the partition knows.
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, SequenceError> {
        let Some(e) = self.entries.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired): any sequence starts it.
            return Ok(Verdict::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: e.epoch,
            });
        }
        if h.producer_epoch == e.epoch {
            let (first, last) = (h.base_sequence, last_seq(h));
            if let Some(b) = e
                .batches
                .iter()
                .find(|b| b.first_seq == first && b.last_seq == last)
            {
                return Ok(Verdict::Duplicate {
                    base_offset: b.base_offset,
                });
            }
        }
        if !h.is_transactional() && e.txn_first_offset.is_some() {
            return Err(SequenceError::TxnState(format!(
                "producer {} wrote a non-transactional batch while its transaction is open",
                h.producer_id
            )));
        }
        let expected = match e.batches.back() {
            Some(b) if h.producer_epoch == e.epoch => next_seq(b.last_seq),
            _ => 0,
        };
        if h.base_sequence != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                first_seq: h.base_sequence,
                expected,
            });
        }
        Ok(Verdict::Append)
    }

    /// Folds one batch in: `h.base_offset` is its offset in the log, `marker`
    /// the control record's type for control batches, `now_ms` broker time.
    pub fn apply(&mut self, h: &BatchHeader, marker: Option<Marker>, now_ms: i64) {
        self.applied_end = self.applied_end.max(h.next_offset());
        if h.producer_id < 0 {
            return;
        }
        self.dirty = true;
        self.highest_producer_id = Some(
            self.highest_producer_id
                .map_or(h.producer_id, |m| m.max(h.producer_id)),
        );
        let e = self
            .entries
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: -1,
                last_update_ms: now_ms,
                txn_first_offset: None,
                coordinator_epoch: -1,
            });
        if h.producer_epoch > e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        e.last_update_ms = now_ms;
        if h.is_control() {
            if let Some(first) = e.txn_first_offset.take() {
                self.ongoing.remove(&first);
                if marker == Some(Marker::Abort) {
                    self.aborted.push(AbortedTxn {
                        producer_id: h.producer_id,
                        first_offset: first,
                        last_offset: h.base_offset,
                    });
                }
            }
            return;
        }
        if h.is_transactional() && e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
        e.last_timestamp = h.max_timestamp;
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset: h.base_offset,
        });
        while e.batches.len() > BATCHES_KEPT {
            e.batches.pop_front();
        }
    }

    /// Records the coordinator epoch a marker was written under.
    pub fn note_coordinator_epoch(&mut self, producer_id: i64, coordinator_epoch: i32) {
        if let Some(e) = self.entries.get_mut(&producer_id) {
            e.coordinator_epoch = coordinator_epoch;
        }
    }

    /// First offset of the oldest open transaction: the last stable offset
    /// cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Aborted transactions that overlap `from..=to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset <= to)
            .copied()
            .collect()
    }

    /// The producers, for DescribeProducers.
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.entries.iter().map(|(id, e)| (*id, e))
    }

    /// Offset below which every batch is folded in.
    pub fn applied_end(&self) -> i64 {
        self.applied_end
    }

    /// Forgets producers idle for `expiration_ms` with no open transaction,
    /// and aborted transactions wholly below `log_start`. Returns how many producers went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64, log_start: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms - e.last_update_ms < expiration_ms
        });
        self.aborted.retain(|a| a.last_offset >= log_start);
        let gone = before - self.entries.len();
        if gone > 0 {
            self.dirty = true;
        }
        gone
    }

    /// True when nothing is known (no snapshot needed).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.aborted.is_empty() && self.highest_producer_id.is_none()
    }

    /// The largest producer id this partition ever saw (expired ones too).
    pub fn highest_producer_id(&self) -> Option<i64> {
        self.highest_producer_id
    }

    /// True when changed since the last snapshot.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the snapshot (temp file, rename) as of offset `at`, which must
    /// be at or past every batch folded in.
    pub fn save(&mut self, dir: &Path, at: i64) -> std::io::Result<()> {
        self.applied_end = self.applied_end.max(at);
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
        self.dirty = false;
        Ok(())
    }

    /// Loads the snapshot in `dir` if there is a usable one: it must not
    /// claim offsets past `log_end` (a tail lost in a crash).
    pub fn load(dir: &Path, log_end: i64) -> Option<ProducerState> {
        let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).ok()?;
        match serde_json::from_slice::<ProducerState>(&bytes) {
            Ok(s) if s.applied_end <= log_end => Some(s),
            Ok(s) => {
                tracing::info!(dir = %dir.display(), snapshot = s.applied_end, log_end, "producer snapshot is past the log end; rebuilding from the log");
                None
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "unreadable producer snapshot; rebuilding from the log");
                None
            }
        }
    }

    /// Each producer's last write, for the log cleaner: the offset of its
    /// last data record (`None` when none is tracked) and its epoch. The
    /// cleaner keeps the batch holding it, so sequence checks survive a clean.
    pub fn last_records(&self) -> HashMap<i64, strom_storage::cleaner::LastRecord> {
        self.entries
            .iter()
            .map(|(id, e)| {
                let last = e.batches.back().map(|b| {
                    let span =
                        (b.last_seq as i64 - b.first_seq as i64).rem_euclid(i32::MAX as i64 + 1);
                    b.base_offset + span
                });
                (
                    *id,
                    strom_storage::cleaner::LastRecord {
                        last_data_offset: last,
                        epoch: e.epoch,
                    },
                )
            })
            .collect()
    }

    /// Every aborted transaction still listed (the cleaner drops their data).
    pub fn aborted(&self) -> Vec<strom_storage::cleaner::AbortedTxn> {
        self.aborted
            .iter()
            .map(|a| strom_storage::cleaner::AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
                last_offset: a.last_offset,
            })
            .collect()
    }

    /// Forgets the aborted transaction whose marker at `marker_offset` the
    /// cleaner removed: with its data and marker gone, read_committed
    /// fetches must not list it (a consumer would skip later batches of the
    /// producer waiting for a marker that is no longer there).
    pub fn forget_aborted(&mut self, producer_id: i64, marker_offset: i64) {
        let before = self.aborted.len();
        self.aborted
            .retain(|a| !(a.producer_id == producer_id && a.last_offset == marker_offset));
        if self.aborted.len() != before {
            self.dirty = true;
        }
    }

    /// Drops everything at or past `offset` (the log was truncated there):
    /// the state is rebuilt by the caller from the log.
    pub fn reset_to(&mut self, offset: i64) {
        *self = ProducerState {
            applied_end: offset.min(self.applied_end),
            // Ids of truncated batches were handed out all the same.
            highest_producer_id: self.highest_producer_id,
            dirty: true,
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_record::BatchBuilder;

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> BatchHeader {
        let mut b = BatchBuilder::new(1000).producer(pid, epoch, seq);
        for _ in 0..n {
            b = b.record(None, Some(b"v"));
        }
        if txn {
            b = b.transactional(false);
        }
        BatchHeader::parse(&b.build()).expect("valid batch")
    }

    fn at(mut h: BatchHeader, offset: i64) -> BatchHeader {
        h.base_offset = offset;
        h
    }

    #[test]
    fn in_order_duplicate_and_gap() {
        let mut s = ProducerState::default();
        let b0 = header(7, 0, 0, 3, false);
        assert_eq!(s.check(&b0), Ok(Verdict::Append));
        s.apply(&at(b0, 10), None, 1);
        assert_eq!(s.check(&b0), Ok(Verdict::Duplicate { base_offset: 10 }));
        let b1 = header(7, 0, 3, 2, false);
        assert_eq!(s.check(&b1), Ok(Verdict::Append));
        let gap = header(7, 0, 4, 1, false);
        assert_eq!(
            s.check(&gap).map_err(|e| e.code()),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        let old = header(7, 0, 5, 1, false);
        s.apply(&at(header(7, 1, 0, 1, false), 20), None, 2);
        assert_eq!(
            s.check(&old).map_err(|e| e.code()),
            Err(ResponseError::InvalidProducerEpoch)
        );
        // A new epoch starts at sequence 0.
        assert_eq!(s.check(&header(7, 2, 0, 1, false)), Ok(Verdict::Append));
        assert!(s.check(&header(7, 2, 1, 1, false)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_duplicates() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            let h = header(1, 0, i, 1, false);
            s.apply(&at(h, i as i64), None, 0);
        }
        assert!(s.check(&header(1, 0, 1, 1, false)).is_err());
        assert_eq!(
            s.check(&header(1, 0, 2, 1, false)),
            Ok(Verdict::Duplicate { base_offset: 2 })
        );
    }

    #[test]
    fn transactions_bound_stability_and_record_aborts() {
        let mut s = ProducerState::default();
        s.apply(&at(header(1, 0, 0, 2, true), 5), None, 0);
        s.apply(&at(header(2, 0, 0, 1, true), 7), None, 0);
        assert_eq!(s.first_unstable_offset(), Some(5));
        assert!(s.check(&header(1, 0, 2, 1, false)).is_err());
        let mut marker = header(1, 0, -1, 1, true);
        marker.attributes |= strom_record::ATTR_CONTROL;
        s.apply(&at(marker, 8), Some(Marker::Abort), 0);
        assert_eq!(s.first_unstable_offset(), Some(7));
        assert_eq!(
            s.aborted_between(0, 100),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 5,
                last_offset: 8
            }]
        );
        assert!(s.aborted_between(9, 100).is_empty());
        let mut commit = header(2, 0, -1, 1, true);
        commit.attributes |= strom_record::ATTR_CONTROL;
        s.apply(&at(commit, 9), Some(Marker::Commit), 0);
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.aborted_between(0, 100).len(), 1);
    }

    #[test]
    fn snapshot_round_trip_and_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerState::default();
        s.apply(&at(header(3, 0, 0, 1, false), 0), None, 100);
        s.save(dir.path(), 1).expect("save");
        let loaded = ProducerState::load(dir.path(), 5).expect("snapshot");
        assert_eq!(loaded.applied_end(), 1);
        assert_eq!(
            loaded.check(&header(3, 0, 0, 1, false)),
            Ok(Verdict::Duplicate { base_offset: 0 })
        );
        assert!(
            ProducerState::load(dir.path(), 0).is_none(),
            "snapshot past the log end is refused"
        );
        let mut s = loaded;
        assert_eq!(s.expire(100 + 50, 100, 0), 0);
        assert_eq!(s.expire(100 + 100, 100, 0), 1);
        assert_eq!(s.producers().count(), 0);
        // The expired producer's id is still remembered, and saved.
        assert_eq!(s.highest_producer_id(), Some(3));
        assert!(!s.is_empty());
        s.save(dir.path(), 1).expect("save");
        let again = ProducerState::load(dir.path(), 5).expect("snapshot");
        assert_eq!(again.highest_producer_id(), Some(3));
        s.reset_to(0);
        assert_eq!(s.highest_producer_id(), Some(3));
    }

    #[test]
    fn snapshots_without_the_highest_id_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(SNAPSHOT_FILE),
            r#"{"entries":{},"ongoing":{},"aborted":[],"applied_end":4}"#,
        )
        .expect("write");
        let s = ProducerState::load(dir.path(), 10).expect("old snapshot");
        assert_eq!(s.highest_producer_id(), None);
        assert_eq!(s.applied_end(), 4);
    }
}
