//! Strom's storage engine: one durable, segmented, append-only log per partition.
//!
//! A [`Log`] is a directory of segments laid out like Kafka's:
//! `<20-digit base offset>.log` holding raw v2 record batches, plus a sparse
//! `.index` (offset → byte position) and `.timeindex` (timestamp → offset).
//! Batches go in and come out as raw bytes: `append` writes them with patched
//! copies of their headers (the caller's buffer is not changed or copied
//! whole); `read` returns whole batches with one `pread`.
//!
//! # Durability and the flush policy
//!
//! [`FlushPolicy::Os`] is the default, as in Kafka: appended bytes are in the
//! page cache when `append` returns, so they survive a crash of the process
//! (`kill -9`) but not of the machine. Replication is the answer to the latter
//! (DESIGN.md decision 3), and forcing every write to disk costs an order of
//! magnitude in throughput. [`FlushPolicy::EveryAppend`] fsyncs before
//! returning, with group commit: concurrent appenders wait on one fsync that
//! covers all of them. Small appends under this policy are write-behind: the
//! appender only copies its batches into a buffer (offsets already
//! assigned), and the group's leader writes the buffer with one `pwrite` and
//! fsyncs once, so no appender stalls on pages an fsync is flushing; nothing
//! is visible to readers until it is written. [`FlushPolicy::Interval`] bounds the loss window.
//! A failed fsync takes the log offline ([`StorageError::Offline`]) rather than
//! carrying on over pages the kernel may have dropped.
//!
//! # Recovery
//!
//! A clean [`Log::close`] leaves a `clean_shutdown` marker holding the log end
//! offset; the next open trusts the files and reads nothing but the directory.
//! Without it, every segment is scanned: each batch's length, magic, CRC32C and
//! offset order are checked, the first bad batch and everything after it are
//! cut off, and the indexes are rebuilt. Indexes found missing or insane later
//! (even after a clean shutdown) are rebuilt from the log when first needed.
//!
//! # Scale: files and memory per partition
//!
//! Opening a log opens no segment file (it reads only its small state
//! files: the clean-shutdown marker, the log start, the leader-epoch
//! checkpoint). A segment opens its `.log` on first use and
//! [`Log::release_idle_handles`] closes handles idle for a while, so open
//! descriptors grow with *busy* partitions (1 for the active segment, +2 index
//! files while appends are crossing index intervals, +1 per segment being
//! read), not with partitions or segments on disk. Indexes are not mmapped or
//! preallocated: a segment's index is read into memory on first lookup and
//! costs ~12 bytes per `index.interval.bytes` (4 KiB) of data, about 0.3%
//! (3 MiB per GiB). An idle partition costs a few hundred bytes of heap.
#![deny(clippy::unwrap_used)]

mod checkpoint;
pub mod cleaner;
mod config;
mod epochs;
mod error;
mod index;
mod log;
mod reserve;
mod segment;

pub use config::{FlushPolicy, LogConfig, TimestampType};
pub use epochs::{EpochEntry, LEADER_EPOCH_CHECKPOINT};
pub use error::{Result, StorageError};
pub use log::{system_clock, AppendInfo, Clock, Log, ReadResult};
