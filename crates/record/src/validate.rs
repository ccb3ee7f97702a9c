//! What the broker checks in a producer's batch before it is stored, as
//! Kafka's log validator does, without changing a byte of it.
//!
//! A batch whose CRC is right can still hold records no consumer can read
//! (a record length that lies, a value length of -5, snappy over garbage);
//! stored, it would stop every consumer of the partition at that offset,
//! for good. So every record is walked once: in place for uncompressed
//! batches, and after decompressing into a buffer this [`Validator`] keeps
//! for compressed ones (see `decompress` for the bounds). The walk reads
//! lengths and varints and skips over keys, values and headers; it neither
//! copies nor allocates, and the stored bytes stay the producer's.
//!
//! Checked, beyond the structure `walk` checks:
//! - the header: at least one record, `last_offset_delta = records_count - 1`,
//!   a known codec, no control batch, no attribute bit Kafka does not
//!   define for a client's batch, a producer id on transactional batches
//!   and a sequence on idempotent ones, no client-set `LogAppendTime`;
//! - each record: offset deltas 0, 1, … in order (Strom stores the bytes,
//!   so it cannot renumber them as Kafka does when it recompresses), the
//!   unused attributes byte 0, header keys in UTF-8 without NUL (they are
//!   strings to every client: kafka-python fails on other bytes, librdkafka
//!   cuts a name at its first NUL);
//! - per record, collected for the response's `record_errors`: a key on
//!   compacted topics, and (CreateTime topics) a timestamp within
//!   `message.timestamp.before.max.ms` / `after.max.ms` of the broker's
//!   clock.

use std::ops::ControlFlow;

use thiserror::Error;

use crate::batch::{BatchHeader, Compression, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, HEADER_LEN};
use crate::decompress::{Decoders, DecompressError};
use crate::walk::{walk, Malformed, RawRecord, WalkError};

/// The decompressed records of a batch may be at most this many times the
/// topic's `max.message.bytes` (64 MiB at the default). A producer's
/// batches stay far below it: librdkafka bounds a batch's uncompressed size
/// by `batch.size` ≤ `message.max.bytes`, the Java producer fills a batch
/// by its observed compression ratio. And a zstd batch that inflates past
/// 100 MB cannot be read by librdkafka consumers at their default
/// `receive.message.max.bytes` anyway. The bound caps both the memory and
/// the CPU a compression bomb costs.
pub const DECOMPRESSION_LIMIT_FACTOR: usize = 64;

/// At most this many refused records are listed; the count covers all.
pub const MAX_LISTED_RECORD_PROBLEMS: usize = 1000;

/// The scratch buffer is freed after a batch that grew it beyond this.
const KEEP_SCRATCH: usize = 8 << 20;

/// Attribute bits a client's batch may carry: codec, timestamp type,
/// transactional, control (refused separately). Bit 6 (delete horizon) is
/// the log cleaner's; the rest are undefined.
const CLIENT_ATTRIBUTES: i16 = 0x07 | ATTR_LOG_APPEND_TIME | 0x10 | ATTR_CONTROL;

