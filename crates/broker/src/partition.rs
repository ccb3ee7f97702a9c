//! One partition: its log and its producer state, kept in step.
//!
//! Appends from idempotent and transactional producers go through
//! [`Partition::append`], which checks sequences and epochs and writes in one
//! atomic step (the log's append gate), so a retried batch is acknowledged
//! with its first offset instead of being written twice. Plain batches skip
//! all of it and cost nothing extra.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use strom_record::{for_each_record, BatchBuilder, BatchHeader, Batches};
use strom_storage::{AppendInfo, Log, LogConfig, StorageError};
use thiserror::Error;

use crate::clock::SharedClock;
use crate::metadata::{LeaderEpoch, NodeId};
use crate::replication::hw_checkpoint;
use crate::replication::leader::{FetchEffects, LeaderState};
use crate::txn::producer_state::{AbortedTxn, Marker, ProducerState, SequenceError, Verdict};
use crate::waiters::Waiters;

/// Why an append did not happen.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The log refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The producer checks refused the batch.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// More than one batch from an idempotent producer in one partition's data.
    #[error("a produce request may carry only one record batch per partition from an idempotent producer")]
    MultipleBatches,
}

/// What became of appended records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written now.
    Written(AppendInfo),
    /// A retry: the same batch is already in the log at `base_offset`.
    Duplicate {
        /// Offset of the original.
        base_offset: i64,
    },
}

/// One partition: its log and what it knows about producers.
#[derive(Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// The log.
    pub log: Arc<Log>,
    /// Idempotent producers and transactions.
    pub producers: Mutex<ProducerState>,
    /// Fetches waiting for this partition to grow, and acks=all produces
    /// waiting for the high watermark to pass their records.
    pub waiters: Waiters,
    /// Who else has the log, when this node leads it.
    replication: Mutex<LeaderState>,
    /// The high watermark when other replicas hold it back; -1 when it is
    /// the log end (no follower in the ISR: one replica, as on one node).
    hw: AtomicI64,
    /// The high watermark last saved in the partition's directory (read at
    /// open; -1 when none is).
    hw_saved: AtomicI64,
    /// The leader epoch this node follows the partition at (-1 when it
    /// does not): replicated appends fetched at another are refused.
    follow_epoch: AtomicI64,
    /// Broker time: producer-state timestamps, ISR lag.
    clock: SharedClock,
}

/// The marker type of a control batch, read from its record key.
fn marker_of(batch: &[u8]) -> Option<Marker> {
    let mut marker = None;
    let _ = for_each_record(batch, |r| {
        if marker.is_none() {
            marker = r.key.and_then(Marker::from_key);
        }
    });
    marker
}

impl Partition {
    /// Opens the log in `dir` and rebuilds the producer state: the snapshot
    /// saved at shutdown, then the log after it.
    pub fn open(
        topic: &str,
        index: i32,
        dir: &Path,
        config: LogConfig,
        clock: SharedClock,
    ) -> Result<Partition, StorageError> {
        let wall = clock.clone();
        let log = Log::open_with_clock(dir, config, Arc::new(move || wall.wall_ms()))?;
        let state = rebuild(&log, false, clock.wall_ms())?;
        Ok(Partition {
            topic: topic.to_string(),
            index,
            log: Arc::new(log),
            producers: Mutex::new(state),
            waiters: Waiters::default(),
            replication: Mutex::new(LeaderState::new()),
            hw: AtomicI64::new(-1),
            hw_saved: AtomicI64::new(hw_checkpoint::read(dir).unwrap_or(-1)),
            follow_epoch: AtomicI64::new(-1),
            clock,
        })
    }

    /// Appends validated batches (blocking under `flush.messages=1`).
    pub fn append(&self, buf: &[u8]) -> Result<Appended, AppendError> {
        let appended = self.append_inner(buf);
        if matches!(appended, Ok(Appended::Written(_))) {
            self.waiters.wake();
        }
        appended
    }

