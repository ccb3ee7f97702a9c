//! Kafka v2 record batches as raw bytes.
//!
//! The broker never decodes records on the hot path (DESIGN.md decision 2): it
//! reads the 61-byte batch header in place, checks the CRC32C, patches the base
//! offset (and the timestamp when the topic uses `LogAppendTime`) and stores the
//! bytes as they came. This crate is that header view plus the few cold-path
//! helpers that do need the records (offset-for-timestamp lookups, tests).
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
mod records;

pub use batch::{
    BatchError, BatchHeader, Batches, Compression, ATTR_CONTROL, ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL, HEADER_LEN, LENGTH_PREFIX, LOG_OVERHEAD,
};
pub use build::{BatchBuilder, BatchWriter, OwnedRecord};
pub use records::{
    first_offset_at_or_after, for_each_record, for_each_record_shared, RecordError, RecordView,
};