/// The timestamp that means "none" (Kafka's `NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// What a topic allows, read once per partition and request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// The broker's clock (ms) that timestamps are checked against.
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms`: how far in the past a record may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future.
    pub timestamp_after_max_ms: i64,
    /// The topic keeps producers' timestamps (`CreateTime`); only then are
    /// they checked (LogAppendTime topics are stamped by the broker).
    pub create_time: bool,
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub compacted: bool,
    /// `max.message.bytes`, which bounds the decompressed size too.
    pub max_message_bytes: usize,
}

impl ValidationPolicy {
    /// The most a batch may decompress to (see [`DECOMPRESSION_LIMIT_FACTOR`]).
    pub fn decompressed_limit(&self) -> usize {
        self.max_message_bytes
            .saturating_mul(DECOMPRESSION_LIMIT_FACTOR)
    }
}

/// A header-level reason to refuse a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchProblem {
    /// `records_count` is 0.
    #[error("the record batch holds no records")]
    NoRecords,
    /// `last_offset_delta` does not match `records_count`.
    #[error("last offset delta {last_offset_delta} does not match {records_count} records")]
    LastOffsetDelta {
        /// From the header.
        last_offset_delta: i32,
        /// From the header.
        records_count: i32,
    },
    /// Compression bits 5..7.
    #[error("unknown compression codec in attributes {0:#x}")]
    UnknownCodec(i16),
    /// Clients may not write transaction markers.
    #[error("clients may not produce control batches")]
    Control,
    /// Bits a client's batch never carries (the cleaner's delete-horizon
    /// flag, undefined bits).
    #[error("attributes {0:#x} set bits a producer's batch may not carry")]
    UnknownAttributes(i16),
    /// The transactional flag without a producer id.
    #[error("a transactional batch needs a producer id (it has -1)")]
    TransactionalWithoutProducer,
    /// A producer id with a negative base sequence.
    #[error("invalid sequence number {base_sequence} in a batch of producer {producer_id}")]
    NoSequence {
        /// From the header.
        producer_id: i64,
        /// From the header.
        base_sequence: i32,
    },
}

/// A record-level reason that stops the walk (nothing after it can be trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordFault {
    /// The record's structure (see the walk).
    #[error(transparent)]
    Malformed(Malformed),
    /// Offset deltas must count 0, 1, 2, … .
    #[error("offset delta {found} where {expected} belongs")]
    OffsetDelta {
        /// The record's offset delta.
        found: i32,
        /// Its index in the batch.
        expected: u32,
    },
    /// The attributes byte of a v2 record is unused and must be 0.
    #[error("record attributes {0:#04x}, where v2 records carry 0")]
    Attributes(u8),
    /// Header keys are strings: UTF-8 (kafka-python decodes them so) and
    /// without NUL (librdkafka's are C strings, cut at the first NUL).
    #[error("a header key is not UTF-8 or holds a NUL byte")]
    HeaderKey,
}

/// One refused record, for the response's `record_errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordProblem {
    /// The record's index in its batch.
    pub index: u32,
    /// Why.
    pub kind: RecordProblemKind,
}

/// Why one record was refused while the batch's structure is sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordProblemKind {
    /// A null key on a compacted topic.
    #[error("a compacted topic cannot accept a record without a key")]
    NoKey,
    /// A timestamp outside the topic's window.
    #[error("timestamp {timestamp} is out of range: it must be within [{lower}, {upper}]")]
    Timestamp {
        /// The record's timestamp.
        timestamp: i64,
        /// The earliest accepted.
        lower: i64,
        /// The latest accepted.
        upper: i64,
    },
}

impl RecordProblemKind {
    /// True for timestamp problems (Kafka answers INVALID_TIMESTAMP then).
    pub fn is_timestamp(&self) -> bool {
        matches!(self, RecordProblemKind::Timestamp { .. })
    }
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A header-level problem.
    #[error(transparent)]
    Batch(#[from] BatchProblem),
    /// The producer set `LogAppendTime`, which only the broker may.
    #[error("the producer set the timestamp type to LogAppendTime, which only the broker may")]
    ClientLogAppendTime,
    /// The compressed payload is corrupt or too large once decompressed.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// A record that cannot be read.
    #[error("record {index}: {fault}")]
    Record {
        /// The record's index in the batch.
        index: u32,
        /// What is wrong.
        fault: RecordFault,
    },
    /// Records refused one by one; [`Validator::record_problems`] lists them.
    #[error(
        "{count} of the batch's records were refused (the first: record {first_index}: {first})"
    )]
    Refused {
        /// How many records were refused.
        count: usize,
        /// The first one's index.
        first_index: u32,
        /// The first one's problem.
        first: RecordProblemKind,
        /// True when any of them is a timestamp problem.
        timestamps: bool,
    },
}

impl From<WalkError> for ValidationError {
    fn from(e: WalkError) -> Self {
        ValidationError::Record {
            index: e.index,
            fault: RecordFault::Malformed(e.what),
        }
    }
}

/// Validates batches, keeping a scratch buffer and decoder states between
/// them so that the steady state allocates nothing. One per thread.
#[derive(Debug, Default)]
pub struct Validator {
    decoders: Decoders,
    scratch: Vec<u8>,
    problems: Vec<RecordProblem>,
}