    fn append_inner(&self, buf: &[u8]) -> Result<Appended, AppendError> {
        let first = BatchHeader::parse(buf).map_err(StorageError::InvalidBatch)?;
        if first.producer_id < 0 {
            return Ok(Appended::Written(self.log.append(buf)?));
        }
        if first.total_len() != buf.len() {
            return Err(AppendError::MultipleBatches);
        }
        let now = self.clock.wall_ms();
        let outcome = self.log.append_gated(buf, |base_offset| {
            let mut state = self.producers.lock();
            match state.check(&first) {
                Err(e) => Err(Refusal::Sequence(e)),
                Ok(Verdict::Duplicate { base_offset }) => Err(Refusal::Duplicate(base_offset)),
                Ok(Verdict::Append) => {
                    let mut h = first;
                    h.base_offset = base_offset;
                    state.apply(&h, None, now);
                    Ok(())
                }
            }
        })?;
        match outcome {
            Ok(info) => Ok(Appended::Written(info)),
            Err(Refusal::Duplicate(base_offset)) => {
                // Acknowledge only once the original is as durable as a fresh write would be.
                self.log.wait_durable()?;
                Ok(Appended::Duplicate { base_offset })
            }
            Err(Refusal::Sequence(e)) => Err(e.into()),
        }
    }

    /// Appends a batch written by a coordinator on a producer's behalf
    /// (TxnOffsetCommit): folded into the producer state, never checked.
    pub fn append_coordinator(&self, buf: &mut [u8]) -> Result<AppendInfo, StorageError> {
        let header = BatchHeader::parse(buf).map_err(StorageError::InvalidBatch)?;
        let now = self.clock.wall_ms();
        let outcome = self.log.append_gated(buf, |base_offset| {
            let mut h = header;
            h.base_offset = base_offset;
            self.producers.lock().apply(&h, None, now);
            Ok::<(), std::convert::Infallible>(())
        })?;
        self.waiters.wake();
        Ok(outcome.unwrap_or_else(|never| match never {}))
    }

