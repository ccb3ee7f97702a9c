//! A partition log: segments in a `BTreeMap` keyed by base offset, one writer
//! at a time, readers that never take the writer's lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use strom_record::{BatchHeader, HEADER_LEN};

use crate::checkpoint::{self, CLEAN_SHUTDOWN};
use crate::config::{FlushPolicy, LogConfig, TimestampType};
use crate::epochs::EpochCache;
use crate::error::{Result, StorageError};
use crate::index::{self, OffsetEntry};
use crate::reserve;
use crate::segment::{push_time, Segment};

mod leader_epochs;
mod open;
mod trim;

/// Milliseconds since the Unix epoch; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The broker time used for `LogAppendTime` topics, or -1 for `CreateTime`.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// Result of a read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, raw, ready to be sent in a Fetch response.
    pub records: Bytes,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// Appends at least this large skip the write-behind buffer.
const WRITE_BEHIND_MAX: usize = 256 * 1024;

/// Longest a group-commit leader waits for in-flight appends before its fsync.
const GROUP_COMMIT_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Decrements the in-flight append count when an append returns.
struct InAppendGuard<'a>(&'a AtomicUsize);

impl Drop for InAppendGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// State only the (single) writer touches.
struct Writer {
    active: Arc<Segment>,
    /// Offset the next append gets (ahead of the published log end offset
    /// while write-behind bytes are pending).
    next_offset: i64,
    /// End of the active segment including pending bytes.
    active_end: u64,
    /// Disk space of the active segment is reserved up to here
    /// (`reserve`); `u64::MAX` once reserving failed for it.
    reserved_end: u64,
    /// Open index files of the active segment.
    offset_index_file: Option<File>,
    time_index_file: Option<File>,
    /// Bytes appended since the last index entry.
    since_index: u64,
    /// Largest timestamp in the active segment so far and its batch's relative offset.
    active_max_ts: Option<(i64, u32)>,
    /// True once the clean-shutdown marker was removed for this session.
    dirty: bool,
    /// True after `close`.
    closed: bool,
    last_flush_ms: i64,
}

/// Bytes appended under `flush.messages=1` that the group-commit leader has
/// not written yet. Appenders only copy into this buffer, so no append ever
/// stalls on a page that an fsync is flushing; the leader writes the whole
/// group with one `pwrite` and then fsyncs once.
#[derive(Default)]
struct Pending {
    /// Segment the bytes belong to (always the active one).
    seg: Option<Arc<Segment>>,
    /// File position of `bytes[0]`.
    start: u64,
    /// Whole batches, offsets assigned.
    bytes: Vec<u8>,
    /// Log end offset once these bytes are written.
    end_offset: i64,
}

/// Group-commit bookkeeping.
struct SyncState {
    /// `written` value known to be on disk.
    durable: u64,
    /// True while a leader is preparing or running an fsync.
    syncing: bool,
    /// Appenders waiting for the running fsync.
    waiting: usize,
}

/// One partition's log. `Send + Sync`; share it with `Arc`.
pub struct Log {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    clock: Clock,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    /// Bytes appended since open; group commit compares against it.
    written: AtomicU64,
    log_end_offset: AtomicI64,
    log_start_offset: AtomicI64,
    offline: AtomicBool,
    /// fsyncs of log data done so far (metrics; shows group commit at work).
    fsyncs: AtomicU64,
    /// Appends under way (writing or waiting for their fsync); the
    /// group-commit leader lets the writing ones land before it fsyncs.
    in_append: AtomicUsize,
    /// Signalled after each fsync.
    synced: Condvar,
    /// Appended but unwritten bytes (write-behind under `flush.messages=1`).
    pending: Mutex<Pending>,
    /// Held while pending bytes are taken and written, so writes stay in order.
    /// Lock order: writer, then write_gate, then pending.
    write_gate: Mutex<()>,
    /// The clean-shutdown marker was present at open.
    opened_clean: bool,
    /// Held by whoever removes or replaces whole segments other than by
    /// rolling: the cleaner (for a whole clean), retention, DeleteRecords,
    /// truncation. Lock order: segment_edit, then writer.
    segment_edit: Mutex<()>,
    /// Leader epochs and where they start (checkpointed). Changed under
    /// the writer lock; lock order: writer, then epochs.
    epochs: Mutex<EpochCache>,
    /// The leader epoch appends as leader are stamped with (-1: batches
    /// keep the epoch they came with).
    stamp_epoch: AtomicI32,
    /// The cache holds an epoch led from the log end that is not saved
    /// yet: saved before the first record written at it (an epoch with no
    /// record is dropped at open anyway), so leading costs no fsync.
    epochs_unsaved: AtomicBool,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .finish()
    }
}

