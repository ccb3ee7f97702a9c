//! Sparse offset and time indexes.
//!
//! Both follow Kafka's file layout and are rebuilt from the log rather than
//! checksummed: after an unclean shutdown, or when a file is missing or fails
//! its sanity check, the segment is rescanned.
//!
//! ```text
//! <base>.index      entry = rel_offset:u32 | position:u32            (8 bytes, big-endian)
//! <base>.timeindex  entry = max_timestamp_so_far:i64 | rel_offset:u32 (12 bytes, big-endian)
//! ```
//!
//! `rel_offset` is a batch's base offset minus the segment's base offset;
//! `position` is the batch's byte position in the `.log` file. One entry is
//! written per `index.interval.bytes` of batches, so the index costs about
//! 0.2% of the data in memory once loaded. Nothing is preallocated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// One fixed-size index entry.
pub(crate) trait Entry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// Offset index entry: where a batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

/// Time index entry: the largest timestamp seen so far in the segment, and the batch holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            rel_offset: u32_at(b, 0),
            position: u32_at(b, 4),
        }
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(t),
            rel_offset: u32_at(b, 8),
        }
    }
}

/// Reads a whole index file. `Ok(None)` when it is missing or its size is
/// not a whole number of entries (a torn write): the caller rebuilds it.
pub(crate) fn read_entries<E: Entry>(path: &Path) -> io::Result<Option<Vec<E>>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len % E::SIZE as u64 != 0 {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Ok(None);
    }
    Ok(Some(buf.chunks_exact(E::SIZE).map(E::decode).collect()))
}

/// Replaces an index file with `entries`, atomically (temp file + rename).
pub(crate) fn write_entries<E: Entry>(path: &Path, entries: &[E]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(entries.len() * E::SIZE);
    for e in entries {
        e.encode(&mut buf);
    }
    let tmp = path.with_extension("tmp-index");
    let mut f = File::create(&tmp)?;
    f.write_all(&buf)?;
    drop(f);
    fs::rename(&tmp, path)
}

/// Writes a whole index file and fsyncs it (a cleaned segment's index,
/// which must be on disk before the swap that installs it commits).
pub(crate) fn write_entries_durably<E: Entry>(path: &Path, entries: &[E]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(entries.len() * E::SIZE);
    for e in entries {
        e.encode(&mut buf);
    }
    let mut f = File::create(path)?;
    f.write_all(&buf)?;
    f.sync_all()
}

/// Appends one entry to an index file kept open by the writer.
pub(crate) fn append_entry<E: Entry>(file: &mut File, entry: &E) -> io::Result<()> {
    let mut buf = Vec::with_capacity(E::SIZE);
    entry.encode(&mut buf);
    file.write_all(&buf)
}

/// Opens an index file for appending, creating it if needed.
pub(crate) fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Checks that offset-index entries only move forward and stay inside the log file.
pub(crate) fn offset_entries_sane(entries: &[OffsetEntry], log_size: u64) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].rel_offset < w[1].rel_offset && w[0].position < w[1].position)
        && entries
            .last()
            .is_none_or(|e| (e.position as u64) < log_size)
}

/// Checks that time-index entries only move forward.
pub(crate) fn time_entries_sane(entries: &[TimeEntry]) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp && w[0].rel_offset <= w[1].rel_offset)
}

/// Position to start scanning from for `rel_offset`: the last entry at or before it.
pub(crate) fn lookup_position(entries: &[OffsetEntry], rel_offset: u32) -> u32 {
    let i = entries.partition_point(|e| e.rel_offset <= rel_offset);
    if i == 0 {
        0
    } else {
        entries[i - 1].position
    }
}

/// Relative offset to start scanning from for timestamp `ts`: the last entry
/// whose max-so-far is below `ts` (every batch up to it is older than `ts`).
pub(crate) fn lookup_time(entries: &[TimeEntry], ts: i64) -> u32 {
    let i = entries.partition_point(|e| e.timestamp < ts);
    if i == 0 {
        0
    } else {
        entries[i - 1].rel_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("0.index");
        let entries = vec![
            OffsetEntry {
                rel_offset: 0,
                position: 0,
            },
            OffsetEntry {
                rel_offset: 10,
                position: 4100,
            },
            OffsetEntry {
                rel_offset: 25,
                position: 8300,
            },
        ];
        write_entries(&p, &entries).expect("write");
        let back: Vec<OffsetEntry> = read_entries(&p).expect("read").expect("present");
        assert_eq!(back, entries);
        assert_eq!(lookup_position(&back, 9), 0);
        assert_eq!(lookup_position(&back, 10), 4100);
        assert_eq!(lookup_position(&back, 1000), 8300);
        assert!(offset_entries_sane(&back, 9000));
        assert!(!offset_entries_sane(&back, 8300));
        let mut f = open_for_append(&p).expect("open");
        f.write_all(&[1, 2, 3]).expect("torn write");
        assert!(read_entries::<OffsetEntry>(&p).expect("read").is_none());
    }

    #[test]
    fn time_lookup_skips_only_older_batches() {
        let e = vec![
            TimeEntry {
                timestamp: 100,
                rel_offset: 0,
            },
            TimeEntry {
                timestamp: 200,
                rel_offset: 5,
            },
            TimeEntry {
                timestamp: 200,
                rel_offset: 9,
            },
        ];
        assert_eq!(lookup_time(&e, 50), 0);
        assert_eq!(lookup_time(&e, 150), 0);
        assert_eq!(lookup_time(&e, 200), 0);
        assert_eq!(lookup_time(&e, 201), 9);
    }
}