    /// Writes a transaction marker (control batch) for `producer_id` and
    /// closes its transaction on this partition. Returns the marker's offset.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
    ) -> Result<i64, StorageError> {
        let now = self.clock.wall_ms();
        let mut value = vec![0u8, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let buf = BatchBuilder::new(now)
            .producer(producer_id, epoch, -1)
            .transactional(true)
            .record(Some(&marker.key()), Some(&value))
            .build();
        let header = BatchHeader::parse(&buf).map_err(StorageError::InvalidBatch)?;
        let outcome = self.log.append_gated(&buf, |base_offset| {
            let mut state = self.producers.lock();
            let mut h = header;
            h.base_offset = base_offset;
            state.apply(&h, Some(marker), now);
            state.note_coordinator_epoch(producer_id, coordinator_epoch);
            Ok::<(), std::convert::Infallible>(())
        })?;
        let info = outcome.unwrap_or_else(|never| match never {});
        self.waiters.wake();
        Ok(info.base_offset)
    }

    /// The high watermark: every in-sync replica has the log below it.
    /// Consumers read no further.
    pub fn high_watermark(&self) -> i64 {
        let hw = self.hw.load(Ordering::Acquire);
        if hw < 0 {
            self.log.log_end_offset()
        } else {
            hw
        }
    }

    /// Whether `node` is in the (maximal) ISR.
    pub fn in_isr(&self, node: NodeId) -> bool {
        self.replication.lock().maximal_isr().contains(&node)
    }

    /// Replicas in the (maximal) ISR, this one included.
    pub fn isr_size(&self) -> usize {
        self.replication.lock().maximal_isr().len().max(1)
    }

    /// The image placed this partition anew: led by `leader` at `epoch`
    /// ([`NodeId::NONE`]: offline) with `replicas` and `isr`, on node `me`.
    pub fn set_placement(
        &self,
        me: NodeId,
        leader: NodeId,
        epoch: LeaderEpoch,
        replicas: &[NodeId],
        isr: &[NodeId],
    ) {
        let leading = leader == me;
        let mut state = self.replication.lock();
        let first = !state.placed();
        // Following a live leader (an offline partition has none to fetch
        // from: its log stays as it is until one is chosen).
        let follows = !leading && leader != NodeId::NONE && replicas.contains(&me);
        let new_leadership = first || state.leading() || state.epoch() != epoch;
        // What this node knows to be on every in-sync replica: what it
        // learned in this process (as a follower, or as the leader), else
        // the saved checkpoint.
        let hw_now = self.hw.load(Ordering::Acquire);
        let known_hw = if hw_now >= 0 {
            hw_now
        } else if state.leading() {
            self.log.log_end_offset()
        } else {
            self.hw_saved.load(Ordering::Acquire)
        };
        self.follow_epoch.store(
            if follows { i64::from(epoch.0) } else { -1 },
            Ordering::Release,
        );
        if leading {
            self.log.lead_at_epoch(epoch.0);
        } else {
            self.log.stop_leading();
        }
        if follows && new_leadership && self.log.latest_epoch().is_some() {
            // The log knows its leader epochs: it is kept whole, and the
            // new leader's answer to the first fetch (its diverging epoch)
            // says where it parts from the leader's (KIP-101, KIP-320).
            if known_hw >= 0 {
                self.hw
                    .store(known_hw.min(self.log.log_end_offset()), Ordering::Release);
            }
        } else if follows && new_leadership {
            // A log from before leader epochs: what it holds past the high
            // watermark may not be on the new leader (an old leader's
            // unreplicated tail, or what a follower copied from a leader
            // that then died). Cut it and fetch the rest from the leader.
            let to = known_hw.max(self.log.log_start_offset());
            if to < self.log.log_end_offset() {
                match self.truncate_to(to) {
                    Ok(()) => {
                        tracing::info!(topic = %self.topic, partition = self.index, offset = to, epoch = epoch.0, "following a new leader: truncated the log to the high watermark")
                    }
                    Err(e) => {
                        tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot truncate a follower's log")
                    }
                }
            }
            if to >= 0 {
                self.hw
                    .store(to.min(self.log.log_end_offset()), Ordering::Release);
            }
        }
        state.set_placement(
            me,
            leading,
            epoch,
            replicas,
            isr,
            self.high_watermark(),
            self.clock.wall_ms(),
        );
        // A follower keeps the high watermark its leader gave it, and so
        // does a replica of an offline partition, for when a leader is
        // chosen. A replica moved away keeps its last one too: produces
        // still waiting on it must not see its whole log as replicated.
        if leading {
            self.publish_hw(&state);
        }
        drop(state);
        // Produces waiting for followers that left the ISR may go on now.
        self.waiters.wake();
    }

    /// Cuts the log at `offset` (a follower's divergent tail) and rebuilds
    /// the producer state from what is left.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let cuts_records = offset < self.log.log_end_offset();
        self.log.truncate_to(offset)?;
        if !cuts_records {
            return Ok(());
        }
        let state = rebuild(&self.log, true, self.clock.wall_ms())?;
        *self.producers.lock() = state;
        let leo = self.log.log_end_offset();
        let _ = self
            .hw
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |hw| {
                (hw > leo).then_some(leo)
            });
        Ok(())
    }

    /// As a follower at `epoch`: the leader said this log parts from its
    /// own at `offset` (a Fetch's diverging epoch); cuts it there unless
    /// the partition is followed at another epoch since. Returns whether
    /// it cut.
    pub fn truncate_diverged(&self, offset: i64, epoch: LeaderEpoch) -> Result<bool, StorageError> {
        let _order = self.replication.lock();
        if self.follow_epoch.load(Ordering::Acquire) != i64::from(epoch.0) {
            return Ok(false);
        }
        self.truncate_to(offset)?;
        Ok(true)
    }

    /// Saves the high watermark of a replicated partition if it moved since
    /// the last save (every `replica.high.watermark.checkpoint.interval.ms`).
    pub fn checkpoint_high_watermark(&self) -> std::io::Result<()> {
        if !self.replication.lock().replicated() {
            return Ok(());
        }
        let hw = self.high_watermark();
        if self.hw_saved.load(Ordering::Acquire) == hw {
            return Ok(());
        }
        hw_checkpoint::write(self.log.dir(), hw)?;
        self.hw_saved.store(hw, Ordering::Release);
        Ok(())
    }

    /// As the leader: the ISR without the followers that have not caught up
    /// for `lag_ms` (`replica.lag.time.max.ms`), to propose, with the epoch
    /// it is led at.
    pub fn isr_to_shrink(&self, lag_ms: i64) -> Option<(LeaderEpoch, Vec<NodeId>)> {
        let mut state = self.replication.lock();
        let isr = state.isr_to_shrink(self.clock.wall_ms(), lag_ms)?;
        Some((state.epoch(), isr))
    }

    fn publish_hw(&self, state: &LeaderState) {
        let hw = if state.has_isr_followers() {
            state.high_watermark(self.log.log_end_offset())
        } else {
            -1
        };
        self.hw.store(hw, Ordering::Release);
    }

    /// Follower `node` fetched from `offset`; what that changed. A moved
    /// high watermark wakes the waiting fetches and produces.
    pub fn on_follower_fetch(&self, node: NodeId, offset: i64) -> FetchEffects {
        let mut state = self.replication.lock();
        let effects = state.on_follower_fetch(
            node,
            offset,
            self.log.log_end_offset(),
            self.clock.wall_ms(),
        );
        self.publish_hw(&state);
        drop(state);
        if effects.high_watermark.is_some() {
            self.waiters.wake();
        }
        effects
    }

    /// An ISR proposal for this partition failed: the next fetch retries it.
    pub fn isr_proposal_failed(&self) {
        let mut state = self.replication.lock();
        state.proposal_failed();
        self.publish_hw(&state);
    }

    /// This node leads the partition (per the last placement given).
    pub fn is_leading(&self) -> bool {
        self.replication.lock().leading()
    }

    /// The leader epoch the replication state leads at.
    pub fn replication_epoch(&self) -> LeaderEpoch {
        self.replication.lock().epoch()
    }

    /// As a follower: the leader's high watermark, capped by this log's end.
    /// A response fetched at another epoch than the one followed now (this
    /// node leads since, or follows another leader) is ignored.
    pub fn set_follower_high_watermark(&self, hw: i64, epoch: LeaderEpoch) {
        let _order = self.replication.lock();
        if self.follow_epoch.load(Ordering::Acquire) != i64::from(epoch.0) {
            return;
        }
        let hw = hw.min(self.log.log_end_offset()).max(0);
        self.hw.store(hw, Ordering::Release);
    }

    /// As a follower: appends the whole batches of `records` fetched from
    /// the leader at the leader's offsets, folding them into the producer
    /// state so idempotence and transactions carry on if this node leads.
    /// A partial batch at the end (a fetch cut short) is left for the next
    /// fetch. Returns the new log end offset.
    /// Records fetched at a leader epoch other than the one followed now
    /// (the fetch raced a leader change) are dropped.
    pub fn append_replicated(
        &self,
        records: &[u8],
        epoch: LeaderEpoch,
    ) -> Result<i64, StorageError> {
        let mut end = 0usize;
        for item in Batches::new(records) {
            match item {
                Ok((h, _, _)) => end += h.total_len(),
                Err(_) => break,
            }
        }
        if end == 0 {
            return Ok(self.log.log_end_offset());
        }
        let batches = &records[..end];
        let now = self.clock.wall_ms();
        let outcome = self.log.append_replicated(batches, |_| {
            // Checked under the log's write lock, so a truncation for a
            // new leader cannot slip between the check and the append.
            if self.follow_epoch.load(Ordering::Acquire) != i64::from(epoch.0) {
                return Err(());
            }
            let mut state = self.producers.lock();
            for (h, _, bytes) in Batches::new(batches).flatten() {
                let marker = if h.is_control() {
                    marker_of(bytes)
                } else {
                    None
                };
                state.apply(&h, marker, now);
            }
            Ok(())
        })?;
        if outcome.is_ok() {
            self.waiters.wake();
        }
        Ok(self.log.log_end_offset())
    }

    /// The last stable offset: no open transaction starts below it.
    pub fn last_stable_offset(&self) -> i64 {
        let leo = self.high_watermark();
        self.producers
            .lock()
            .first_unstable_offset()
            .map_or(leo, |f| f.min(leo))
    }

    /// Aborted transactions overlapping `from..=to` (read_committed fetches).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers.lock().aborted_between(from, to)
    }

    /// Saves the producer snapshot if it changed (or always, with `force`).
    pub fn save_producer_state(&self, force: bool) -> std::io::Result<()> {
        let mut state = self.producers.lock();
        if !(state.is_dirty() || (force && !state.is_empty())) {
            return Ok(());
        }
        // Every batch below the published end has passed the gate; batches
        // past it that did are counted by `applied_end`.
        let at = self.log.log_end_offset();
        state.save(self.log.dir(), at)
    }

    /// Forgets idle producers (`producer.id.expiration.ms`).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let log_start = self.log.log_start_offset();
        self.producers
            .lock()
            .expire(now_ms, expiration_ms, log_start)
    }
}

