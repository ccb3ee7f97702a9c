//! Cutting a log: its tail (a follower's diverged records), its head
//! (DeleteRecords, `retention.ms` / `retention.bytes`), with the leader-epoch
//! cache and the log start kept in step.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Log;
use crate::checkpoint::{self, LOG_START_OFFSET};
use crate::error::{Result, StorageError};
use crate::index;
use crate::segment::Segment;

impl Log {
    /// Removes every batch from the one holding `offset` on (replication uses
    /// it to drop a diverged tail). The log end offset becomes that batch's base.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let _edit = self.segment_edit.lock();
        let mut w = self.writer.lock();
        self.drain_pending()?;
        if offset >= self.log_end_offset() {
            // Nothing to cut but an epoch led here without a record, which a
            // new leader may not know (Kafka does the same).
            let leo = self.log_end_offset();
            return self.edit_epochs(|c| c.truncate_from_end(leo));
        }
        self.mark_dirty(&mut w)?;
        let now = (self.clock)();
        let mut new_end = offset;
        // Drop whole segments at or after `offset`, keeping at least the first.
        let doomed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let first = *segs.keys().next().unwrap_or(&0);
            let keys: Vec<i64> = segs
                .range(offset..)
                .map(|(k, _)| *k)
                .filter(|k| *k > first)
                .collect();
            keys.iter().filter_map(|k| segs.remove(k)).collect()
        };
        for seg in doomed {
            seg.delete_files().map_err(|e| self.io(seg.log_path(), e))?;
        }
        let seg = self
            .segments
            .read()
            .values()
            .next_back()
            .cloned()
            .expect("at least one segment");
        if offset <= seg.base_offset {
            // Truncate the whole (first) segment and restart it at `offset`.
            let f = seg.handle(now).map_err(|e| self.io(seg.log_path(), e))?;
            f.set_len(0).map_err(|e| self.io(seg.log_path(), e))?;
            seg.set_size(0);
            seg.set_indexes(Default::default());
            self.segments.write().remove(&seg.base_offset);
            seg.delete_files().map_err(|e| self.io(seg.log_path(), e))?;
            let fresh =
                Arc::new(Segment::create(&self.dir, offset).map_err(|e| self.io(&self.dir, e))?);
            self.segments.write().insert(offset, fresh.clone());
            w.active = fresh;
        } else {
            if let Some((pos, h)) = seg
                .find_batch(offset, now)
                .map_err(|e| self.io(seg.log_path(), e))?
            {
                new_end = h.base_offset;
                let f = seg.handle(now).map_err(|e| self.io(seg.log_path(), e))?;
                f.set_len(pos).map_err(|e| self.io(seg.log_path(), e))?;
                seg.set_size(pos);
                let ix = seg
                    .with_indexes_mut(now, |ix| {
                        ix.offsets.retain(|e| (e.position as u64) < pos);
                        let limit = (new_end - seg.base_offset) as u32;
                        ix.times.retain(|e| e.rel_offset < limit);
                        ix.clone()
                    })
                    .map_err(|e| self.io(seg.index_path(), e))?;
                index::write_entries(seg.index_path(), &ix.offsets)
                    .map_err(|e| self.io(seg.index_path(), e))?;
                index::write_entries(seg.time_path(), &ix.times)
                    .map_err(|e| self.io(seg.time_path(), e))?;
            } else {
                new_end = self.log_end_offset().min(offset);
            }
            seg.forget_max_timestamp();
            w.active = seg;
        }
        w.offset_index_file = None;
        w.time_index_file = None;
        w.since_index = 0;
        w.active_max_ts = None;
        w.active_end = w.active.size();
        w.reserved_end = 0;
        w.next_offset = new_end;
        self.log_end_offset.store(new_end, Ordering::Release);
        if self.log_start_offset() > new_end {
            checkpoint::write_i64(&self.dir, LOG_START_OFFSET, new_end)
                .map_err(|e| self.io(&self.dir, e))?;
            self.log_start_offset.store(new_end, Ordering::Release);
        }
        self.edit_epochs(|c| c.truncate_from_end(new_end))?;
        tracing::info!(log = %self.dir.display(), offset, log_end_offset = new_end, "truncated log");
        Ok(())
    }

    /// Advances the log start offset to `offset` (DeleteRecords) and deletes
    /// the segments wholly before it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let _w = self.writer.lock();
        self.drain_pending()?;
        let leo = self.log_end_offset();
        let lso = self.log_start_offset();
        if offset > leo || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: lso,
                log_end_offset: leo,
            });
        }
        if offset <= lso {
            return Ok(lso);
        }
        checkpoint::write_i64(&self.dir, LOG_START_OFFSET, offset)
            .map_err(|e| self.io(&self.dir, e))?;
        self.log_start_offset.store(offset, Ordering::Release);
        self.edit_epochs(|c| c.truncate_from_start(offset))?;
        drop(_w);
        // While the cleaner rewrites segments, the ones below the new start
        // are left for the next retention pass (reads already stop there).
        if let Some(_edit) = self.segment_edit.try_lock() {
            self.delete_segments_below_start()?;
        }
        Ok(offset)
    }

    /// Deletes closed segments whose successor starts at or before the log start offset.
    fn delete_segments_below_start(&self) -> Result<usize> {
        let lso = self.log_start_offset();
        let doomed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let keys: Vec<i64> = segs.keys().copied().collect();
            let mut out = Vec::new();
            for pair in keys.windows(2) {
                if pair[1] <= lso {
                    if let Some(s) = segs.remove(&pair[0]) {
                        out.push(s);
                    }
                }
            }
            out
        };
        for seg in &doomed {
            seg.delete_files().map_err(|e| self.io(seg.log_path(), e))?;
        }
        Ok(doomed.len())
    }

    /// Applies `retention.ms` and `retention.bytes`: deletes the oldest whole
    /// segments that are past either limit (rolling the active segment first
    /// when it is the only one left to delete, as Kafka does). Returns how
    /// many segments were deleted.
    pub fn apply_retention(&self) -> Result<usize> {
        // A log the cleaner is rewriting waits for the next pass.
        let Some(_edit) = self.segment_edit.try_lock() else {
            return Ok(0);
        };
        let config = self.config();
        let now = (self.clock)();
        let segs: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        let total: u64 = segs.iter().map(|s| s.size()).sum();
        let mut remaining = total;
        let mut delete_upto: Option<usize> = None; // index of last segment to delete
        for (i, seg) in segs.iter().enumerate() {
            if seg.size() == 0 {
                // An empty segment the cleaner left goes with its
                // neighbours; the empty active segment ends the pass.
                if i + 1 < segs.len() {
                    delete_upto = Some(i);
                    continue;
                }
                break;
            }
            let by_size = config.retention_bytes >= 0
                && remaining - seg.size() >= config.retention_bytes as u64
                && remaining > config.retention_bytes as u64;
            let by_time = config.retention_ms >= 0
                && seg
                    .max_timestamp(now)
                    .map_err(|e| self.io(seg.log_path(), e))?
                    .is_some_and(|(ts, _)| now - ts > config.retention_ms);
            if by_size || by_time {
                delete_upto = Some(i);
                remaining -= seg.size();
            } else {
                break;
            }
        }
        let Some(last) = delete_upto else {
            return Ok(0);
        };
        let new_start = if last + 1 == segs.len() {
            // Everything goes: roll first so the log keeps an active segment.
            let mut w = self.writer.lock();
            self.drain_pending()?;
            self.mark_dirty(&mut w)?;
            let leo = self.log_end_offset();
            if w.active.size() > 0 {
                self.roll(&mut w, leo, now)?;
            }
            leo
        } else {
            segs[last + 1].base_offset
        };
        {
            let _w = self.writer.lock();
            if new_start > self.log_start_offset() {
                checkpoint::write_i64(&self.dir, LOG_START_OFFSET, new_start)
                    .map_err(|e| self.io(&self.dir, e))?;
                self.log_start_offset.store(new_start, Ordering::Release);
                self.edit_epochs(|c| c.truncate_from_start(new_start))?;
            }
        }
        let n = self.delete_segments_below_start()?;
        if n > 0 {
            tracing::info!(log = %self.dir.display(), segments = n, log_start_offset = new_start, "deleted segments past retention");
        }
        Ok(n)
    }
}
