//! The durable Raft log: entries, the vote and the committed pointer, in `dir`.
//!
//! Files:
//! - `log`: one checksummed record ([`crate::disk`]) per entry, postcard-encoded, in index order.
//!   Appends are fsynced before openraft is told they are durable. A torn last record (a cut
//!   write) is cut off on open; any other damage is a [`DiskError::Corrupt`].
//! - `meta`: the vote and the last purged log id, replaced atomically.
//! - `committed`: the committed log id, a fixed 32-byte record overwritten in place and not
//!   fsynced: an older value is still a committed index, so losing the latest write only means
//!   applying a little later after a power cut; a damaged one is ignored with a warning.
//!
//! Entries are also held in memory (the log is compacted by snapshots, so it stays short) and
//! the replication tasks read them from there.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LeaderId, OptionalSend, RaftLogId, RaftLogReader,
};
use serde::{Deserialize, Serialize};

use crate::disk::{self, Decoded, DiskError, HEADER_LEN};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::MAX_ENTRY_BYTES;

/// Largest log record accepted on disk: an entry of [`MAX_ENTRY_BYTES`] plus its log id and
/// membership headroom.
const MAX_RECORD: usize = MAX_ENTRY_BYTES + 64 * 1024;
/// Most payload bytes handed to one replication request (always at least one entry).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
const COMMITTED_LEN: usize = 24;

/// Positions shared with the RPC layer and [`crate::Quorum::describe`]: `index + 1`, 0 = none.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    last_index: AtomicU64,
    committed: AtomicU64,
}

impl Progress {
    fn store(cell: &AtomicU64, v: Option<u64>) {
        cell.store(v.map_or(0, |i| i + 1), Ordering::Release);
    }
    fn load(cell: &AtomicU64) -> Option<u64> {
        cell.load(Ordering::Acquire).checked_sub(1)
    }
    /// Index of the last entry in the local log.
    pub(crate) fn last_index(&self) -> Option<u64> {
        Self::load(&self.last_index)
    }
    /// Index of the last entry known committed.
    pub(crate) fn committed(&self) -> Option<u64> {
        Self::load(&self.committed)
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    vote: Option<Vote>,
    last_purged: Option<LogId>,
}

#[derive(Debug, Default)]
struct Mem {
    entries: BTreeMap<u64, Entry>,
    meta: Meta,
    committed: Option<LogId>,
}

#[derive(Debug)]
struct LogFile {
    file: File,
    len: u64,
    /// Byte offset at which each entry's record starts.
    offsets: BTreeMap<u64, u64>,
}

#[derive(Debug)]
struct Shared {
    /// The directory lock, released when the last handle to the store is gone.
    _lock: File,
    dir: PathBuf,
    mem: Mutex<Mem>,
    file: Mutex<LogFile>,
    progress: Arc<Progress>,
}

/// Openraft's log storage over the files in `dir`.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated in a way later
    // readers could misread (every update is a single insert or remove), so carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_err(e: DiskError) -> io::Error {
    io::Error::other(e)
}

fn storage_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: DiskError) -> StorageError {
    StorageError::from_io_error(subject, verb, io_err(e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DiskError> + Send + 'static,
) -> Result<T, DiskError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(DiskError::io(
            "join",
            Path::new("."),
            io::Error::other(e.to_string()),
        ))
    })
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail off the log file.
    pub(crate) fn open(dir: &Path, progress: Arc<Progress>) -> Result<LogStore, DiskError> {
        fs::create_dir_all(dir).map_err(|e| DiskError::io("create dir", dir, e))?;
        let lock = disk::lock_dir(dir)?;
        let meta_path = dir.join("meta");
        let meta = match disk::read_single(&meta_path, 4096)? {
            Some(bytes) => postcard::from_bytes::<Meta>(&bytes)
                .map_err(|e| DiskError::corrupt(&meta_path, 0, e.to_string()))?,
            None => Meta::default(),
        };
        let committed = read_committed(&dir.join("committed"));
        let (file, entries, offsets, len) = open_log(&dir.join("log"), meta.last_purged)?;
        let last = entries
            .keys()
            .next_back()
            .copied()
            .or(meta.last_purged.map(|l| l.index));
        Progress::store(&progress.last_index, last);
        Progress::store(&progress.committed, committed.map(|c| c.index));
        tracing::info!(
            dir = %dir.display(),
            entries = entries.len(),
            last_index = ?last,
            committed = ?committed.map(|c| c.index),
            vote = ?meta.vote,
            "opened quorum log"
        );
        let shared = Shared {
            _lock: lock,
            dir: dir.to_path_buf(),
            mem: Mutex::new(Mem {
                entries,
                meta,
                committed,
            }),
            file: Mutex::new(LogFile { file, len, offsets }),
            progress,
        };
        Ok(LogStore {
            shared: Arc::new(shared),
        })
    }

    /// Whether nothing was ever stored: no vote, no entry, nothing purged.
    pub(crate) fn is_pristine(&self) -> bool {
        let mem = lock(&self.shared.mem);
        mem.meta.vote.is_none() && mem.entries.is_empty() && mem.meta.last_purged.is_none()
    }

    fn write_meta(&self, meta: Meta) -> impl FnOnce() -> Result<(), DiskError> + Send + 'static {
        let path = self.shared.dir.join("meta");
        move || {
            let bytes = postcard::to_allocvec(&meta)
                .map_err(|e| DiskError::io("encode", &path, io::Error::other(e)))?;
            disk::write_atomic(&path, &bytes)
        }
    }
}