fn check_header(h: &BatchHeader) -> Result<(), ValidationError> {
    if h.records_count == 0 {
        return Err(BatchProblem::NoRecords.into());
    }
    if h.last_offset_delta != h.records_count - 1 {
        return Err(BatchProblem::LastOffsetDelta {
            last_offset_delta: h.last_offset_delta,
            records_count: h.records_count,
        }
        .into());
    }
    if h.compression().is_none() {
        return Err(BatchProblem::UnknownCodec(h.attributes).into());
    }
    if h.is_control() {
        return Err(BatchProblem::Control.into());
    }
    if h.attributes & !CLIENT_ATTRIBUTES != 0 {
        return Err(BatchProblem::UnknownAttributes(h.attributes).into());
    }
    if h.is_transactional() && h.producer_id < 0 {
        return Err(BatchProblem::TransactionalWithoutProducer.into());
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(BatchProblem::NoSequence {
            producer_id: h.producer_id,
            base_sequence: h.base_sequence,
        }
        .into());
    }
    if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
        return Err(ValidationError::ClientLogAppendTime);
    }
    Ok(())
}

/// The per-record rules that end the walk at the first failure.
#[inline(always)]
fn check_record(index: u32, r: &RawRecord<'_>) -> Result<(), RecordFault> {
    if r.offset_delta as u32 != index || r.offset_delta < 0 {
        return Err(RecordFault::OffsetDelta {
            found: r.offset_delta,
            expected: index,
        });
    }
    if r.attributes != 0 {
        return Err(RecordFault::Attributes(r.attributes));
    }
    if r.header_count > 0
        && r.headers()
            .any(|(k, _)| k.contains(&0) || std::str::from_utf8(k).is_err())
    {
        return Err(RecordFault::HeaderKey);
    }
    Ok(())
}

impl Validator {
    /// A validator with empty buffers.
    pub fn new() -> Validator {
        Validator::default()
    }

    /// Checks one whole batch (`batch` starts with the header `h`, whose
    /// length and CRC the caller has checked). On
    /// [`ValidationError::Refused`], [`Validator::record_problems`] lists
    /// the refused records.
    pub fn validate(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        policy: &ValidationPolicy,
    ) -> Result<(), ValidationError> {
        self.problems.clear();
        check_header(h)?;
        let records = batch
            .get(HEADER_LEN..h.total_len())
            .ok_or(BatchProblem::NoRecords)?;
        match h.compression() {
            Some(Compression::None) | None => self.walk(records, h, policy),
            Some(codec) => {
                let mut scratch = std::mem::take(&mut self.scratch);
                let r = self
                    .decoders
                    .decompress(codec, records, &mut scratch, policy.decompressed_limit())
                    .map_err(ValidationError::from)
                    .and_then(|()| self.walk(&scratch, h, policy));
                if scratch.capacity() <= KEEP_SCRATCH {
                    self.scratch = scratch;
                }
                r
            }
        }
    }

    /// The records refused by the last [`Validator::validate`] (at most
    /// [`MAX_LISTED_RECORD_PROBLEMS`]).
    pub fn record_problems(&self) -> &[RecordProblem] {
        &self.problems
    }

    fn walk(
        &mut self,
        data: &[u8],
        h: &BatchHeader,
        policy: &ValidationPolicy,
    ) -> Result<(), ValidationError> {
        let check_time = policy.create_time;
        let lower = policy.now_ms.saturating_sub(policy.timestamp_before_max_ms);
        let upper = policy.now_ms.saturating_add(policy.timestamp_after_max_ms);
        let base = h.base_timestamp;
        let mut fault = None;
        let mut refused = 0usize;
        let mut first = None;
        let mut timestamps = false;
        let problems = &mut self.problems;
        let walked = walk(data, h.records_count, |index, r| {
            if let Err(f) = check_record(index, r) {
                fault = Some((index, f));
                return ControlFlow::Break(());
            }
            let ts = base.wrapping_add(r.timestamp_delta);
            let problem = if policy.compacted && r.key.is_none() {
                Some(RecordProblemKind::NoKey)
            } else if check_time && ts != NO_TIMESTAMP && (ts < lower || ts > upper) {
                Some(RecordProblemKind::Timestamp {
                    timestamp: ts,
                    lower,
                    upper,
                })
            } else {
                None
            };
            if let Some(kind) = problem {
                refused += 1;
                timestamps |= kind.is_timestamp();
                first.get_or_insert((index, kind));
                if problems.len() < MAX_LISTED_RECORD_PROBLEMS {
                    problems.push(RecordProblem { index, kind });
                }
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = walked {
            self.problems.clear();
            return Err(e.into());
        }
        if let Some((index, fault)) = fault {
            self.problems.clear();
            return Err(ValidationError::Record { index, fault });
        }
        match first {
            Some((first_index, first)) => Err(ValidationError::Refused {
                count: refused,
                first_index,
                first,
                timestamps,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
