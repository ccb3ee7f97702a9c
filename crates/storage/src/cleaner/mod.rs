//! Log compaction: keep the latest record of every key, in bounded space.
//!
//! Kafka's log cleaner, for Strom's [`Log`]:
//!
//! - **What may be cleaned** ([`Log::cleanable_range`]): whole segments
//!   from the start of the log up to the first *uncleanable* offset — the
//!   active segment, the last stable offset (no clean past an open
//!   transaction), and the first segment with records younger than
//!   `min.compaction.lag.ms`. The *dirty* part is what lies past the
//!   cleaner's checkpoint (`cleaner-offset-checkpoint`); a log is due when
//!   dirty bytes make up `min.cleanable.dirty.ratio` of the cleanable bytes,
//!   or its oldest dirty record is older than `max.compaction.lag.ms`.
//! - **A clean** ([`Cleaner::clean`]) builds an [`OffsetMap`] of key →
//!   latest offset over the dirty part (bounded by
//!   `log.cleaner.dedupe.buffer.size`; when it fills, the clean covers the
//!   dirty part up to there and the rest waits for the next one), then
//!   rewrites every segment from the start up to the end of the map, in
//!   groups of at most `segment.bytes`, keeping a record when no later
//!   record has its key. Records keep their offsets; a batch keeps its base
//!   and last offset. Batches whose records all stay are copied as they are;
//!   others are rewritten with the kept records (decompressed into reused
//!   buffers and recompressed with the batch's own codec).
//! - **Tombstones** (null values) stay for `delete.retention.ms` after the
//!   clean that first kept them: that clean stamps the batch with a delete
//!   horizon (KIP-534), a later one drops them once it has passed.
//! - **Transactions**: records of aborted transactions are dropped; a
//!   marker stays while data of its transaction does, then follows the
//!   tombstone rule ([`txn`]). The last batch of every producer still known
//!   to the partition is kept (emptied if need be) so its sequence number
//!   and epoch survive, as is the last batch before the uncleanable offset.
//! - **Crash safety** ([`swap`]): the new segment is written beside the old
//!   ones and installed by a committed swap; a kill at any moment leaves the
//!   old segments or the new one.
//!
//! The cleaner reads the log with `pread` and never takes the writer's
//! lock: appends, reads and the active segment are untouched while it runs.

mod clean;
mod offset_map;
mod plan;
pub(crate) mod swap;
mod txn;

use std::collections::HashMap;
use std::path::Path;

pub use clean::{CleanOutcome, Cleaner, CleanerConfig};
pub use offset_map::OffsetMap;
pub use plan::CleanableRange;
pub use txn::{AbortedTxn, MarkerType};

use crate::error::{Result, StorageError};
use crate::log::Log;
use plan::{PlanInput, SegmentInfo};

/// The cleaner's per-log state file.
pub(crate) const CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// What a broker tells the cleaner about a partition at the time of a clean.
#[derive(Debug, Clone, Default)]
pub struct CleanContext {
    /// Broker time in milliseconds.
    pub now_ms: i64,
    /// The last stable offset (no clean reaches an open transaction).
    pub last_stable_offset: i64,
    /// Aborted transactions of the partition (their data is dropped).
    pub aborted: Vec<AbortedTxn>,
    /// The producers the partition still tracks, by producer id.
    pub producers: HashMap<i64, LastRecord>,
}

/// A producer's last write on the partition: the batch holding it survives cleaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRecord {
    /// Offset of its last data record, `None` when its last batch was a marker.
    pub last_data_offset: Option<i64>,
    /// Its current epoch.
    pub epoch: i16,
}

/// The cleaner's record of a log: where the dirty part starts and what
/// cleaning did so far (for `strom` and operators).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    /// First offset not yet cleaned.
    pub first_dirty_offset: i64,
    /// When the last clean finished (ms since the epoch).
    pub last_clean_ms: i64,
    /// How long it took (ms).
    pub last_clean_duration_ms: i64,
    /// Bytes all cleans removed from the log.
    pub bytes_reclaimed: u64,
    /// Cleans done.
    pub cleans: u64,
}