impl Log {
    /// Opens (or creates) the log in `dir` with the wall clock.
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig) -> Result<Log> {
        Self::open_with_clock(dir, config, system_clock())
    }

    /// True when this open found the clean-shutdown marker (no recovery
    /// scan ran): state derived from the log and saved at shutdown is current.
    pub fn opened_clean(&self) -> bool {
        self.opened_clean
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current settings.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the settings (AlterConfigs); takes effect on the next append or retention pass.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// Total bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Number of data fsyncs done since open.
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Number of segment files currently held open.
    pub fn open_file_count(&self) -> usize {
        let w = self.writer.lock();
        let idx = w.offset_index_file.is_some() as usize + w.time_index_file.is_some() as usize;
        drop(w);
        idx + self
            .segments
            .read()
            .values()
            .filter(|s| s.is_open())
            .count()
    }

    fn io(&self, path: &Path, e: std::io::Error) -> StorageError {
        StorageError::io(path, e)
    }

    /// Appends already-validated v2 batches (one or more, concatenated).
    ///
    /// Assigns offsets by writing each batch with a patched copy of its
    /// header (base offset; the max timestamp plus CRC for `LogAppendTime`
    /// logs) and its records as they are, and returns the offsets given.
    /// `batches` itself is left unchanged. The batches are never decoded.
    /// Appends are serialized; reads proceed meanwhile.
    pub fn append(&self, batches: &[u8]) -> Result<AppendInfo> {
        self.append_gated(batches, |_| Ok::<(), std::convert::Infallible>(()))
            .map(|r| r.unwrap_or_else(|never| match never {}))
    }

    /// Like [`Log::append`], but first asks `gate` — with the offset the
    /// first batch will get, while appends are held off — whether to write at
    /// all. The broker checks producer sequences this way: the check and the
    /// write are one atomic step, and a refused or duplicate batch is never
    /// written. `Ok(Err(x))` is the gate's refusal, with nothing appended.
    pub fn append_gated<T>(
        &self,
        batches: &[u8],
        gate: impl FnOnce(i64) -> std::result::Result<(), T>,
    ) -> Result<std::result::Result<AppendInfo, T>> {
        self.append_inner(batches, false, gate)
    }

    /// Appends batches copied from a partition's leader (a follower's
    /// append): each keeps the offsets and timestamps the leader gave it,
    /// and may start past the log's end (the leader's log was compacted or
    /// began later), never below it ([`StorageError::OffsetOverlap`]).
    /// `gate` is called as in [`Log::append_gated`].
    pub fn append_replicated<T>(
        &self,
        batches: &[u8],
        gate: impl FnOnce(i64) -> std::result::Result<(), T>,
    ) -> Result<std::result::Result<AppendInfo, T>> {
        self.append_inner(batches, true, gate)
    }

    fn append_inner<T>(
        &self,
        batches: &[u8],
        keep_offsets: bool,
        gate: impl FnOnce(i64) -> std::result::Result<(), T>,
    ) -> Result<std::result::Result<AppendInfo, T>> {
        if self.offline.load(Ordering::Acquire) {
            return Err(StorageError::Offline {
                path: self.dir.clone(),
            });
        }
        let config = self.config();
        // Check the batch structure before taking the lock.
        let mut count = 0;
        for item in strom_record::Batches::new(batches) {
            item?;
            count += 1;
        }
        if count == 0 {
            return Err(StorageError::InvalidBatch(
                strom_record::BatchError::Truncated {
                    needed: strom_record::HEADER_LEN,
                    available: 0,
                },
            ));
        }
        if batches.len() as u64 > config.segment_bytes.max(1 << 20).min(i32::MAX as u64) {
            return Err(StorageError::BatchTooLarge {
                size: batches.len(),
                segment_bytes: config.segment_bytes,
            });
        }
        let my_end;
        let info;
        self.in_append.fetch_add(1, Ordering::AcqRel);
        let _in_append = InAppendGuard(&self.in_append);
        {
            let mut w = self.writer.lock();
            if w.closed {
                return Err(StorageError::Offline {
                    path: self.dir.clone(),
                });
            }
            let base_offset = if keep_offsets {
                check_replicated(batches, w.next_offset)?
            } else {
                w.next_offset
            };
            if let Err(refused) = gate(base_offset) {
                return Ok(Err(refused));
            }
            let now = (self.clock)();
            self.mark_dirty(&mut w)?;
            // Small appends under per-append fsync go through the write-behind
            // buffer; large ones are bandwidth-bound, so they write directly
            // and overlap the running fsync instead.
            let buffered =
                config.flush == FlushPolicy::EveryAppend && batches.len() < WRITE_BEHIND_MAX;
            if !buffered {
                self.drain_pending()?;
            }
            let append_time =
                if !keep_offsets && config.timestamp_type == TimestampType::LogAppendTime {
                    now
                } else {
                    -1
                };

            // Offsets (and times) go into copies of the headers; the records
            // are written from the caller's buffer as they are.
            let stamp = if keep_offsets {
                -1
            } else {
                self.stamp_epoch.load(Ordering::Acquire)
            };
            let mut next = base_offset;
            let mut pos = 0usize;
            let mut headers = Vec::with_capacity(count);
            let mut patched = Vec::with_capacity(count);
            while pos < batches.len() {
                let h = BatchHeader::parse(&batches[pos..])?;
                let len = h.total_len();
                if keep_offsets {
                    next = h.base_offset;
                }
                let mut header =
                    BatchHeader::patched_header(&batches[pos..pos + len], next, append_time);
                let mut h2 = h;
                if stamp >= 0 {
                    // Outside the CRC: no checksum to redo.
                    BatchHeader::set_partition_leader_epoch(&mut header, stamp);
                    h2.partition_leader_epoch = stamp;
                }
                patched.push(header);
                h2.base_offset = next;
                if append_time >= 0 {
                    h2.max_timestamp = append_time;
                }
                headers.push((pos, h2));
                next = h2.next_offset();
                pos += len;
            }

            // Before the records: a crash between the two leaves an epoch
            // starting at the log end, which the next open drops.
            self.note_epochs(keep_offsets || stamp >= 0, &headers)?;
            let newest_ts = headers
                .iter()
                .map(|(_, h)| h.max_timestamp)
                .max()
                .unwrap_or(now);
            let newest_ts = if newest_ts > 0 { newest_ts } else { now };
            let reserved = w.active_end;
            if self.should_roll(
                &w,
                reserved,
                batches.len() as u64,
                next,
                &config,
                newest_ts,
                now,
            ) {
                self.drain_pending()?;
                self.roll(&mut w, base_offset, now)?;
            }
            let seg = w.active.clone();
            seg.start_roll_clock(newest_ts);
            let start = w.active_end;
            let end = start + batches.len() as u64;
            if end > w.reserved_end {
                let to = (end + reserve::STEP).min(config.segment_bytes.max(end));
                let f = seg.handle(now).map_err(|e| self.io(seg.log_path(), e))?;
                w.reserved_end = if reserve::ahead(&f, start.max(w.reserved_end), to) {
                    to
                } else {
                    u64::MAX
                };
            }
            if buffered {
                let mut p = self.pending.lock();
                if p.bytes.is_empty() {
                    p.seg = Some(seg.clone());
                    p.start = start;
                }
                for ((rel, h), header) in headers.iter().zip(&patched) {
                    p.bytes.extend_from_slice(header);
                    p.bytes
                        .extend_from_slice(&batches[rel + HEADER_LEN..rel + h.total_len()]);
                }
                p.end_offset = next;
            } else {
                let f = seg.handle(now).map_err(|e| self.io(seg.log_path(), e))?;
                write_patched(&f, start, batches, &headers, &patched)
                    .map_err(|e| self.io(seg.log_path(), e))?;
            }

            // Index entries, Kafka-style: one per index.interval.bytes.
            for (rel_pos, h) in &headers {
                let rel_offset = (h.base_offset - seg.base_offset) as u32;
                if w.active_max_ts.is_none_or(|(t, _)| h.max_timestamp > t) {
                    w.active_max_ts = Some((h.max_timestamp, rel_offset));
                }
                if w.since_index > config.index_interval_bytes as u64 {
                    let entry = OffsetEntry {
                        rel_offset,
                        position: (start + *rel_pos as u64) as u32,
                    };
                    let (max_ts, max_rel) =
                        w.active_max_ts.unwrap_or((h.max_timestamp, rel_offset));
                    let time = index::TimeEntry {
                        timestamp: max_ts,
                        rel_offset: max_rel,
                    };
                    let pushed = seg
                        .with_indexes_mut(now, |ix| {
                            ix.offsets.push(entry);
                            push_time(&mut ix.times, max_ts, max_rel)
                        })
                        .map_err(|e| self.io(seg.index_path(), e))?;
                    self.write_index_entries(&mut w, &seg, entry, pushed.then_some(time))?;
                    w.since_index = 0;
                }
                w.since_index += h.total_len() as u64;
                seg.note_timestamp(h.max_timestamp, h.base_offset);
            }

            w.active_end = start + batches.len() as u64;
            w.next_offset = next;
            if !buffered {
                seg.set_size(start + batches.len() as u64);
                self.log_end_offset.store(next, Ordering::Release);
            }
            my_end = self
                .written
                .fetch_add(batches.len() as u64, Ordering::AcqRel)
                + batches.len() as u64;
            info = AppendInfo {
                base_offset,
                last_offset: next - 1,
                log_append_time: append_time,
                log_start_offset: self.log_start_offset(),
            };
        }
        if config.flush == FlushPolicy::EveryAppend {
            self.sync_through(my_end)?;
        }
        Ok(Ok(info))
    }

    /// Waits until everything appended so far is durable, when the log's
    /// policy is to flush every append (a duplicate produce must not be
    /// acknowledged before its original is on disk); otherwise returns at once.
    pub fn wait_durable(&self) -> Result<()> {
        if self.config().flush == FlushPolicy::EveryAppend {
            self.sync_through(self.written.load(Ordering::Acquire))?;
        }
        Ok(())
    }

    fn write_index_entries(
        &self,
        w: &mut Writer,
        seg: &Segment,
        entry: OffsetEntry,
        time: Option<index::TimeEntry>,
    ) -> Result<()> {
        if w.offset_index_file.is_none() {
            w.offset_index_file = Some(
                index::open_for_append(seg.index_path())
                    .map_err(|e| self.io(seg.index_path(), e))?,
            );
        }
        if let Some(f) = w.offset_index_file.as_mut() {
            index::append_entry(f, &entry).map_err(|e| StorageError::io(seg.index_path(), e))?;
        }
        if let Some(e) = time {
            if w.time_index_file.is_none() {
                w.time_index_file = Some(
                    index::open_for_append(seg.time_path())
                        .map_err(|e| self.io(seg.time_path(), e))?,
                );
            }
            if let Some(f) = w.time_index_file.as_mut() {
                index::append_entry(f, &e).map_err(|e| StorageError::io(seg.time_path(), e))?;
            }
        }
        Ok(())
    }

    /// Removes the clean-shutdown marker before the first change of this session.
    fn mark_dirty(&self, w: &mut Writer) -> Result<()> {
        if !w.dirty {
            checkpoint::remove(&self.dir, CLEAN_SHUTDOWN).map_err(|e| self.io(&self.dir, e))?;
            w.dirty = true;
        }
        Ok(())
    }

    /// Kafka's rule: roll when the segment would pass `segment.bytes`, or when
    /// the incoming batch is more than `segment.ms` newer (record time) than
    /// the segment's first batch, so replayed old data does not roll at once.
    #[allow(clippy::too_many_arguments)]
    fn should_roll(
        &self,
        w: &Writer,
        size: u64,
        len: u64,
        next_offset: i64,
        config: &LogConfig,
        incoming_ts: i64,
        now: i64,
    ) -> bool {
        let seg = &w.active;
        if size == 0 {
            return false;
        }
        size + len > config.segment_bytes
            || incoming_ts - seg.roll_start(now) > config.effective_segment_ms()
            || next_offset - seg.base_offset > i32::MAX as i64
    }

    /// Closes the active segment (final time-index entry, fsync) and starts a new one.
    fn roll(&self, w: &mut Writer, base_offset: i64, now: i64) -> Result<()> {
        let old = w.active.clone();
        self.finish_segment(w, &old, now)?;
        self.release_reserve(w, now)?;
        old.sync(now).map_err(|e| {
            self.offline.store(true, Ordering::Release);
            self.io(old.log_path(), e)
        })?;
        let seg =
            Arc::new(Segment::create(&self.dir, base_offset).map_err(|e| self.io(&self.dir, e))?);
        self.segments.write().insert(base_offset, seg.clone());
        w.active = seg;
        w.active_end = 0;
        w.reserved_end = 0;
        w.offset_index_file = None;
        w.time_index_file = None;
        w.since_index = 0;
        w.active_max_ts = None;
        tracing::debug!(log = %self.dir.display(), base_offset, "rolled new segment");
        Ok(())
    }

    /// Hands back the disk space reserved past the active segment's end.
    /// Callers have written pending bytes first, so `active_end` is the
    /// segment's whole size and truncating to it cuts no data.
    fn release_reserve(&self, w: &mut Writer, now: i64) -> Result<()> {
        if w.reserved_end > w.active_end && w.reserved_end != u64::MAX {
            let seg = w.active.clone();
            let f = seg.handle(now).map_err(|e| self.io(seg.log_path(), e))?;
            reserve::release(&f, w.active_end).map_err(|e| self.io(seg.log_path(), e))?;
        }
        w.reserved_end = 0;
        Ok(())
    }

    /// Writes the active segment's final time-index entry and flushes index files.
    fn finish_segment(&self, w: &mut Writer, seg: &Segment, now: i64) -> Result<()> {
        if let Some((ts, off)) = seg
            .max_timestamp(now)
            .map_err(|e| self.io(seg.log_path(), e))?
        {
            let rel = (off - seg.base_offset) as u32;
            let pushed = seg
                .with_indexes_mut(now, |ix| push_time(&mut ix.times, ts, rel))
                .map_err(|e| self.io(seg.time_path(), e))?;
            if pushed {
                if w.time_index_file.is_none() {
                    w.time_index_file = Some(
                        index::open_for_append(seg.time_path())
                            .map_err(|e| self.io(seg.time_path(), e))?,
                    );
                }
                if let Some(f) = w.time_index_file.as_mut() {
                    index::append_entry(
                        f,
                        &index::TimeEntry {
                            timestamp: ts,
                            rel_offset: rel,
                        },
                    )
                    .map_err(|e| StorageError::io(seg.time_path(), e))?;
                }
            }
        }
        Ok(())
    }

    /// Writes any buffered bytes now (callers hold the writer lock, so no
    /// new bytes arrive meanwhile).
    fn drain_pending(&self) -> Result<()> {
        if self.pending.lock().bytes.is_empty() {
            // A leader may still be writing what it took: wait for it.
            drop(self.write_gate.lock());
            return Ok(());
        }
        self.write_pending().map(|_| ())
    }

    /// Takes the buffered bytes, writes them with one `pwrite` and publishes
    /// the new size and log end offset. Returns the segment written.
    fn write_pending(&self) -> Result<Option<Arc<Segment>>> {
        let _gate = self.write_gate.lock();
        let taken = std::mem::take(&mut *self.pending.lock());
        let Some(seg) = taken.seg.filter(|_| !taken.bytes.is_empty()) else {
            return Ok(None);
        };
        let now = (self.clock)();
        let written = seg
            .handle(now)
            .and_then(|f| f.write_all_at(&taken.bytes, taken.start));
        if let Err(e) = written {
            self.offline.store(true, Ordering::Release);
            tracing::error!(log = %self.dir.display(), error = %e, "write failed; taking the log offline");
            return Err(StorageError::Offline {
                path: self.dir.clone(),
            });
        }
        seg.set_size(taken.start + taken.bytes.len() as u64);
        self.log_end_offset
            .store(taken.end_offset, Ordering::Release);
        Ok(Some(seg))
    }

    /// Rolls the active segment now if it holds any data (tests, admin tools).
    pub fn roll_now(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.drain_pending()?;
        if w.active.size() == 0 {
            return Ok(());
        }
        self.mark_dirty(&mut w)?;
        let now = (self.clock)();
        self.roll(&mut w, self.log_end_offset(), now)
    }

    /// Makes everything written up to `target` (a `written` value) durable.
    ///
    /// Group commit: one appender at a time becomes the leader and fsyncs;
    /// the others wait on a condition variable and are all released by that
    /// fsync when it covers their bytes. Before syncing, the leader gives
    /// appenders that are still writing (up to 1 ms) the chance to land, so
    /// one fsync covers the whole group instead of each paying its own.
    fn sync_through(&self, target: u64) -> Result<()> {
        let mut s = self.sync.lock();
        loop {
            if s.durable >= target {
                return Ok(());
            }
            if self.offline.load(Ordering::Acquire) {
                return Err(StorageError::Offline {
                    path: self.dir.clone(),
                });
            }
            if s.syncing {
                s.waiting += 1;
                self.synced.wait(&mut s);
                s.waiting -= 1;
                continue;
            }
            s.syncing = true;
            let deadline = std::time::Instant::now() + GROUP_COMMIT_MAX_WAIT;
            while self.in_append.load(Ordering::Acquire) > 1 + s.waiting
                && std::time::Instant::now() < deadline
            {
                MutexGuard::unlocked(&mut s, || {
                    std::thread::sleep(std::time::Duration::from_micros(20))
                });
            }
            // Read `written` before taking the buffer and picking the segment:
            // anything counted in it is buffered (written below), in the
            // active segment, or in one that `roll` already synced.
            let upto = self.written.load(Ordering::Acquire);
            let outcome = MutexGuard::unlocked(&mut s, || {
                let seg = match self.write_pending() {
                    Ok(Some(seg)) => Some(seg),
                    Ok(None) => self.segments.read().values().next_back().cloned(),
                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                };
                match seg {
                    Some(seg) => {
                        self.fsyncs.fetch_add(1, Ordering::Relaxed);
                        seg.sync((self.clock)())
                    }
                    None => Ok(()),
                }
            });
            s.syncing = false;
            self.synced.notify_all();
            if let Err(e) = outcome {
                self.offline.store(true, Ordering::Release);
                tracing::error!(log = %self.dir.display(), error = %e, "fsync failed; taking the log offline");
                return Err(StorageError::Offline {
                    path: self.dir.clone(),
                });
            }
            s.durable = s.durable.max(upto);
        }
    }

    /// Forces all appended data to disk now.
    pub fn flush(&self) -> Result<()> {
        let target = self.written.load(Ordering::Acquire);
        self.sync_through(target)?;
        self.writer.lock().last_flush_ms = (self.clock)();
        Ok(())
    }

    /// Flushes if the log's policy is `Interval` and the interval has passed.
    pub fn flush_if_due(&self) -> Result<bool> {
        let FlushPolicy::Interval(ms) = self.config.read().flush else {
            return Ok(false);
        };
        let now = (self.clock)();
        let due = now - self.writer.lock().last_flush_ms >= ms as i64;
        let behind = self.sync.lock().durable < self.written.load(Ordering::Acquire);
        if due && behind {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn floor_segment(&self, offset: i64) -> Option<Arc<Segment>> {
        self.segments
            .read()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s.clone())
    }

    fn segments_from(&self, base: i64) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .range(base..)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Reads whole batches starting with the one that holds `offset`.
    ///
    /// Returns at least one whole batch when any exists at or after `offset`
    /// (even one larger than `max_bytes`), never one whose base offset is at
    /// or past `max_offset` (a high watermark, when given). Data comes from one
    /// segment per call, read with one `pread` in the common case.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
    ) -> Result<ReadResult> {
        let leo = self.log_end_offset();
        let lso = self.log_start_offset();
        let out_of_range = || StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: lso,
            log_end_offset: leo,
        };
        if offset < lso || offset > leo {
            return Err(out_of_range());
        }
        let upper = max_offset.unwrap_or(leo).min(leo);
        let empty = ReadResult {
            records: Bytes::new(),
            log_start_offset: lso,
            log_end_offset: leo,
        };
        if offset >= upper {
            return Ok(empty);
        }
        let now = (self.clock)();
        // A segment the cleaner replaced while this read held it is read
        // again from the new segments (it cannot happen twice in a row
        // but for a very slow reader; three tries are plenty).
        let mut tries = 0;
        'again: loop {
            tries += 1;
            let first = self.floor_segment(offset).ok_or_else(out_of_range)?;
            for seg in self.segments_from(first.base_offset) {
                let found = match seg.find_batch(offset, now) {
                    Ok(f) => f,
                    Err(_) if seg.is_retired() && tries < 3 => continue 'again,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(out_of_range())
                    }
                    Err(e) => return Err(self.io(seg.log_path(), e)),
                };
                if let Some((pos, _)) = found {
                    let records = match seg.read_batches(pos, max_bytes, upper, now) {
                        Ok(r) => r,
                        Err(_) if seg.is_retired() && tries < 3 => continue 'again,
                        Err(e) => return Err(self.io(seg.log_path(), e)),
                    };
                    return Ok(ReadResult { records, ..empty });
                }
            }
            return Ok(empty);
        }
    }

    /// The first offset whose record timestamp is `>= ts`, with that timestamp
    /// (ListOffsets by time). `None` when every record is older.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let now = (self.clock)();
        let lso = self.log_start_offset();
        let upper = self.log_end_offset();
        let segs: Vec<_> = self.segments.read().values().cloned().collect();
        for seg in segs {
            let max = seg
                .max_timestamp(now)
                .map_err(|e| self.io(seg.log_path(), e))?;
            if max.is_none_or(|(m, _)| m < ts) {
                continue;
            }
            let start = seg
                .with_indexes(now, |ix| {
                    let rel = index::lookup_time(&ix.times, ts);
                    index::lookup_position(&ix.offsets, rel)
                })
                .map_err(|e| self.io(seg.index_path(), e))?;
            let mut pos = start as u64;
            while let Some((p, h)) = seg
                .scan_headers_from(pos, now, |h| {
                    h.max_timestamp >= ts && h.last_offset() >= lso
                })
                .map_err(|e| self.io(seg.log_path(), e))?
            {
                if h.base_offset >= upper {
                    return Ok(None);
                }
                let bytes = seg
                    .read_at(p, h.total_len(), now)
                    .map_err(|e| self.io(seg.log_path(), e))?;
                match strom_record::first_offset_at_or_after(&bytes, ts) {
                    Ok(Some((off, t))) if off >= lso => return Ok(Some((off, t))),
                    Ok(Some((_, t))) => return Ok(Some((lso, t))),
                    Ok(None) => {}
                    Err(e) => {
                        return Err(StorageError::Corrupt {
                            path: seg.log_path().to_path_buf(),
                            position: p,
                            reason: e.to_string(),
                        })
                    }
                }
                pos = p + h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp, as (offset, timestamp)
    /// (ListOffsets with MAX_TIMESTAMP, KIP-734).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let now = (self.clock)();
        let segs: Vec<_> = self.segments.read().values().cloned().collect();
        let mut best: Option<(i64, i64, Arc<Segment>)> = None;
        for seg in segs {
            if let Some((ts, base)) = seg
                .max_timestamp(now)
                .map_err(|e| self.io(seg.log_path(), e))?
            {
                if best.as_ref().is_none_or(|(t, _, _)| ts > *t) {
                    best = Some((ts, base, seg));
                }
            }
        }
        let Some((ts, base, seg)) = best else {
            return Ok(None);
        };
        if let Some((pos, h)) = seg
            .find_batch(base, now)
            .map_err(|e| self.io(seg.log_path(), e))?
        {
            let bytes = seg
                .read_at(pos, h.total_len(), now)
                .map_err(|e| self.io(seg.log_path(), e))?;
            if let Ok(Some((off, t))) = strom_record::first_offset_at_or_after(&bytes, ts) {
                return Ok(Some((off.max(self.log_start_offset()), t)));
            }
        }
        Ok(Some((base.max(self.log_start_offset()), ts)))
    }

    /// Closes file handles not used for `idle_ms` (the active segment's too;
    /// it reopens on the next append). Bounds open files to busy partitions.
    pub fn release_idle_handles(&self, idle_ms: i64) -> usize {
        let before = (self.clock)() - idle_ms;
        let mut w = self.writer.lock();
        let mut closed = 0;
        if w.active.close_if_idle(before) {
            closed += 1;
            closed += w.offset_index_file.take().is_some() as usize
                + w.time_index_file.take().is_some() as usize;
        }
        drop(w);
        for seg in self.segments.read().values() {
            if seg.close_if_idle(before) {
                closed += 1;
            }
        }
        closed
    }

    /// Flushes everything, writes the final time-index entry and leaves the
    /// clean-shutdown marker so the next open skips recovery.
    pub fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.drain_pending()?;
        if w.closed {
            return Ok(());
        }
        let now = (self.clock)();
        self.release_reserve(&mut w, now)?;
        if w.dirty {
            let active = w.active.clone();
            self.finish_segment(&mut w, &active, now)?;
            for f in [w.offset_index_file.take(), w.time_index_file.take()]
                .into_iter()
                .flatten()
            {
                f.sync_all().map_err(|e| self.io(&self.dir, e))?;
            }
            drop(w);
            self.flush()?;
            w = self.writer.lock();
            checkpoint::write_i64(&self.dir, CLEAN_SHUTDOWN, self.log_end_offset())
                .map_err(|e| self.io(&self.dir, e))?;
        } else if !self.dir.join(CLEAN_SHUTDOWN).exists() {
            // Unchanged since open (which recovered it if needed): mark it
            // clean so the next start does not scan it again.
            checkpoint::write_i64(&self.dir, CLEAN_SHUTDOWN, self.log_end_offset())
                .map_err(|e| self.io(&self.dir, e))?;
        }
        w.closed = true;
        Ok(())
    }
}

