//! One clean of one log: the offset map over the dirty part, then the
//! segments rewritten group by group and swapped in (see the module docs
//! of `cleaner`).

use std::fs::OpenOptions;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_record::{
    empty_batch, BatchError, BatchHeader, CleanRecord, Compactor, Filtered, HEADER_LEN,
    READ_DECOMPRESSED_LIMIT,
};

use super::offset_map::OffsetMap;
use super::plan::CleanableRange;
use super::swap::{self, Swap};
use super::txn::{MarkerType, TxnTracker};
use super::{CleanContext, CleanerCheckpoint};
use crate::error::{Result, StorageError};
use crate::index::{self, OffsetEntry, TimeEntry};
use crate::log::Log;
use crate::segment::{push_time, Indexes, Segment};

/// Settings of one cleaner (Kafka's `log.cleaner.*`, per thread).
#[derive(Debug, Clone, Copy)]
pub struct CleanerConfig {
    /// Memory for the offset map (`log.cleaner.dedupe.buffer.size` / threads).
    pub dedupe_buffer_bytes: usize,
    /// How full the map may get (`log.cleaner.io.buffer.load.factor`).
    pub load_factor: f64,
    /// Bytes read and written per I/O (`log.cleaner.io.buffer.size` / threads / 2).
    pub io_buffer_bytes: usize,
    /// Read plus write rate limit (`log.cleaner.io.max.bytes.per.second`).
    pub max_io_bytes_per_sec: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: 128 << 20,
            load_factor: 0.9,
            io_buffer_bytes: 256 << 10,
            max_io_bytes_per_sec: f64::MAX,
        }
    }
}

/// What a clean did.
#[derive(Debug, Clone, Default)]
pub struct CleanOutcome {
    /// The range as planned when the clean started.
    pub range: Option<CleanableRange>,
    /// First dirty offset before, and after (the new checkpoint).
    pub first_dirty: i64,
    /// The new first dirty offset.
    pub end_offset: i64,
    /// Segments rewritten, and segments they became.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// Bytes of the segments rewritten.
    pub bytes_read: u64,
    /// Bytes of the segments written.
    pub bytes_written: u64,
    /// Records in the segments rewritten.
    pub records_read: u64,
    /// Records kept.
    pub records_written: u64,
    /// Keys in the offset map.
    pub keys: usize,
    /// Abort markers removed, as (producer id, marker offset): their
    /// transactions are no longer in the log, and read_committed fetches
    /// must stop listing them.
    pub removed_abort_markers: Vec<(i64, i64)>,
    /// Wall time of the clean.
    pub duration: Duration,
}

/// Bounds read plus write bandwidth.
#[derive(Debug)]
struct Throttle {
    rate: f64,
    window_start: Instant,
    bytes: f64,
}

impl Throttle {
    fn new(rate: f64) -> Throttle {
        Throttle {
            rate,
            window_start: Instant::now(),
            bytes: 0.0,
        }
    }

    fn charge(&mut self, bytes: usize) {
        if !(self.rate.is_finite() && self.rate > 0.0) || self.rate >= f64::MAX / 2.0 {
            return;
        }
        self.bytes += bytes as f64;
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let due = self.bytes / self.rate;
        if due > elapsed {
            std::thread::sleep(Duration::from_secs_f64(due - elapsed));
        }
        if elapsed > 1.0 {
            self.window_start = Instant::now();
            self.bytes = 0.0;
        }
    }
}

/// Called with the `(producer id, marker offset)` of the abort markers a
/// swap drops, before it commits.
pub type BeforeSwap<'a> = dyn FnMut(&[(i64, i64)]) -> std::io::Result<()> + 'a;

/// One cleaner thread's state: its offset map and buffers, reused from
/// clean to clean.
#[derive(Debug)]
pub struct Cleaner {
    config: CleanerConfig,
    map: OffsetMap,
    compactor: Compactor,
    /// A rewritten batch.
    batch_out: Vec<u8>,
    /// Output waiting to be written to the cleaned segment.
    write_buf: Vec<u8>,
    throttle: Throttle,
    /// Set to stop a clean at the next read (shutdown); what it wrote is
    /// removed at the next open.
    abort: Arc<AtomicBool>,
}

fn corrupt(seg: &Segment, position: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: seg.log_path().to_path_buf(),
        position,
        reason,
    }
}

