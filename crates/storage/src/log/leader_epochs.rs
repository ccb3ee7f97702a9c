//! The log's side of leader epochs: the epoch a leader stamps, the cache
//! kept in step with appends and truncations (`crate::epochs`).

use std::sync::atomic::Ordering;

use strom_record::BatchHeader;

use super::Log;
use crate::epochs::{EpochCache, EpochEntry};
use crate::error::Result;

/// Leader epochs (KIP-101): what a leader stamps on its batches, and what
/// replicas compare to find where their logs part.
impl Log {
    /// This node leads the log at `epoch` from now on: appends as leader
    /// carry it, and it starts at the log end (Kafka's `makeLeader`). The
    /// checkpoint is written with the first record at it.
    pub fn lead_at_epoch(&self, epoch: i32) {
        let w = self.writer.lock();
        self.stamp_epoch.store(epoch, Ordering::Release);
        if self.epochs.lock().assign(epoch, w.next_offset) {
            self.epochs_unsaved.store(true, Ordering::Release);
        }
    }

    /// This node no longer leads the log: appends keep their batches' epochs.
    pub fn stop_leading(&self) {
        self.stamp_epoch.store(-1, Ordering::Release);
    }

    /// The newest leader epoch that wrote here (or led from here).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest().map(|e| e.epoch)
    }

    /// The largest epoch at most `epoch` this log knows and the offset its
    /// records end at (OffsetForLeaderEpoch; a Fetch's last fetched epoch);
    /// `(-1, -1)` when there is none.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let c = self.epochs.lock();
        c.end_offset_for(epoch, self.log_end_offset())
    }

    /// The epoch cache's entries, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// Applies `edit` to the epoch cache, saving it when it changed.
    pub(super) fn edit_epochs(&self, edit: impl FnOnce(&mut EpochCache) -> bool) -> Result<()> {
        let mut c = self.epochs.lock();
        if edit(&mut c) | self.epochs_unsaved.swap(false, Ordering::AcqRel) {
            if let Err(e) = c.save(&self.dir) {
                self.epochs_unsaved.store(true, Ordering::Release);
                return Err(self.io(&self.dir, e));
            }
        }
        Ok(())
    }

    /// Folds the epochs of batches about to be written into the cache
    /// (`track`: a stamped or replicated append; others leave it alone).
    pub(super) fn note_epochs(&self, track: bool, headers: &[(usize, BatchHeader)]) -> Result<()> {
        if !track {
            return Ok(());
        }
        self.edit_epochs(|c| {
            headers.iter().fold(false, |changed, (_, h)| {
                c.assign(h.partition_leader_epoch, h.base_offset) | changed
            })
        })
    }
}