/// What the log cleaner (`crate::cleaner`) needs of a log.
impl Log {
    /// The lock whole-segment edits take; the cleaner holds it for a clean.
    pub(crate) fn segment_edit(&self) -> &Mutex<()> {
        &self.segment_edit
    }

    /// The segments in offset order; the last is the active one.
    pub(crate) fn segment_list(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    /// The log's clock.
    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Puts `new` in place of `replaced` (whose files the swap has
    /// replaced or is replacing): readers see one or the other, never both.
    pub(crate) fn install_segment(&self, replaced: &[Arc<Segment>], new: Arc<Segment>) {
        let mut segs = self.segments.write();
        for old in replaced {
            segs.remove(&old.base_offset);
            old.retire();
        }
        segs.insert(new.base_offset, new);
    }
}

/// Batches below this size are assembled (patched header + records) and
/// written with one `pwrite`; larger ones are written as header and records
/// (two `pwrite`s) to spare copying them.
const ASSEMBLE_BELOW: usize = 64 * 1024;

/// Writes `batches` at `start` with each batch's header replaced by its
/// patched copy.
fn write_patched(
    f: &std::fs::File,
    start: u64,
    batches: &[u8],
    headers: &[(usize, BatchHeader)],
    patched: &[[u8; HEADER_LEN]],
) -> std::io::Result<()> {
    if batches.len() < ASSEMBLE_BELOW {
        let mut out = Vec::with_capacity(batches.len());
        for ((rel, h), header) in headers.iter().zip(patched) {
            out.extend_from_slice(header);
            out.extend_from_slice(&batches[rel + HEADER_LEN..rel + h.total_len()]);
        }
        return f.write_all_at(&out, start);
    }
    for ((rel, h), header) in headers.iter().zip(patched) {
        let at = start + *rel as u64;
        f.write_all_at(header, at)?;
        f.write_all_at(
            &batches[rel + HEADER_LEN..rel + h.total_len()],
            at + HEADER_LEN as u64,
        )?;
    }
    Ok(())
}

/// The first offset of replicated `batches`, checked to start at or past
/// `log_end` and to rise from batch to batch.
fn check_replicated(batches: &[u8], log_end: i64) -> Result<i64> {
    let mut next = log_end;
    let mut first = None;
    let mut pos = 0usize;
    while pos < batches.len() {
        let h = BatchHeader::parse(&batches[pos..])?;
        if h.base_offset < next {
            return Err(StorageError::OffsetOverlap {
                offset: h.base_offset,
                log_end_offset: next,
            });
        }
        first.get_or_insert(h.base_offset);
        next = h.next_offset();
        pos += h.total_len();
    }
    Ok(first.unwrap_or(log_end))
}
