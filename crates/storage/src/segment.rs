//! One segment of a partition log: `<base>.log` plus its two sparse indexes.
//!
//! The `.log` file holds whole v2 record batches back to back, exactly as
//! produced (with the base offsets the log assigned). A segment opens its file
//! lazily and can drop the handle when idle, so a broker with many quiet
//! partitions keeps few descriptors. Readers see only `size` bytes, which the
//! writer publishes after the bytes are in the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use strom_record::{BatchError, BatchHeader, Batches, HEADER_LEN, LOG_OVERHEAD};

use crate::index::{self, OffsetEntry, TimeEntry};

/// Kafka's file name for a segment: the base offset as 20 zero-padded digits.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// The sparse indexes of a segment, once loaded.
#[derive(Debug, Default, Clone)]
pub(crate) struct Indexes {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

/// What a scan of a segment's batches found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Byte position just after the last good batch.
    pub valid_end: u64,
    /// Offset after the last good batch (the segment base when empty).
    pub next_offset: i64,
    /// Indexes rebuilt from the good batches.
    pub indexes: Indexes,
    /// Largest timestamp and the base offset of its batch.
    pub max_timestamp: Option<(i64, i64)>,
    /// Why the scan stopped before the end of the file, if it did.
    pub damage: Option<String>,
}

const UNKNOWN: i64 = i64::MIN;

/// One segment. Shared by the writer and readers through `Arc`.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_path: PathBuf,
    /// Bytes readers may see: always the end of a whole batch.
    size: AtomicU64,
    /// Lazily opened handle; `None` when closed for idleness.
    file: Mutex<Option<Arc<File>>>,
    /// Milliseconds (caller's clock) of the last use of the handle.
    last_used: AtomicI64,
    /// `None` until first needed.
    indexes: RwLock<Option<Indexes>>,
    /// Cached (max timestamp, base offset of its batch), when known.
    max_ts: Mutex<Option<(i64, i64)>>,
    /// Max timestamp of the segment's first batch (`segment.ms` counts from it), or UNKNOWN.
    roll_start: AtomicI64,
    /// Set when the cleaner replaced this segment: its path now names
    /// another file, so it must never be opened by path again (readers
    /// still holding its open handle read the old bytes to the end).
    retired: AtomicBool,
}

impl Segment {
    fn new(dir: &Path, base_offset: i64, size: u64) -> Self {
        let stem = file_stem(base_offset);
        Segment {
            base_offset,
            log_path: dir.join(format!("{stem}.log")),
            index_path: dir.join(format!("{stem}.index")),
            time_path: dir.join(format!("{stem}.timeindex")),
            size: AtomicU64::new(size),
            file: Mutex::new(None),
            last_used: AtomicI64::new(0),
            indexes: RwLock::new(None),
            max_ts: Mutex::new(None),
            roll_start: AtomicI64::new(UNKNOWN),
            retired: AtomicBool::new(false),
        }
    }

    /// A segment the cleaner wrote: `file` is its open `.cleaned` file (the
    /// handle stays valid when the file is renamed into place) and `indexes`
    /// the indexes written with it.
    pub fn cleaned(
        dir: &Path,
        base_offset: i64,
        size: u64,
        file: File,
        indexes: Indexes,
        now_ms: i64,
    ) -> Self {
        let seg = Segment::new(dir, base_offset, size);
        seg.last_used.store(now_ms, Ordering::Relaxed);
        *seg.file.lock() = Some(Arc::new(file));
        *seg.indexes.write() = Some(indexes);
        seg
    }

