//! Per-log settings, under Kafka's topic-config names.

/// When appended bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fsync before `append` returns (Kafka `flush.messages=1`). Concurrent
    /// appenders share one fsync (group commit).
    EveryAppend,
    /// fsync when this many milliseconds have passed since the last one
    /// (Kafka `flush.ms`); driven by [`crate::Log::flush_if_due`].
    Interval(u64),
    /// Leave it to the OS page cache (Kafka's default). Survives a process
    /// crash (`kill -9`), not a power cut; replication covers the latter.
    Os,
}

/// How record timestamps are set (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite with the broker's append time.
    LogAppendTime,
}

/// Settings of one partition log. Defaults are Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when the active one would pass this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of batches between two sparse index entries.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete closed segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 means no limit.
    pub retention_bytes: i64,
    /// `flush.messages` / `flush.ms`.
    pub flush: FlushPolicy,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy` includes `compact`: the log cleaner keeps the
    /// latest record of each key (retention still applies with `delete`).
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone (or a transaction marker
    /// the cleaner may drop) stays after the clean that first reached it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a record is not cleaned before it is this old.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record stays uncleaned at most this long;
    /// it also bounds how long the active segment of a compacted log stays open.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once this share of the log is dirty.
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes`: the largest batch; bounds the cleaner's decompression.
    pub max_message_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            flush: FlushPolicy::Os,
            timestamp_type: TimestampType::CreateTime,
            compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
        }
    }
}

impl LogConfig {
    /// How long the active segment may stay open by record time: `segment.ms`,
    /// or for a compacted log `max.compaction.lag.ms` when smaller (the
    /// active segment is never cleaned, so it must roll for its records to
    /// become cleanable in time), as Kafka does.
    pub fn effective_segment_ms(&self) -> i64 {
        if self.compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}