/// Why the append gate turned a batch away.
enum Refusal {
    Duplicate(i64),
    Sequence(SequenceError),
}

/// Calls `f` with every whole batch of `log` from offset `from` on, in
/// order (replays of internal topics and of producer state). Stops at the
/// first unreadable batch; recovery has already cut damage at open.
pub fn scan_batches(
    log: &Log,
    from: i64,
    mut f: impl FnMut(&BatchHeader, &[u8]),
) -> Result<(), StorageError> {
    let mut pos = from.max(log.log_start_offset());
    while pos < log.log_end_offset() {
        let read = log.read(pos, 1 << 20, None)?;
        let before = pos;
        for item in Batches::new(&read.records) {
            let Ok((h, _, bytes)) = item else { break };
            if h.next_offset() <= pos {
                continue;
            }
            f(&h, bytes);
            pos = h.next_offset();
        }
        if pos == before {
            break;
        }
    }
    Ok(())
}

/// Reads the producer state back: snapshot plus the log after it.
/// `truncated`: the log was just cut, so a clean open says nothing.
fn rebuild(log: &Log, truncated: bool, now: i64) -> Result<ProducerState, StorageError> {
    let leo = log.log_end_offset();
    let dir = log.dir();
    let snapshot = ProducerState::load(dir, leo);
    let has_snapshot = snapshot.is_some();
    let mut state = snapshot.unwrap_or_default();
    if !has_snapshot && log.opened_clean() && !truncated {
        // A clean shutdown saves the snapshot whenever there is state.
        return Ok(state);
    }
    let start = state.applied_end().max(log.log_start_offset());
    let mut batches = 0u64;
    let mut pos = start;
    scan_batches(log, start, |h, bytes| {
        let marker = if h.is_control() {
            marker_of(bytes)
        } else {
            None
        };
        state.apply(h, marker, now);
        pos = h.next_offset();
        batches += 1;
    })?;
    if batches > 0 {
        tracing::info!(log = %dir.display(), from = start, to = pos, batches, "rebuilt producer state from the log");
    }
    Ok(state)
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