    /// Marks the segment replaced (see `retired`).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// True once the cleaner replaced this segment.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    fn retired_error(&self) -> io::Error {
        io::Error::other(format!(
            "segment {} was replaced by the log cleaner",
            self.log_path.display()
        ))
    }

    /// Creates a new empty segment on disk (files included). No handle is
    /// kept: the file opens on first use, so creating many partitions at
    /// once holds no descriptor for any of them.
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Self> {
        let seg = Segment::new(dir, base_offset, 0);
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&seg.log_path)?;
        File::create(&seg.index_path)?;
        File::create(&seg.time_path)?;
        *seg.indexes.write() = Some(Indexes::default());
        Ok(seg)
    }

    /// Describes an existing segment file of `size` bytes without opening it.
    pub fn existing(dir: &Path, base_offset: i64, size: u64) -> Self {
        Segment::new(dir, base_offset, size)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    pub fn time_path(&self) -> &Path {
        &self.time_path
    }

    /// Bytes visible to readers.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    /// The open handle, opening the file if needed.
    pub fn handle(&self, now_ms: i64) -> io::Result<Arc<File>> {
        self.last_used.store(now_ms, Ordering::Relaxed);
        let mut g = self.file.lock();
        if let Some(f) = g.as_ref() {
            return Ok(f.clone());
        }
        if self.is_retired() {
            return Err(self.retired_error());
        }
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.log_path)?,
        );
        *g = Some(f.clone());
        Ok(f)
    }

    /// Drops the handle if it was not used since `before_ms`. Returns true if closed.
    pub fn close_if_idle(&self, before_ms: i64) -> bool {
        if self.last_used.load(Ordering::Relaxed) < before_ms {
            return self.file.lock().take().is_some();
        }
        false
    }

    /// True when the file handle is open.
    pub fn is_open(&self) -> bool {
        self.file.lock().is_some()
    }

    /// Reads `len` bytes at `pos`, short only at the end of the file.
    pub fn read_at(&self, pos: u64, len: usize, now_ms: i64) -> io::Result<Vec<u8>> {
        let f = self.handle(now_ms)?;
        read_exact_or_short(&f, pos, len as u64)
    }

    /// Runs `f` with the loaded indexes, loading (or rebuilding) them first.
    pub fn with_indexes<R>(&self, now_ms: i64, f: impl FnOnce(&Indexes) -> R) -> io::Result<R> {
        {
            let g = self.indexes.read();
            if let Some(ix) = g.as_ref() {
                return Ok(f(ix));
            }
        }
        let loaded = self.load_indexes(now_ms)?;
        let mut g = self.indexes.write();
        let ix = g.get_or_insert(loaded);
        Ok(f(ix))
    }

    /// Mutates the loaded indexes (writer only).
    pub fn with_indexes_mut<R>(
        &self,
        now_ms: i64,
        f: impl FnOnce(&mut Indexes) -> R,
    ) -> io::Result<R> {
        if self.indexes.read().is_none() {
            let loaded = self.load_indexes(now_ms)?;
            let mut g = self.indexes.write();
            if g.is_none() {
                *g = Some(loaded);
            }
        }
        let mut g = self.indexes.write();
        let ix = g.get_or_insert_with(Indexes::default);
        Ok(f(ix))
    }

    /// Installs indexes computed elsewhere (recovery).
    pub fn set_indexes(&self, ix: Indexes) {
        *self.indexes.write() = Some(ix);
    }

    /// Loads the index files, or rebuilds them from the log when they are
    /// missing or fail the sanity check.
    fn load_indexes(&self, now_ms: i64) -> io::Result<Indexes> {
        if self.is_retired() {
            return Err(self.retired_error());
        }
        let size = self.size();
        let offsets = index::read_entries::<OffsetEntry>(&self.index_path)?;
        let times = index::read_entries::<TimeEntry>(&self.time_path)?;
        if let (Some(offsets), Some(times)) = (offsets, times) {
            if index::offset_entries_sane(&offsets, size) && index::time_entries_sane(&times) {
                return Ok(Indexes { offsets, times });
            }
        }
        tracing::warn!(segment = %self.log_path.display(), "index missing or damaged; rebuilding from the log");
        let scan = self.scan(false, true, 4096, now_ms)?;
        index::write_entries(&self.index_path, &scan.indexes.offsets)?;
        index::write_entries(&self.time_path, &scan.indexes.times)?;
        Ok(scan.indexes)
    }

    /// Walks the batches from the start, rebuilding indexes. With `verify`,
    /// also checks CRCs and offset order, and stops at the first bad batch.
    /// Offsets must follow each other exactly unless `gaps` (a log the
    /// cleaner has worked on, where removed records leave gaps).
    pub fn scan(
        &self,
        verify: bool,
        gaps: bool,
        index_interval: u32,
        now_ms: i64,
    ) -> io::Result<ScanOutcome> {
        let f = self.handle(now_ms)?;
        let file_len = f.metadata()?.len();
        let mut out = ScanOutcome {
            valid_end: 0,
            next_offset: self.base_offset,
            indexes: Indexes::default(),
            max_timestamp: None,
            damage: None,
        };
        let mut since_index: u64 = 0;
        let mut pos: u64 = 0;
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_start: u64 = 0;
        const CHUNK: u64 = 1 << 20;
        while pos < file_len {
            // Make sure the header is in the chunk.
            let in_chunk = |chunk: &Vec<u8>, from: u64, len: u64| {
                from >= chunk_start && from + len <= chunk_start + chunk.len() as u64
            };
            let header_len = (HEADER_LEN as u64).min(file_len - pos);
            if !in_chunk(&chunk, pos, header_len) {
                chunk = read_exact_or_short(&f, pos, CHUNK.min(file_len - pos))?;
                chunk_start = pos;
            }
            let rel = (pos - chunk_start) as usize;
            let head = &chunk[rel..];
            let h = match BatchHeader::parse(head) {
                Ok(h) => h,
                Err(BatchError::Truncated { needed, .. })
                    if (needed as u64) <= file_len - pos && needed >= HEADER_LEN =>
                {
                    // The batch is bigger than what is in the chunk: read it whole.
                    chunk = read_exact_or_short(&f, pos, needed as u64)?;
                    chunk_start = pos;
                    match BatchHeader::parse(&chunk) {
                        Ok(h) => h,
                        Err(e) => {
                            out.damage = Some(e.to_string());
                            break;
                        }
                    }
                }
                Err(e) => {
                    out.damage = Some(e.to_string());
                    break;
                }
            };
            let rel = (pos - chunk_start) as usize;
            let bytes = &chunk[rel..rel + h.total_len()];
            if verify {
                if let Err(e) = BatchHeader::parse_and_verify(bytes) {
                    out.damage = Some(e.to_string());
                    break;
                }
                // The log leaves no gaps (but where the cleaner removed
                // records), so a base offset other than the next one (or,
                // with gaps, below it) means the un-checksummed field is damaged.
                if h.base_offset < out.next_offset || (!gaps && h.base_offset != out.next_offset) {
                    out.damage = Some(format!(
                        "batch base offset {} where {} was expected",
                        h.base_offset, out.next_offset
                    ));
                    break;
                }
                if h.last_offset() - self.base_offset > u32::MAX as i64 {
                    out.damage = Some(format!(
                        "offset {} does not fit this segment",
                        h.last_offset()
                    ));
                    break;
                }
            }
            let rel_offset = (h.base_offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
            if out.max_timestamp.is_none_or(|(t, _)| h.max_timestamp > t) {
                out.max_timestamp = Some((h.max_timestamp, h.base_offset));
            }
            if since_index > index_interval as u64 {
                out.indexes.offsets.push(OffsetEntry {
                    rel_offset,
                    position: pos as u32,
                });
                if let Some((ts, off)) = out.max_timestamp {
                    let rel = (off - self.base_offset).clamp(0, u32::MAX as i64) as u32;
                    push_time(&mut out.indexes.times, ts, rel);
                }
                since_index = 0;
            }
            since_index += h.total_len() as u64;
            out.next_offset = h.next_offset();
            pos += h.total_len() as u64;
            out.valid_end = pos;
        }
        if let Some((ts, off)) = out.max_timestamp {
            push_time(
                &mut out.indexes.times,
                ts,
                (off - self.base_offset).clamp(0, u32::MAX as i64) as u32,
            );
        }
        Ok(out)
    }

    /// Finds the first batch whose last offset is `>= offset`: its position and header.
    pub fn find_batch(&self, offset: i64, now_ms: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let start = self.with_indexes(now_ms, |ix| index::lookup_position(&ix.offsets, rel))?;
        self.scan_headers_from(start as u64, now_ms, |h| h.last_offset() >= offset)
    }

    /// Walks batch headers from `pos` until `stop` says yes.
    pub fn scan_headers_from(
        &self,
        mut pos: u64,
        now_ms: i64,
        mut stop: impl FnMut(&BatchHeader) -> bool,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        let size = self.size();
        while pos + (HEADER_LEN as u64) <= size {
            let head = self.read_at(pos, HEADER_LEN, now_ms)?;
            let h = match header_only(&head) {
                Some(h) => h,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "bad batch header at byte {pos} of {}",
                            self.log_path.display()
                        ),
                    ))
                }
            };
            if stop(&h) {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Reads whole batches from `pos`: as many as fit in `max_bytes`, but
    /// always at least one; none whose base offset is `>= max_offset`.
    pub fn read_batches(
        &self,
        pos: u64,
        max_bytes: usize,
        max_offset: i64,
        now_ms: i64,
    ) -> io::Result<Bytes> {
        let size = self.size();
        if pos >= size {
            return Ok(Bytes::new());
        }
        let avail = size - pos;
        let want = (max_bytes.max(HEADER_LEN) as u64).min(avail) as usize;
        let mut buf = self.read_at(pos, want, now_ms)?;
        let mut end = 0usize;
        for item in Batches::new(&buf) {
            match item {
                Ok((h, at, _)) if h.base_offset < max_offset => end = at + h.total_len(),
                _ => break,
            }
        }
        if end == 0 {
            // The first batch is larger than max_bytes: return it whole.
            let Some(h) = header_only(&buf) else {
                return Ok(Bytes::new());
            };
            if h.base_offset >= max_offset || h.total_len() as u64 > avail {
                return Ok(Bytes::new());
            }
            buf = self.read_at(pos, h.total_len(), now_ms)?;
            if buf.len() < h.total_len() {
                return Ok(Bytes::new());
            }
            end = h.total_len();
        }
        buf.truncate(end);
        Ok(Bytes::from(buf))
    }

    /// Largest timestamp in the segment and the base offset of its batch.
    pub fn max_timestamp(&self, now_ms: i64) -> io::Result<Option<(i64, i64)>> {
        if let Some(m) = *self.max_ts.lock() {
            return Ok(Some(m));
        }
        // The last time-index entry covers everything up to its batch; scan the rest.
        let (mut best, from) = self.with_indexes(now_ms, |ix| {
            let last = ix.times.last().copied();
            let best = last.map(|t| (t.timestamp, self.base_offset + t.rel_offset as i64));
            let from = last.map_or(0, |t| index::lookup_position(&ix.offsets, t.rel_offset));
            (best, from)
        })?;
        self.scan_headers_from(from as u64, now_ms, |h| {
            if best.is_none_or(|(t, _)| h.max_timestamp > t) {
                best = Some((h.max_timestamp, h.base_offset));
            }
            false
        })?;
        *self.max_ts.lock() = best;
        Ok(best)
    }

    /// Keeps the cached max timestamp up to date after an append.
    pub fn note_timestamp(&self, ts: i64, base_offset: i64) {
        let mut g = self.max_ts.lock();
        if let Some((t, _)) = *g {
            if ts > t {
                *g = Some((ts, base_offset));
            }
        }
    }

    /// Forgets the cached max timestamp (after truncation).
    pub fn forget_max_timestamp(&self) {
        *self.max_ts.lock() = None;
    }

    /// The timestamp `segment.ms` counts from; reads the first batch if unknown.
    pub fn roll_start(&self, now_ms: i64) -> i64 {
        let v = self.roll_start.load(Ordering::Relaxed);
        if v != UNKNOWN {
            return v;
        }
        let start = match self
            .read_at(0, HEADER_LEN, now_ms)
            .ok()
            .as_deref()
            .and_then(header_only)
        {
            Some(h) if h.max_timestamp > 0 => h.max_timestamp,
            _ => now_ms,
        };
        self.roll_start.store(start, Ordering::Relaxed);
        start
    }

    /// Starts the roll clock at the first batch's timestamp, if not started.
    pub fn start_roll_clock(&self, ts: i64) {
        let _ = self
            .roll_start
            .compare_exchange(UNKNOWN, ts, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Forces the log file to disk.
    pub fn sync(&self, now_ms: i64) -> io::Result<()> {
        self.handle(now_ms)?.sync_data()
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        self.file.lock().take();
        for p in [&self.log_path, &self.index_path, &self.time_path] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Adds a time-index entry unless it would not move the timestamp forward.
pub(crate) fn push_time(times: &mut Vec<TimeEntry>, ts: i64, rel_offset: u32) -> bool {
    if times
        .last()
        .is_none_or(|l| ts > l.timestamp && rel_offset >= l.rel_offset)
    {
        times.push(TimeEntry {
            timestamp: ts,
            rel_offset,
        });
        return true;
    }
    false
}

/// Parses just the fixed header, without requiring the whole batch.
fn header_only(head: &[u8]) -> Option<BatchHeader> {
    if head.len() < HEADER_LEN {
        return None;
    }
    // Present a buffer that claims to hold the full batch so `parse` checks only the header.
    let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    if (len as i64) + (LOG_OVERHEAD as i64) < HEADER_LEN as i64 {
        return None;
    }
    let mut fake = [0u8; HEADER_LEN];
    fake.copy_from_slice(&head[..HEADER_LEN]);
    fake[8..12].copy_from_slice(&((HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
    let mut h = BatchHeader::parse(&fake).ok()?;
    h.batch_length = len;
    Some(h)
}

/// Reads `len` bytes at `pos` (fewer only at the end of the file) into a
/// new buffer that is not zeroed first: `pread` writes straight into the
/// vector's spare capacity, so a fetch touches each byte once, not twice.
fn read_exact_or_short(f: &File, pos: u64, len: u64) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let at = libc::off_t::try_from(pos + done as u64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is `len - done` writable bytes owned by `buf`, and
        // pread writes at most that many; the descriptor is open for as long
        // as `f` is borrowed.
        let n = unsafe { libc::pread(f.as_raw_fd(), spare.as_mut_ptr().cast(), len - done, at) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        // SAFETY: pread initialised the first `n` (<= len - done) spare bytes.
        unsafe { buf.set_len(done + n as usize) };
    }
    Ok(buf)
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn reads_are_exact_and_short_only_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let f = File::open(&path).expect("open");
        assert_eq!(read_exact_or_short(&f, 0, 100_000).expect("read"), data);
        assert_eq!(
            read_exact_or_short(&f, 99_990, 64).expect("read"),
            &data[99_990..]
        );
        assert_eq!(
            read_exact_or_short(&f, 12_345, 4096).expect("read"),
            &data[12_345..12_345 + 4096]
        );
        assert!(read_exact_or_short(&f, 200_000, 16)
            .expect("read")
            .is_empty());
        assert!(read_exact_or_short(&f, 0, 0).expect("read").is_empty());
    }
}