fn read_committed(path: &Path) -> Option<LogId> {
    let bytes = match disk::read_single(path, COMMITTED_LEN) {
        Ok(Some(b)) if b.len() == COMMITTED_LEN => b,
        Ok(None) => return None,
        Ok(Some(_)) | Err(_) => {
            tracing::warn!(path = %path.display(), "ignoring a damaged committed-index file");
            return None;
        }
    };
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    Some(LogId::new(LeaderId::new(word(0), word(1)), word(2)))
}

fn write_committed(path: &Path, id: &LogId) -> Result<(), DiskError> {
    let mut payload = Vec::with_capacity(COMMITTED_LEN);
    payload.extend_from_slice(&id.leader_id.term.to_le_bytes());
    payload.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
    payload.extend_from_slice(&id.index.to_le_bytes());
    let mut buf = Vec::with_capacity(HEADER_LEN + COMMITTED_LEN);
    disk::frame_record(&payload, &mut buf);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| DiskError::io("open", path, e))?;
    f.write_all_at(&buf, 0)
        .map_err(|e| DiskError::io("write", path, e))
}

type Opened = (File, BTreeMap<u64, Entry>, BTreeMap<u64, u64>, u64);

/// Reads the log file, validating every record and the index sequence.
fn open_log(path: &Path, last_purged: Option<LogId>) -> Result<Opened, DiskError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| DiskError::io("open", path, e))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| DiskError::io("read", path, e))?;
    let mut entries = BTreeMap::new();
    let mut offsets = BTreeMap::new();
    let purged = last_purged.map(|l| l.index);
    let mut expected = purged.map(|p| p + 1);
    let mut prev: Option<u64> = None;
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let (payload, used) = match disk::decode_record(rest, MAX_RECORD) {
            Decoded::Record(p, used) => (p, used),
            Decoded::Torn => break,
            Decoded::Bad(reason) => {
                let claimed = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if HEADER_LEN + claimed == rest.len() {
                    // The last record, whole in length but not in content: a cut write.
                    break;
                }
                return Err(DiskError::corrupt(path, pos as u64, reason));
            }
        };
        let entry: Entry = postcard::from_bytes(payload)
            .map_err(|e| DiskError::corrupt(path, pos as u64, format!("undecodable entry: {e}")))?;
        let index = entry.log_id.index;
        if prev.is_some_and(|p| index != p + 1) {
            return Err(DiskError::corrupt(
                path,
                pos as u64,
                format!("entry {index} follows {prev:?}"),
            ));
        }
        prev = Some(index);
        if purged.is_none_or(|p| index > p) {
            if expected.is_some_and(|e| e != index) {
                return Err(DiskError::corrupt(
                    path,
                    pos as u64,
                    format!("entry {index} where {expected:?} was expected (a hole after the purged prefix)"),
                ));
            }
            expected = Some(index + 1);
            offsets.insert(index, pos as u64);
            entries.insert(index, entry);
        }
        pos += used;
    }
    if pos < buf.len() {
        tracing::warn!(
            path = %path.display(),
            offset = pos,
            cut = buf.len() - pos,
            "cutting a torn record off the end of the quorum log"
        );
        file.set_len(pos as u64)
            .map_err(|e| DiskError::io("truncate", path, e))?;
        file.sync_all()
            .map_err(|e| DiskError::io("fsync", path, e))?;
    }
    Ok((file, entries, offsets, pos as u64))
}

