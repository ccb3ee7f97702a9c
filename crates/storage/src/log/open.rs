//! Opening a log: the directory read, and after an unclean shutdown every
//! segment scanned, its damaged tail cut and its indexes rebuilt.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::{Log, Pending, SyncState, Writer};
use crate::checkpoint::{self, CLEAN_SHUTDOWN, LOG_START_OFFSET};
use crate::config::LogConfig;
use crate::epochs::EpochCache;
use crate::error::{Result, StorageError};
use crate::index;
use crate::segment::Segment;
use crate::Clock;

fn parse_stem(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`.
    ///
    /// After a clean shutdown this reads only the directory listing and
    /// three tiny files (the last the leader-epoch checkpoint). Otherwise
    /// every segment is scanned and checked (length, magic, CRC32C, offset
    /// order); the first bad batch and everything after it is cut off,
    /// indexes are rebuilt, and what was done is logged.
    pub fn open_with_clock(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: Clock,
    ) -> Result<Log> {
        let dir = dir.into();
        let now = clock();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        // A clean interrupted by a crash is finished (or undone) first.
        let swapped = crate::cleaner::swap::recover(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let mut bases = Vec::new();
        let mut sizes = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| StorageError::io(&dir, e))? {
            let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_stem(name, ".log") {
                let len = entry
                    .metadata()
                    .map_err(|e| StorageError::io(entry.path(), e))?
                    .len();
                bases.push(base);
                sizes.insert(base, len);
            } else if name.ends_with(".tmp-index") || name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let clean =
            checkpoint::read_i64(&dir, CLEAN_SHUTDOWN).map_err(|e| StorageError::io(&dir, e))?;
        let stored_start =
            checkpoint::read_i64(&dir, LOG_START_OFFSET).map_err(|e| StorageError::io(&dir, e))?;

        let mut segments = BTreeMap::new();
        let mut next_offset;
        let clean = clean.filter(|leo| !swapped && bases.last().is_none_or(|b| leo >= b));
        // Only a log the cleaner has worked on may have gaps between offsets.
        let gaps = crate::cleaner::was_cleaned(&dir);
        if let Some(leo) = clean {
            for b in &bases {
                segments.insert(*b, Arc::new(Segment::existing(&dir, *b, sizes[b])));
            }
            next_offset = leo;
        } else {
            next_offset = bases
                .first()
                .copied()
                .unwrap_or_else(|| stored_start.unwrap_or(0));
            let mut cut = false;
            for b in &bases {
                let seg = Segment::existing(&dir, *b, sizes[b]);
                // A segment starts at or after the end of the previous one
                // (after the cleaner, there may be a gap in between).
                if cut
                    || ((*b < next_offset || (!gaps && *b != next_offset)) && !segments.is_empty())
                {
                    cut = true;
                    tracing::warn!(segment = %seg.log_path().display(), "removing segment after damaged data");
                    seg.delete_files()
                        .map_err(|e| StorageError::io(seg.log_path(), e))?;
                    continue;
                }
                let scan = seg
                    .scan(true, gaps, config.index_interval_bytes, now)
                    .map_err(|e| StorageError::io(seg.log_path(), e))?;
                if let Some(why) = &scan.damage {
                    tracing::warn!(
                        segment = %seg.log_path().display(),
                        valid_bytes = scan.valid_end,
                        file_bytes = sizes[b],
                        reason = %why,
                        "truncating damaged tail of segment"
                    );
                    let f = seg
                        .handle(now)
                        .map_err(|e| StorageError::io(seg.log_path(), e))?;
                    f.set_len(scan.valid_end)
                        .map_err(|e| StorageError::io(seg.log_path(), e))?;
                    f.sync_all()
                        .map_err(|e| StorageError::io(seg.log_path(), e))?;
                    cut = true;
                }
                seg.set_size(scan.valid_end);
                index::write_entries(seg.index_path(), &scan.indexes.offsets)
                    .map_err(|e| StorageError::io(seg.index_path(), e))?;
                index::write_entries(seg.time_path(), &scan.indexes.times)
                    .map_err(|e| StorageError::io(seg.time_path(), e))?;
                seg.set_indexes(scan.indexes);
                next_offset = if scan.valid_end == 0 {
                    next_offset.max(*b)
                } else {
                    scan.next_offset
                };
                segments.insert(*b, Arc::new(seg));
            }
            if !bases.is_empty() {
                tracing::info!(log = %dir.display(), segments = segments.len(), log_end_offset = next_offset, "recovered log after unclean shutdown");
            }
        }
        // Drop empty trailing segments that recovery left behind a cut, except one.
        while segments.len() > 1 {
            let (&last_base, last) = segments.iter().next_back().expect("len > 1");
            if last.size() == 0 && last_base > next_offset {
                last.delete_files()
                    .map_err(|e| StorageError::io(last.log_path(), e))?;
                segments.remove(&last_base);
            } else {
                break;
            }
        }
        if segments.is_empty() {
            let base = stored_start.unwrap_or(0).max(0);
            next_offset = base;
            let seg = Segment::create(&dir, base).map_err(|e| StorageError::io(&dir, e))?;
            segments.insert(base, Arc::new(seg));
        }
        let first_base = *segments.keys().next().expect("non-empty");
        let log_start = stored_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(next_offset);
        let active = segments.values().next_back().expect("non-empty").clone();
        let mut epochs = EpochCache::load(&dir).map_err(|e| StorageError::io(&dir, e))?;
        // Epochs whose records recovery cut off, or that retention removed.
        let cut_end = epochs.truncate_from_end(next_offset);
        if cut_end | epochs.truncate_from_start(log_start) {
            epochs.save(&dir).map_err(|e| StorageError::io(&dir, e))?;
        }
        Ok(Log {
            dir,
            config: RwLock::new(config),
            clock,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                active_end: active.size(),
                reserved_end: 0,
                active,
                next_offset,
                offset_index_file: None,
                time_index_file: None,
                since_index: 0,
                active_max_ts: None,
                dirty: false,
                closed: false,
                last_flush_ms: now,
            }),
            sync: Mutex::new(SyncState {
                durable: 0,
                syncing: false,
                waiting: 0,
            }),
            written: AtomicU64::new(0),
            log_end_offset: AtomicI64::new(next_offset),
            log_start_offset: AtomicI64::new(log_start),
            offline: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
            in_append: AtomicUsize::new(0),
            synced: Condvar::new(),
            pending: Mutex::new(Pending::default()),
            write_gate: Mutex::new(()),
            opened_clean: clean.is_some(),
            segment_edit: Mutex::new(()),
            epochs: Mutex::new(epochs),
            stamp_epoch: AtomicI32::new(-1),
            epochs_unsaved: AtomicBool::new(false),
        })
    }
}