/// Calls `f` with each batch of `seg` from byte `pos` on, in order, each
/// checked against its CRC. Reads `chunk` bytes at a time (a larger batch
/// whole).
fn each_batch(
    seg: &Segment,
    mut pos: u64,
    chunk: usize,
    now: i64,
    throttle: &mut Throttle,
    abort: &AtomicBool,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let size = seg.size();
    let io = |e| StorageError::io(seg.log_path(), e);
    while pos < size {
        if abort.load(Ordering::Relaxed) {
            return Err(StorageError::CleanAborted {
                path: seg.log_path().to_path_buf(),
            });
        }
        let left = (size - pos) as usize;
        let buf = seg
            .read_at(pos, chunk.max(HEADER_LEN).min(left), now)
            .map_err(io)?;
        throttle.charge(buf.len());
        let mut used = 0usize;
        while used < buf.len() {
            match BatchHeader::parse_and_verify(&buf[used..]) {
                Ok(h) => {
                    let len = h.total_len();
                    if f(&h, &buf[used..used + len])?.is_break() {
                        return Ok(());
                    }
                    used += len;
                }
                Err(BatchError::Truncated { .. }) if used > 0 => break,
                Err(BatchError::Truncated { needed, .. })
                    if needed >= HEADER_LEN && needed <= left =>
                {
                    let big = seg.read_at(pos, needed, now).map_err(io)?;
                    throttle.charge(big.len());
                    let h = BatchHeader::parse_and_verify(&big)
                        .map_err(|e| corrupt(seg, pos, e.to_string()))?;
                    if f(&h, &big)?.is_break() {
                        return Ok(());
                    }
                    used = needed;
                    break;
                }
                Err(e) => return Err(corrupt(seg, pos + used as u64, e.to_string())),
            }
        }
        if used == 0 {
            return Err(corrupt(
                seg,
                pos,
                "no whole batch where one was expected".into(),
            ));
        }
        pos += used as u64;
    }
    Ok(())
}

/// The marker type of a control batch (read from its first record's key).
fn marker_of(compactor: &mut Compactor, batch: &[u8]) -> MarkerType {
    let mut marker = MarkerType::Other;
    let mut first = true;
    let _ = compactor.for_each(batch, 1 << 20, |r| {
        if first {
            first = false;
            if let Some(k) = r.key.filter(|k| k.len() >= 4) {
                marker = match i16::from_be_bytes([k[2], k[3]]) {
                    0 => MarkerType::Abort,
                    1 => MarkerType::Commit,
                    _ => MarkerType::Other,
                };
            }
        }
    });
    marker
}

/// Writes a cleaned segment's output as it grows, and its indexes.
struct SegmentWriter {
    base: i64,
    file: std::fs::File,
    written: u64,
    indexes: Indexes,
    index_interval: u64,
    since_index: u64,
    max_ts: Option<(i64, i64)>,
}

impl SegmentWriter {
    fn create(dir: &Path, base: i64, index_interval: u32) -> std::io::Result<SegmentWriter> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(swap::cleaned_path(dir, base, "log"))?;
        Ok(SegmentWriter {
            base,
            file,
            written: 0,
            indexes: Indexes::default(),
            index_interval: index_interval as u64,
            since_index: 0,
            max_ts: None,
        })
    }

    /// Notes a batch about to go at `self.written + buffered` in the index.
    fn note(&mut self, h: &BatchHeader, position: u64) {
        let rel = |o: i64| (o - self.base).clamp(0, u32::MAX as i64) as u32;
        if self.max_ts.is_none_or(|(t, _)| h.max_timestamp > t) {
            self.max_ts = Some((h.max_timestamp, h.base_offset));
        }
        if self.since_index > self.index_interval {
            self.indexes.offsets.push(OffsetEntry {
                rel_offset: rel(h.base_offset),
                position: position as u32,
            });
            if let Some((ts, off)) = self.max_ts {
                push_time(&mut self.indexes.times, ts, rel(off));
            }
            self.since_index = 0;
        }
        self.since_index += h.total_len() as u64;
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if !buf.is_empty() {
            self.file.write_all_at(buf, self.written)?;
            self.written += buf.len() as u64;
            buf.clear();
        }
        Ok(())
    }

    /// Syncs the log file and writes the indexes, durably.
    fn finish(mut self, dir: &Path) -> std::io::Result<(std::fs::File, u64, Indexes)> {
        if let Some((ts, off)) = self.max_ts {
            let rel = (off - self.base).clamp(0, u32::MAX as i64) as u32;
            push_time(&mut self.indexes.times, ts, rel);
        }
        self.file.sync_all()?;
        index::write_entries_durably::<OffsetEntry>(
            &swap::cleaned_path(dir, self.base, "index"),
            &self.indexes.offsets,
        )?;
        index::write_entries_durably::<TimeEntry>(
            &swap::cleaned_path(dir, self.base, "timeindex"),
            &self.indexes.times,
        )?;
        Ok((self.file, self.written, self.indexes))
    }
}