fn entry_weight(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(p) => p.0.len() + 32,
        _ => 256,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let mem = lock(&self.shared.mem);
        Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let mem = lock(&self.shared.mem);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (_, e) in mem.entries.range(start..end) {
            bytes += entry_weight(e);
            if !out.is_empty() && bytes > MAX_BATCH_BYTES {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = lock(&self.shared.mem);
        let last_purged_log_id = mem.meta.last_purged;
        let last_log_id = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let meta = {
            let mem = lock(&self.shared.mem);
            Meta {
                vote: Some(*vote),
                last_purged: mem.meta.last_purged,
            }
        };
        blocking(self.write_meta(meta))
            .await
            .map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        lock(&self.shared.mem).meta.vote = Some(*vote);
        tracing::debug!(%vote, "saved vote");
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.shared.mem).meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        lock(&self.shared.mem).committed = committed;
        Progress::store(&self.shared.progress.committed, committed.map(|c| c.index));
        if let Some(id) = committed {
            // A page-cache write of 32 bytes; see the module docs for why it is not fsynced.
            if let Err(e) = write_committed(&self.shared.dir.join("committed"), &id) {
                tracing::warn!(error = %e, "could not record the committed index");
            }
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.shared.mem).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut buf = Vec::new();
        let mut starts = Vec::with_capacity(entries.len());
        for e in &entries {
            let bytes = postcard::to_allocvec(e).map_err(|err| {
                StorageError::from_io_error(
                    ErrorSubject::Log(e.log_id),
                    ErrorVerb::Write,
                    io::Error::other(err),
                )
            })?;
            starts.push((e.log_id.index, buf.len() as u64));
            disk::frame_record(&bytes, &mut buf);
        }
        let last = entries.last().map(|e| e.log_id.index);
        {
            let mut mem = lock(&self.shared.mem);
            for e in entries {
                mem.entries.insert(e.log_id.index, e);
            }
        }
        let shared = self.shared.clone();
        let res = blocking(move || {
            let path = shared.dir.join("log");
            let mut lf = lock(&shared.file);
            let base = lf.len;
            lf.file
                .write_all_at(&buf, base)
                .map_err(|e| DiskError::io("write", &path, e))?;
            lf.file
                .sync_data()
                .map_err(|e| DiskError::io("fsync", &path, e))?;
            lf.len = base + buf.len() as u64;
            for (index, off) in starts {
                lf.offsets.insert(index, base + off);
            }
            Ok(())
        })
        .await;
        match res {
            Ok(()) => {
                if last.is_some() {
                    Progress::store(&self.shared.progress.last_index, last);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "quorum log append failed");
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::info!(
            from = log_id.index,
            "truncating conflicting quorum log entries"
        );
        let last = {
            let mut mem = lock(&self.shared.mem);
            mem.entries.split_off(&log_id.index);
            mem.entries
                .keys()
                .next_back()
                .copied()
                .or(mem.meta.last_purged.map(|l| l.index))
        };
        let shared = self.shared.clone();
        let index = log_id.index;
        blocking(move || {
            let path = shared.dir.join("log");
            let mut lf = lock(&shared.file);
            let cut = lf.offsets.split_off(&index);
            if let Some((_, &off)) = cut.iter().next() {
                lf.file
                    .set_len(off)
                    .map_err(|e| DiskError::io("truncate", &path, e))?;
                lf.file
                    .sync_data()
                    .map_err(|e| DiskError::io("fsync", &path, e))?;
                lf.len = off;
            }
            Ok(())
        })
        .await
        .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        Progress::store(&self.shared.progress.last_index, last);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let (meta, kept) = {
            let mut mem = lock(&self.shared.mem);
            let kept = mem.entries.split_off(&(log_id.index + 1));
            mem.entries = kept;
            mem.meta.last_purged = Some(log_id);
            (
                mem.meta.clone(),
                mem.entries.values().cloned().collect::<Vec<_>>(),
            )
        };
        tracing::info!(
            upto = log_id.index,
            kept = kept.len(),
            "purging compacted quorum log entries"
        );
        // The purge point goes to `meta` first: if the rewrite below does not happen, the next
        // open skips the purged prefix still in the file.
        let write_meta = self.write_meta(meta);
        let shared = self.shared.clone();
        blocking(move || {
            write_meta()?;
            rewrite_log(&shared, &kept)
        })
        .await
        .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

/// Replaces the log file with one holding just `kept`.
fn rewrite_log(shared: &Shared, kept: &[Entry]) -> Result<(), DiskError> {
    let path = shared.dir.join("log");
    let tmp = shared.dir.join("log.tmp");
    let mut buf = Vec::new();
    let mut offsets = BTreeMap::new();
    for e in kept {
        let bytes = postcard::to_allocvec(e)
            .map_err(|err| DiskError::io("encode", &tmp, io::Error::other(err)))?;
        offsets.insert(e.get_log_id().index, buf.len() as u64);
        disk::frame_record(&bytes, &mut buf);
    }
    let mut lf = lock(&shared.file);
    let mut f = File::create(&tmp).map_err(|e| DiskError::io("create", &tmp, e))?;
    f.write_all(&buf)
        .map_err(|e| DiskError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| DiskError::io("fsync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| DiskError::io("rename", &path, e))?;
    disk::sync_dir(&path)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| DiskError::io("open", &path, e))?;
    *lf = LogFile {
        file,
        len: buf.len() as u64,
        offsets,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(LeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Payload(format!("e{index}").into_bytes())),
        }
    }

    /// Writes a log file of `indexes` and returns each record's start offset.
    fn write_log(dir: &Path, indexes: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for i in indexes {
            starts.push(buf.len() as u64);
            disk::frame_record(&postcard::to_allocvec(&entry(i)).unwrap(), &mut buf);
        }
        fs::write(dir.join("log"), &buf).unwrap();
        starts
    }

    fn open(dir: &Path) -> Result<LogStore, DiskError> {
        LogStore::open(dir, Arc::default())
    }

    fn indexes(s: &LogStore) -> Vec<u64> {
        lock(&s.shared.mem).entries.keys().copied().collect()
    }

    #[test]
    fn torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_log(dir.path(), 0..4);
        let log = dir.path().join("log");
        let full = fs::read(&log).unwrap();
        // Cut inside the last header, inside the last payload, and a garbled last payload.
        for cut in [starts[3] as usize + 3, full.len() - 2] {
            fs::write(&log, &full[..cut]).unwrap();
            let s = open(dir.path()).unwrap();
            assert_eq!(indexes(&s), vec![0, 1, 2]);
            assert_eq!(fs::metadata(&log).unwrap().len(), starts[3]);
            assert_eq!(s.shared.progress.last_index(), Some(2));
        }
        let mut garbled = full.clone();
        let n = garbled.len();
        garbled[n - 1] ^= 0xff;
        fs::write(&log, &garbled).unwrap();
        assert_eq!(indexes(&open(dir.path()).unwrap()), vec![0, 1, 2]);
    }

    #[test]
    fn damage_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let starts = write_log(dir.path(), 0..4);
        let log = dir.path().join("log");
        let mut bytes = fs::read(&log).unwrap();
        bytes[starts[1] as usize + HEADER_LEN + 1] ^= 0xff;
        fs::write(&log, &bytes).unwrap();
        match open(dir.path()) {
            Err(DiskError::Corrupt { offset, .. }) => assert_eq!(offset, starts[1]),
            other => panic!("expected damage at record 1, got {other:?}"),
        }
        write_log(dir.path(), [0, 1, 3]);
        assert!(
            matches!(open(dir.path()), Err(DiskError::Corrupt { .. })),
            "a hole in the indexes"
        );
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 0..6);
        let mut s = open(dir.path()).unwrap();
        s.truncate(entry(4).log_id).await.unwrap();
        drop(s);
        let mut s = open(dir.path()).unwrap();
        assert_eq!(indexes(&s), vec![0, 1, 2, 3]);
        s.purge(entry(1).log_id).await.unwrap();
        drop(s);
        let mut again = open(dir.path()).unwrap();
        assert_eq!(indexes(&again), vec![2, 3]);
        let state = again.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
        assert_eq!(again.limited_get_log_entries(0, 10).await.unwrap().len(), 2);
        drop(again);

        // A purge point in `meta` but an old file (crash before the rewrite): the prefix is
        // skipped.
        write_log(dir.path(), 0..4);
        assert_eq!(indexes(&open(dir.path()).unwrap()), vec![2, 3]);
        // A file starting past the purge point has a hole.
        write_log(dir.path(), 3..5);
        assert!(matches!(open(dir.path()), Err(DiskError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn vote_and_committed_are_kept_and_the_directory_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path()).unwrap();
        assert!(s.is_pristine());
        let vote = Vote::new(3, 2);
        s.save_vote(&vote).await.unwrap();
        s.save_committed(Some(LogId::new(LeaderId::new(3, 2), 17)))
            .await
            .unwrap();
        assert!(matches!(open(dir.path()), Err(DiskError::Locked { .. })));
        drop(s);
        let mut again = open(dir.path()).unwrap();
        assert!(!again.is_pristine());
        assert_eq!(again.read_vote().await.unwrap(), Some(vote));
        assert_eq!(
            again.read_committed().await.unwrap().map(|c| c.index),
            Some(17)
        );
        drop(again);
        // A damaged committed file only loses the hint.
        fs::write(dir.path().join("committed"), b"garbage").unwrap();
        assert_eq!(
            open(dir.path()).unwrap().read_committed().await.unwrap(),
            None
        );
    }
}
