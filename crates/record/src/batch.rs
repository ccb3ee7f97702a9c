//! The batch header view, validation and in-place patching.

use thiserror::Error;

/// Bytes before `batch_length` counts: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the `batch_length` field.
pub const LENGTH_PREFIX: usize = 8;
/// Size of the fixed v2 header, up to and including `records_count`.
pub const HEADER_LEN: usize = 61;

const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bit: timestamps are the broker's append time, not the producer's.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit: the batch holds control records (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;

/// Why a byte range is not a valid v2 record batch.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's length field promises.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The length field is smaller than a header or larger than allowed.
    #[error("record batch length {0} is out of range")]
    BadLength(i64),
    /// Only magic 2 (Kafka 0.11+) batches are accepted.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    BadMagic(i8),
    /// The stored CRC32C does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Negative record count or an offset delta that does not fit the count.
    #[error("record batch is inconsistent: {0}")]
    Inconsistent(&'static str),
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A record-batch codec (attribute bits 0..3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed records.
    None,
    /// gzip.
    Gzip,
    /// Snappy (raw or xerial-framed).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec's bits in the batch attributes.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec by Kafka's `compression.type` name (`none`/`uncompressed`, gzip, snappy, lz4, zstd).
    pub fn from_name(name: &str) -> Option<Compression> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A checked view of one batch header. Cheap to copy; borrows nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// The `batch_length` field: bytes after it.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Attribute bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when none.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `buf` without checking the CRC.
    ///
    /// Checks that the whole batch (as the length field says) is present, the
    /// magic is 2 and the counts are consistent.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, LENGTH_PREFIX);
        let total = batch_length as i64 + LOG_OVERHEAD as i64;
        if total < HEADER_LEN as i64 {
            return Err(BatchError::BadLength(batch_length as i64));
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic(magic));
        }
        if (buf.len() as i64) < total {
            return Err(BatchError::Truncated {
                needed: total as usize,
                available: buf.len(),
            });
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH),
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            producer_id: be_i64(buf, PRODUCER_ID),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH),
            base_sequence: be_i32(buf, BASE_SEQUENCE),
            records_count: be_i32(buf, RECORDS_COUNT),
        };
        if h.records_count < 0 {
            return Err(BatchError::Inconsistent("negative record count"));
        }
        if h.last_offset_delta < 0 {
            return Err(BatchError::Inconsistent("negative last offset delta"));
        }
        Ok(h)
    }

    /// Reads the header and verifies the CRC32C over the whole batch.
    pub fn parse_and_verify(buf: &[u8]) -> Result<Self, BatchError> {
        let h = Self::parse(buf)?;
        let end = h.total_len();
        let stored = be_i32(buf, CRC) as u32;
        let computed = crc32c::crc32c(&buf[ATTRIBUTES..end]);
        if stored != computed {
            return Err(BatchError::BadCrc { stored, computed });
        }
        Ok(h)
    }

    /// Bytes the batch occupies, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset after the batch: where the next one starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The codec the records are compressed with; `None` for unknown codes.
    pub fn compression(&self) -> Option<Compression> {
        match self.attributes & 0x07 {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// True when the batch is a transaction's control batch.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True when the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Overwrites the base offset in place (outside the CRC, so no recompute).
    pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
        buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
    }

    /// The header of `batch` as the log stores it: its base offset set and,
    /// with `append_time_ms >= 0`, the LogAppendTime stamp and a CRC
    /// recomputed over the new header fields and the unchanged records. The
    /// records themselves are neither copied nor changed, so a batch can be
    /// written as this header plus the rest of the producer's buffer.
    ///
    /// `batch` must hold a whole batch (as [`BatchHeader::parse`] checks).
    pub fn patched_header(batch: &[u8], base_offset: i64, append_time_ms: i64) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&batch[..HEADER_LEN]);
        Self::set_base_offset(&mut h, base_offset);
        if append_time_ms >= 0 {
            let attrs = be_i16(&h, ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
            h[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
            h[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&append_time_ms.to_be_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&h[ATTRIBUTES..]), &batch[HEADER_LEN..]);
            h[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        }
        h
    }

    /// Sets the length field to `buf.len()` and recomputes the CRC32C:
    /// `buf` is one whole batch whose bytes were changed (tests, tools).
    pub fn seal(buf: &mut [u8]) {
        let len = (buf.len() - LOG_OVERHEAD) as i32;
        buf[LENGTH_PREFIX..LOG_OVERHEAD].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES..]);
        buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Overwrites the leader epoch in place (outside the CRC).
    pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
        buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }

    /// Marks the batch as `LogAppendTime` with the given time, as Kafka does:
    /// sets the timestamp-type bit and `max_timestamp`, then recomputes the CRC.
    /// `buf` must hold exactly one whole, already parsed batch.
    pub fn set_log_append_time(buf: &mut [u8], append_time_ms: i64) {
        let attrs = be_i16(buf, ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
        buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&append_time_ms.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES..]);
        buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Iterates the whole batches in a concatenation of batches, checking each