/// Splits the segments to rewrite into groups that each become one
/// segment: at most `max_bytes` together and an offset range that fits a
/// segment's 32-bit relative offsets.
fn group_segments(
    segs: &[Arc<Segment>],
    end_offset: i64,
    max_bytes: u64,
) -> Vec<Vec<Arc<Segment>>> {
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let mut group = vec![segs[i].clone()];
        let mut size = segs[i].size();
        i += 1;
        while i < segs.len() {
            let next = &segs[i];
            let last_offset = segs.get(i + 1).map_or(end_offset, |n| n.base_offset) - 1;
            if size + next.size() > max_bytes
                || (next.size() > 0 && last_offset - group[0].base_offset > i32::MAX as i64)
            {
                break;
            }
            size += next.size();
            group.push(next.clone());
            i += 1;
        }
        groups.push(group);
    }
    groups
}

impl Cleaner {
    /// A cleaner with `config`'s budgets.
    pub fn new(config: CleanerConfig) -> Cleaner {
        Cleaner {
            map: OffsetMap::new(config.dedupe_buffer_bytes, config.load_factor),
            compactor: Compactor::new(),
            batch_out: Vec::new(),
            write_buf: Vec::new(),
            throttle: Throttle::new(config.max_io_bytes_per_sec),
            abort: Arc::new(AtomicBool::new(false)),
            config,
        }
    }

    /// A flag that, once set, stops the clean under way (and every later one).
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    /// Changes the budgets (dynamic broker configs), effective from the next clean.
    pub fn set_config(&mut self, config: CleanerConfig) {
        if config.dedupe_buffer_bytes != self.config.dedupe_buffer_bytes
            || config.load_factor != self.config.load_factor
        {
            self.map = OffsetMap::new(config.dedupe_buffer_bytes, config.load_factor);
        }
        self.throttle = Throttle::new(config.max_io_bytes_per_sec);
        self.config = config;
    }

    /// Cleans `log` if there is something to clean. `Ok(None)` when there
    /// is nothing to do, or another task is editing its segments.
    pub fn clean(&mut self, log: &Log, ctx: &CleanContext) -> Result<Option<CleanOutcome>> {
        self.clean_with(log, ctx, &mut |_| Ok(()))
    }

    /// [`Cleaner::clean`], calling `before_swap` with the abort markers a
    /// group of segments drops, before its swap commits: the caller forgets
    /// those aborted transactions durably first (their data is already
    /// gone, so forgetting them early is harmless; listing one whose marker
    /// is gone would make read_committed consumers skip the producer's
    /// later batches).
    pub fn clean_with(
        &mut self,
        log: &Log,
        ctx: &CleanContext,
        before_swap: &mut BeforeSwap<'_>,
    ) -> Result<Option<CleanOutcome>> {
        let Some(_edit) = log.segment_edit().try_lock() else {
            return Ok(None);
        };
        let started = Instant::now();
        let range = log.cleanable_range(ctx.last_stable_offset, ctx.now_ms)?;
        if range.dirty_bytes == 0 {
            return Ok(None);
        }
        let result = self.clean_range(log, ctx, range, started, before_swap);
        // Large buffers from big batches are not kept between cleans.
        self.map.clear();
        self.compactor = Compactor::new();
        self.batch_out = Vec::new();
        self.write_buf = Vec::new();
        result.map(Some)
    }

    fn clean_range(
        &mut self,
        log: &Log,
        ctx: &CleanContext,
        range: CleanableRange,
        started: Instant,
        before_swap: &mut BeforeSwap<'_>,
    ) -> Result<CleanOutcome> {
        let config = log.config();
        let dir = log.dir().to_path_buf();
        let segs = log.segment_list();
        let non_active = &segs[..segs.len().saturating_sub(1)];
        let end_offset = self.build_map(non_active, ctx, &range)?;
        let mut outcome = CleanOutcome {
            range: Some(range),
            first_dirty: range.first_dirty,
            end_offset,
            keys: self.map.len(),
            ..CleanOutcome::default()
        };
        if end_offset <= range.first_dirty {
            return Ok(outcome);
        }
        let previous = CleanerCheckpoint::read(&dir);
        if previous.is_none() {
            // Before the first swap: recovery must then accept offset gaps.
            CleanerCheckpoint {
                first_dirty_offset: range.first_dirty,
                ..CleanerCheckpoint::default()
            }
            .write(&dir)
            .map_err(|e| StorageError::io(&dir, e))?;
        }
        let to_clean: Vec<Arc<Segment>> = non_active
            .iter()
            .filter(|s| s.base_offset < end_offset)
            .cloned()
            .collect();
        let mut tracker = TxnTracker::new(ctx.aborted.clone());
        for group in group_segments(&to_clean, end_offset, config.segment_bytes) {
            let removed_before = outcome.removed_abort_markers.len();
            let written =
                self.clean_group(log, &dir, &group, ctx, &range, &mut tracker, &mut outcome)?;
            before_swap(&outcome.removed_abort_markers[removed_before..])
                .map_err(|e| StorageError::io(&dir, e))?;
            Self::swap_in(log, &dir, &group, written)?;
        }
        outcome.duration = started.elapsed();
        let mut checkpoint = previous.unwrap_or_default();
        checkpoint.first_dirty_offset = end_offset;
        checkpoint.last_clean_ms = log.now();
        checkpoint.last_clean_duration_ms = outcome.duration.as_millis() as i64;
        checkpoint.bytes_reclaimed += outcome.bytes_read.saturating_sub(outcome.bytes_written);
        checkpoint.cleans += 1;
        checkpoint
            .write(&dir)
            .map_err(|e| StorageError::io(&dir, e))?;
        Ok(outcome)
    }

