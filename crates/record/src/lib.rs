//! Kafka v2 record batches as raw bytes.
//!
//! The broker stores a producer's batch as it came (DESIGN.md decision 2): it
//! reads the 61-byte batch header in place, checks the CRC32C, patches the base
//! offset (and the timestamp when the topic uses `LogAppendTime`). Before
//! that, [`Validator`] walks every record once, as Kafka's log validator
//! does, so that nothing a consumer cannot read is ever stored: in place for
//! uncompressed batches, in a reused and bounded buffer for compressed ones;
//! the walk reads lengths and varints and never copies a record. This crate
//! is the header view, that validation, the record walk it shares with the
//! readers of records (clients, offset-for-timestamp lookups) and a builder.
//!
//! Layout of a v2 batch header (all integers big-endian):
//!
//! ```text
//!  0  base_offset            i64   assigned by the broker
//!  8  batch_length           i32   bytes after this field
//! 12  partition_leader_epoch i32
//! 16  magic                  i8    always 2
//! 17  crc                    u32   CRC32C of bytes 21..end
//! 21  attributes             i16   compression:3 | timestamp_type:1 | transactional:1 | control:1
//! 23  last_offset_delta      i32
//! 27  base_timestamp         i64
//! 35  max_timestamp          i64
//! 43  producer_id            i64
//! 51  producer_epoch         i16
//! 53  base_sequence          i32
//! 57  records_count          i32
//! 61  records...
//! ```
#![deny(clippy::unwrap_used)]

mod batch;
mod build;
mod compact;
mod decompress;
mod records;
#[cfg(test)]
mod testing;
mod validate;
mod walk;

pub use batch::{
    BatchError, BatchHeader, Batches, Compression, ATTR_CONTROL, ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL, HEADER_LEN, LENGTH_PREFIX, LOG_OVERHEAD,
};
pub use build::{BatchBuilder, BatchWriter, OwnedRecord};
pub use compact::{empty_batch, CleanRecord, Compactor, Filtered, ATTR_DELETE_HORIZON};
pub use decompress::DecompressError;
pub use records::{
    first_offset_at_or_after, for_each_record, for_each_record_shared, RecordError, RecordView,
    READ_DECOMPRESSED_LIMIT,
};
pub use validate::{
    BatchProblem, RecordFault, RecordProblem, RecordProblemKind, ValidationError, ValidationPolicy,
    Validator, DECOMPRESSION_LIMIT_FACTOR, MAX_LISTED_RECORD_PROBLEMS,
};
pub use walk::{Malformed, WalkError};
