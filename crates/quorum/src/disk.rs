//! Checksummed records and crash-safe small files.
//!
//! Every durable byte this crate writes is framed as a record:
//! `[len: u32 LE][crc32c(payload): u32 LE][payload: len bytes]`. The log file is a sequence of
//! records; the metadata and snapshot files are one record each, replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes of a record header (length and checksum).
pub(crate) const HEADER_LEN: usize = 8;

/// Errors reading or writing this crate's files.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The operating system refused an operation on a file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process (or another node in this one) has the directory open.
    #[error("{path} is locked by another quorum node")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A file is damaged somewhere other than a torn tail: its checksum or framing is wrong.
    #[error("{path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl DiskError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        DiskError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        DiskError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Appends the framed form of `payload` to `out`.
pub(crate) fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Outcome of decoding one record from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole, valid record, and the bytes it used.
    Record(&'a [u8], usize),
    /// The buffer ends inside the record: a write that was cut short.
    Torn,
    /// The record is complete but wrong.
    Bad(String),
}

/// Decodes the record at the start of `buf`, refusing lengths above `max_len` (checked before
/// anything is allocated or sliced).
pub(crate) fn decode_record(buf: &[u8], max_len: usize) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Torn;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let rest = &buf[HEADER_LEN..];
    if len > rest.len() {
        return Decoded::Torn;
    }
    if len > max_len {
        return Decoded::Bad(format!("record length {len} exceeds the limit {max_len}"));
    }
    let payload = &rest[..len];
    if crc32c::crc32c(payload) != crc {
        return Decoded::Bad("checksum mismatch".to_string());
    }
    Decoded::Record(payload, HEADER_LEN + len)
}

/// Reads a file written by [`write_atomic`]; `Ok(None)` when it does not exist.
pub(crate) fn read_single(path: &Path, max_len: usize) -> Result<Option<Vec<u8>>, DiskError> {
    let buf = match fs::read(path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DiskError::io("read", path, e)),
    };
    match decode_record(&buf, max_len) {
        Decoded::Record(payload, used) if used == buf.len() => Ok(Some(payload.to_vec())),
        Decoded::Record(..) => Err(DiskError::corrupt(
            path,
            0,
            "trailing bytes after the record",
        )),
        // The file is only ever replaced by rename, so a short one was damaged after the fact.
        Decoded::Torn => Err(DiskError::corrupt(
            path,
            0,
            "file is shorter than its record",
        )),
        Decoded::Bad(reason) => Err(DiskError::corrupt(path, 0, reason)),
    }
}

/// Replaces `path` with one record holding `payload`, durably: after this returns, a crash
/// leaves either the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, payload: &[u8]) -> Result<(), DiskError> {
    let tmp = path.with_extension("tmp");
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    frame_record(payload, &mut buf);
    let mut file = File::create(&tmp).map_err(|e| DiskError::io("create", &tmp, e))?;
    file.write_all(&buf)
        .map_err(|e| DiskError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| DiskError::io("fsync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| DiskError::io("rename", path, e))?;
    sync_dir(path)
}

/// Takes an exclusive `flock` on `dir/lock`, held until the returned file is closed, so two
/// nodes never share a directory.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, DiskError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| DiskError::io("open", &path, e))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(DiskError::Locked { path });
        }
        return Err(DiskError::io("flock", &path, e));
    }
    Ok(file)
}

/// Fsyncs the directory holding `path`, making a create or rename in it durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), DiskError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let d = OpenOptions::new()
        .read(true)
        .open(dir)
        .map_err(|e| DiskError::io("open dir", dir, e))?;
    d.sync_all().map_err(|e| DiskError::io("fsync dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_damage() {
        let mut buf = Vec::new();
        frame_record(b"hello", &mut buf);
        assert_eq!(decode_record(&buf, 100), Decoded::Record(b"hello", 13));
        assert_eq!(decode_record(&buf[..12], 100), Decoded::Torn);
        assert_eq!(decode_record(&buf[..3], 100), Decoded::Torn);
        assert!(matches!(decode_record(&buf, 4), Decoded::Bad(_)));
        buf[10] ^= 1;
        assert!(matches!(decode_record(&buf, 100), Decoded::Bad(_)));
    }

    #[test]
    fn huge_length_is_torn_not_allocated() {
        let buf = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2];
        assert_eq!(decode_record(&buf, 1 << 20), Decoded::Torn);
    }

    #[test]
    fn atomic_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta");
        assert_eq!(read_single(&p, 100).unwrap(), None);
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(read_single(&p, 100).unwrap().as_deref(), Some(&b"two"[..]));
        let mut raw = fs::read(&p).unwrap();
        raw[9] ^= 0xff;
        fs::write(&p, &raw).unwrap();
        assert!(matches!(
            read_single(&p, 100),
            Err(DiskError::Corrupt { .. })
        ));
    }
}