    /// Puts the keys of the dirty part in the map; returns the offset the
    /// map covers up to (exclusive): the end of this clean.
    fn build_map(
        &mut self,
        segs: &[Arc<Segment>],
        ctx: &CleanContext,
        range: &CleanableRange,
    ) -> Result<i64> {
        self.map.clear();
        let first_dirty = range.first_dirty;
        let bound = range.first_uncleanable;
        let mut tracker = TxnTracker::new(ctx.aborted.clone());
        let chunk = self.config.io_buffer_bytes;
        for (i, seg) in segs.iter().enumerate() {
            let next_base = segs.get(i + 1).map_or(bound, |n| n.base_offset);
            if seg.base_offset >= bound || next_base <= first_dirty {
                continue;
            }
            let start = if seg.base_offset < first_dirty {
                match seg
                    .find_batch(first_dirty, ctx.now_ms)
                    .map_err(|e| StorageError::io(seg.log_path(), e))?
                {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            let mut full = false;
            let (map, compactor) = (&mut self.map, &mut self.compactor);
            each_batch(
                seg,
                start,
                chunk,
                ctx.now_ms,
                &mut self.throttle,
                &self.abort,
                |h, bytes| {
                    if h.is_control() {
                        let marker = marker_of(compactor, bytes);
                        tracker.on_control_batch(h.producer_id, h.last_offset(), marker);
                    } else if !tracker.on_data_batch(
                        h.producer_id,
                        h.is_transactional(),
                        h.last_offset(),
                    ) {
                        compactor
                            .for_each(bytes, READ_DECOMPRESSED_LIMIT, |r| {
                                if full || r.offset < first_dirty {
                                    return;
                                }
                                if let Some(k) = r.key {
                                    if !map.put(k, r.offset) {
                                        full = true;
                                    }
                                }
                            })
                            .map_err(|e| corrupt(seg, 0, e.to_string()))?;
                        if full {
                            return Ok(ControlFlow::Break(()));
                        }
                    }
                    if h.last_offset() >= first_dirty {
                        map.update_latest_offset(h.last_offset());
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            if full {
                break;
            }
            // Offsets the cleaner removed earlier leave gaps: cover them too.
            self.map.update_latest_offset(next_base - 1);
        }
        Ok((self.map.latest_offset() + 1).min(bound))
    }

    #[allow(clippy::too_many_arguments)]
    fn clean_group(
        &mut self,
        log: &Log,
        dir: &Path,
        group: &[Arc<Segment>],
        ctx: &CleanContext,
        range: &CleanableRange,
        tracker: &mut TxnTracker,
        outcome: &mut CleanOutcome,
    ) -> Result<Written> {
        let config = log.config();
        let now = ctx.now_ms;
        let horizon = now.saturating_add(config.delete_retention_ms);
        let base = group[0].base_offset;
        let io_dir = |e| StorageError::io(dir, e);
        let mut out =
            SegmentWriter::create(dir, base, config.index_interval_bytes).map_err(io_dir)?;
        let chunk = self.config.io_buffer_bytes;
        let map = &self.map;
        let latest = map.latest_offset();
        for seg in group {
            outcome.bytes_read += seg.size();
            let written_before = out.written + self.write_buf.len() as u64;
            let (compactor, batch_out, write_buf) = (
                &mut self.compactor,
                &mut self.batch_out,
                &mut self.write_buf,
            );
            each_batch(
                seg,
                0,
                chunk,
                now,
                &mut self.throttle,
                &self.abort,
                |h, bytes| {
                    outcome.records_read += h.records_count.max(0) as u64;
                    let (can_discard, marker) = if h.is_control() {
                        let marker = marker_of(compactor, bytes);
                        (
                            tracker.on_control_batch(h.producer_id, h.last_offset(), marker),
                            marker,
                        )
                    } else {
                        let aborted = tracker.on_data_batch(
                            h.producer_id,
                            h.is_transactional(),
                            h.last_offset(),
                        );
                        (aborted, MarkerType::Other)
                    };
                    let discard_records = if h.is_control() {
                        can_discard && h.delete_horizon_ms().is_some_and(|t| t <= now)
                    } else {
                        can_discard
                    };
                    let last_of_producer = h.producer_id >= 0
                        && ctx.producers.get(&h.producer_id).is_some_and(|l| {
                            match l.last_data_offset {
                                Some(o) => h.last_offset() == o,
                                None => h.is_control() && h.producer_epoch == l.epoch,
                            }
                        });
                    let retain_empty =
                        last_of_producer || h.next_offset() == range.first_uncleanable;
                    let control = h.is_control();
                    let keep = |r: &CleanRecord<'_>| {
                        if discard_records {
                            return false;
                        }
                        if control || r.offset > latest {
                            return true;
                        }
                        match r.key {
                            Some(k) => {
                                r.offset >= map.get(k)
                                    && (r.has_value
                                        || h.delete_horizon_ms().is_none_or(|t| now < t))
                            }
                            None => false,
                        }
                    };
                    let filtered = compactor
                        .filter(
                            bytes,
                            READ_DECOMPRESSED_LIMIT,
                            horizon,
                            can_discard && control,
                            keep,
                            batch_out,
                        )
                        .map_err(|e| corrupt(seg, 0, e.to_string()))?;
                    let position = out.written + write_buf.len() as u64;
                    match filtered {
                        Filtered::Unchanged => {
                            out.note(h, position);
                            write_buf.extend_from_slice(bytes);
                            outcome.records_written += h.records_count.max(0) as u64;
                        }
                        Filtered::Rewritten { kept } => {
                            let nh = BatchHeader::parse(batch_out)
                                .map_err(|e| corrupt(seg, 0, e.to_string()))?;
                            out.note(&nh, position);
                            write_buf.extend_from_slice(batch_out);
                            outcome.records_written += kept as u64;
                        }
                        Filtered::NoneKept => {
                            if marker == MarkerType::Abort {
                                outcome
                                    .removed_abort_markers
                                    .push((h.producer_id, h.base_offset));
                            }
                            if retain_empty {
                                let e = empty_batch(bytes)
                                    .map_err(|e| corrupt(seg, 0, e.to_string()))?;
                                let eh = BatchHeader::parse(&e)
                                    .map_err(|e| corrupt(seg, 0, e.to_string()))?;
                                out.note(&eh, position);
                                write_buf.extend_from_slice(&e);
                            }
                        }
                    }
                    if write_buf.len() >= chunk {
                        out.flush(write_buf).map_err(io_dir)?;
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            // Writes count against the rate limit too (reads were charged as read).
            let written = out.written + self.write_buf.len() as u64 - written_before;
            self.throttle.charge(written as usize);
        }
        out.flush(&mut self.write_buf).map_err(io_dir)?;
        let (file, size, indexes) = out.finish(dir).map_err(io_dir)?;
        outcome.bytes_written += size;
        outcome.segments_in += group.len();
        outcome.segments_out += 1;
        Ok(Written {
            file,
            size,
            indexes,
        })
    }

    /// Commits the swap of `group` for its cleaned copy and installs it.
    fn swap_in(log: &Log, dir: &Path, group: &[Arc<Segment>], w: Written) -> Result<()> {
        let io_dir = |e| StorageError::io(dir, e);
        let base = group[0].base_offset;
        let swap = Swap {
            base,
            replaces: group.iter().map(|s| s.base_offset).collect(),
        };
        swap::commit(dir, &swap).map_err(io_dir)?;
        let new = Arc::new(Segment::cleaned(
            dir,
            base,
            w.size,
            w.file,
            w.indexes,
            log.now(),
        ));
        log.install_segment(group, new);
        swap::finish(dir, &swap).map_err(io_dir)?;
        tracing::debug!(log = %dir.display(), base, replaced = group.len(), bytes = w.size, "swapped in a cleaned segment");
        Ok(())
    }
}

/// A cleaned segment on disk, not yet swapped in.
struct Written {
    file: std::fs::File,
    size: u64,
    indexes: Indexes,
}