/// header (not the CRC). Stops with an error at the first bad or partial one.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    verify_crc: bool,
}

impl<'a> Batches<'a> {
    /// Walks `buf` without CRC checks (data we wrote ourselves).
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            pos: 0,
            verify_crc: false,
        }
    }

    /// Walks `buf` verifying each batch's CRC (untrusted data).
    pub fn verified(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            pos: 0,
            verify_crc: true,
        }
    }

    /// Byte position of the next batch within the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Batches<'a> {
    /// The header, the batch's byte position and its bytes.
    type Item = Result<(BatchHeader, usize, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let parsed = if self.verify_crc {
            BatchHeader::parse_and_verify(rest)
        } else {
            BatchHeader::parse(rest)
        };
        match parsed {
            Ok(h) => {
                let at = self.pos;
                let len = h.total_len();
                self.pos += len;
                Some(Ok((h, at, &rest[..len])))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    #[test]
    fn parse_roundtrip_and_patch() {
        let mut b = BatchBuilder::new(1_000)
            .record(Some(b"k"), Some(b"v"))
            .record(None, Some(b"w"))
            .build();
        let h = BatchHeader::parse_and_verify(&b).expect("valid");
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        BatchHeader::set_base_offset(&mut b, 42);
        let h = BatchHeader::parse_and_verify(&b).expect("still valid: offset is outside the crc");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.next_offset(), 44);
        let mut patched = BatchHeader::patched_header(&b, 42, 7_777).to_vec();
        patched.extend_from_slice(&b[HEADER_LEN..]);
        BatchHeader::set_log_append_time(&mut b, 7_777);
        let h = BatchHeader::parse_and_verify(&b).expect("crc recomputed");
        assert_eq!(h.max_timestamp, 7_777);
        BatchHeader::set_base_offset(&mut b, 42);
        assert_eq!(
            patched, b,
            "patched header + untouched records = patched in place"
        );
        assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
    }

    #[test]
    fn rejects_bad_crc_magic_and_truncation() {
        let b = BatchBuilder::new(0).record(None, Some(b"hello")).build();
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            BatchHeader::parse_and_verify(&bad),
            Err(BatchError::BadCrc { .. })
        ));
        let mut bad = b.clone();
        bad[16] = 1;
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadMagic(1)));
        assert!(matches!(
            BatchHeader::parse(&b[..b.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut bad = b;
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            BatchHeader::parse(&bad),
            Err(BatchError::BadLength(_))
        ));
    }

    #[test]
    fn iterates_concatenation() {
        let mut all = BatchBuilder::new(0).record(None, Some(b"a")).build();
        all.extend(
            BatchBuilder::new(0)
                .record(None, Some(b"b"))
                .record(None, Some(b"c"))
                .build(),
        );
        let v: Vec<_> = Batches::verified(&all)
            .collect::<Result<_, _>>()
            .expect("ok");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].0.records_count, 2);
        all.push(0);
        let r: Result<Vec<_>, _> = Batches::verified(&all).collect();
        assert!(r.is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = BatchHeader::parse_and_verify(&bytes);
            let _ = Batches::verified(&bytes).count();
        }
    }
}
