//! Errors of the storage layer.

use std::path::PathBuf;
use thiserror::Error;

/// What went wrong in a partition log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O call failed; retriable at the caller's discretion.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes make no sense and could not be repaired.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// The requested offset is not in the log.
    #[error(
        "offset {offset} is out of range: the log holds [{log_start_offset}, {log_end_offset})"
    )]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// First offset still in the log.
        log_start_offset: i64,
        /// Offset the next record will get.
        log_end_offset: i64,
    },
    /// Bytes handed to `append` are not well-formed batches.
    #[error("invalid record batch in append: {0}")]
    InvalidBatch(#[from] strom_record::BatchError),
    /// A batch does not fit the segment size limit or the 2 GiB position space.
    #[error("record batch of {size} bytes does not fit a segment of {segment_bytes} bytes")]
    BatchTooLarge {
        /// Bytes in the append.
        size: usize,
        /// The segment size limit.
        segment_bytes: u64,
    },
    /// A replicated batch starts below the log's end: the follower's log
    /// and the leader's disagree, and the follower must truncate first.
    #[error(
        "replicated batch at offset {offset} overlaps the log, which ends at {log_end_offset}"
    )]
    OffsetOverlap {
        /// The batch's base offset.
        offset: i64,
        /// Offset the next record would get.
        log_end_offset: i64,
    },
    /// A clean was stopped (shutdown); the log is as it was before it.
    #[error("cleaning of {path} was stopped")]
    CleanAborted {
        /// The segment being read when it stopped.
        path: PathBuf,
    },
    /// A flush failed earlier; the log refuses writes until it is reopened,
    /// because the OS may have dropped dirty pages (fatal, not retriable).
    #[error("log {path} is offline after a failed fsync; restart to recover")]
    Offline {
        /// The log's directory.
        path: PathBuf,
    },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for storage calls.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