impl CleanerCheckpoint {
    /// Reads `dir`'s checkpoint; `None` when the log was never cleaned
    /// (or the file is unreadable: the next clean starts over, which only
    /// costs time).
    pub fn read(dir: &Path) -> Option<CleanerCheckpoint> {
        let text = std::fs::read_to_string(dir.join(CHECKPOINT)).ok()?;
        let mut c = CleanerCheckpoint::default();
        let mut has_offset = false;
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            match k.trim() {
                "first_dirty_offset" => {
                    c.first_dirty_offset = v.parse().ok()?;
                    has_offset = true;
                }
                "last_clean_ms" => c.last_clean_ms = v.parse().ok()?,
                "last_clean_duration_ms" => c.last_clean_duration_ms = v.parse().ok()?,
                "bytes_reclaimed" => c.bytes_reclaimed = v.parse().ok()?,
                "cleans" => c.cleans = v.parse().ok()?,
                _ => {}
            }
        }
        has_offset.then_some(c)
    }

    /// Writes the checkpoint durably.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = format!(
            "first_dirty_offset={}\nlast_clean_ms={}\nlast_clean_duration_ms={}\nbytes_reclaimed={}\ncleans={}\n",
            self.first_dirty_offset,
            self.last_clean_ms,
            self.last_clean_duration_ms,
            self.bytes_reclaimed,
            self.cleans
        );
        crate::checkpoint::write_text(dir, CHECKPOINT, &text)
    }
}

/// True when the cleaner has worked on the log in `dir` (its offsets may
/// then have gaps, which recovery must accept).
pub(crate) fn was_cleaned(dir: &Path) -> bool {
    dir.join(CHECKPOINT).exists() || dir.join(swap::SWAP_FILE).exists()
}

impl Log {
    /// The part of the log the cleaner may clean now and how dirty it is;
    /// `last_stable_offset` bounds it (an open transaction is not cleaned).
    pub fn cleanable_range(&self, last_stable_offset: i64, now_ms: i64) -> Result<CleanableRange> {
        let config = self.config();
        let segs = self.segment_list();
        let mut infos = Vec::with_capacity(segs.len());
        for s in &segs {
            let largest = s
                .max_timestamp(now_ms)
                .map_err(|e| StorageError::io(s.log_path(), e))?
                .map(|(t, _)| t);
            infos.push(SegmentInfo {
                base: s.base_offset,
                size: s.size(),
                largest_ts: largest,
                first_batch_ts: (s.size() > 0).then(|| s.roll_start(now_ms)),
            });
        }
        let checkpoint = CleanerCheckpoint::read(self.dir()).map(|c| c.first_dirty_offset);
        Ok(plan::cleanable(
            &infos,
            &PlanInput {
                log_start: self.log_start_offset(),
                log_end: self.log_end_offset(),
                checkpoint,
                last_stable: last_stable_offset.min(self.log_end_offset()),
                min_compaction_lag_ms: config.min_compaction_lag_ms,
                max_compaction_lag_ms: config.max_compaction_lag_ms,
                now_ms,
            },
        ))
    }

    /// The cleaner's checkpoint of this log, when it was ever cleaned.
    pub fn cleaner_checkpoint(&self) -> Option<CleanerCheckpoint> {
        CleanerCheckpoint::read(self.dir())
    }
}

/// What the cleaner has done to one log and how dirty it is, read from its
/// directory without opening the log (safe beside a running broker).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CleanerStatus {
    /// Bytes of all segments.
    pub size_bytes: u64,
    /// Bytes of closed segments wholly below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of closed segments holding dirty offsets.
    pub dirty_bytes: u64,
    /// `dirty / (clean + dirty)`, the ratio `min.cleanable.dirty.ratio` is compared with.
    pub dirty_ratio: f64,
    /// The checkpoint, when the log was ever cleaned.
    pub checkpoint: Option<CleanerCheckpoint>,
}

/// Reads the cleaner status of the log in `dir`.
pub fn inspect(dir: &Path) -> std::io::Result<CleanerStatus> {
    let mut segs: Vec<(i64, u64)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.len() != 20 {
            continue;
        }
        if let Ok(base) = stem.parse::<i64>() {
            segs.push((base, entry.metadata()?.len()));
        }
    }
    segs.sort_unstable();
    let checkpoint = CleanerCheckpoint::read(dir);
    let first_dirty = checkpoint.map_or(i64::MIN, |c| c.first_dirty_offset);
    let mut status = CleanerStatus {
        size_bytes: segs.iter().map(|s| s.1).sum(),
        checkpoint,
        ..CleanerStatus::default()
    };
    // The last segment is the active one, never cleaned.
    for (i, (_, size)) in segs.iter().enumerate().take(segs.len().saturating_sub(1)) {
        let end = segs[i + 1].0;
        if end <= first_dirty {
            status.clean_bytes += size;
        } else {
            status.dirty_bytes += size;
        }
    }
    let total = status.clean_bytes + status.dirty_bytes;
    if total > 0 {
        status.dirty_ratio = status.dirty_bytes as f64 / total as f64;
    }
    Ok(status)
}
