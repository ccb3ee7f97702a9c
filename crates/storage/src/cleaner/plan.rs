//! Which part of a log may be cleaned now, and how dirty it is: a pure
//! function of the segments, the offsets and the time, as Kafka's
//! `LogCleanerManager.cleanableOffsets` and `calculateCleanableBytes`.

/// What the planner needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// Base offset.
    pub base: i64,
    /// Bytes.
    pub size: u64,
    /// Largest record timestamp, when it has any.
    pub largest_ts: Option<i64>,
    /// Max timestamp of its first batch (`max.compaction.lag.ms` counts from it).
    pub first_batch_ts: Option<i64>,
}

/// The cleanable part of a log and how dirty it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanableRange {
    /// Where the dirty (never cleaned) section starts.
    pub first_dirty: i64,
    /// The cleaner may not go at or past this offset: the active segment,
    /// the last stable offset, records younger than `min.compaction.lag.ms`.
    pub first_uncleanable: i64,
    /// Bytes of the already cleaned section.
    pub clean_bytes: u64,
    /// Bytes of the dirty section the cleaner may clean now.
    pub dirty_bytes: u64,
    /// `dirty / (clean + dirty)`, 0 for an empty log.
    pub dirty_ratio: f64,
    /// How long past `max.compaction.lag.ms` the oldest dirty record is
    /// (0 when it is not): such a log is cleaned whatever its ratio.
    pub overdue_ms: i64,
}

impl CleanableRange {
    /// True when the cleaner should clean the log now: something to clean,
    /// and dirty enough or overdue.
    pub fn is_due(&self, min_dirty_ratio: f64) -> bool {
        self.dirty_bytes > 0 && (self.dirty_ratio >= min_dirty_ratio || self.overdue_ms > 0)
    }
}

/// Offsets and settings the planner works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanInput {
    pub log_start: i64,
    pub log_end: i64,
    /// The cleaner's checkpoint, when it has cleaned this log before.
    pub checkpoint: Option<i64>,
    /// Last stable offset: no clean past an open transaction.
    pub last_stable: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub now_ms: i64,
}

/// Plans over `segs` (in offset order, the last one active).
pub(crate) fn cleanable(segs: &[SegmentInfo], p: &PlanInput) -> CleanableRange {
    let first_dirty = match p.checkpoint {
        Some(c) if c >= p.log_start && c <= p.log_end => c,
        _ => p.log_start,
    };
    let active_base = segs.last().map_or(p.log_end, |s| s.base);
    let non_active = &segs[..segs.len().saturating_sub(1)];
    // A segment's offsets end where the next one starts.
    let end_of = |i: usize| segs.get(i + 1).map_or(p.log_end, |n| n.base);
    let mut uncleanable = p.last_stable.min(active_base);
    if p.min_compaction_lag_ms > 0 {
        let horizon = p.now_ms.saturating_sub(p.min_compaction_lag_ms);
        if let Some(s) = non_active
            .iter()
            .enumerate()
            .filter(|(i, _)| end_of(*i) > first_dirty)
            .map(|(_, s)| s)
            .find(|s| s.largest_ts.is_some_and(|t| t > horizon))
        {
            uncleanable = uncleanable.min(s.base);
        }
    }
    let uncleanable = uncleanable.max(first_dirty);
    // Only whole segments are cleaned: the segment holding the uncleanable
    // offset (or the active one) bounds what may be cleaned.
    let bound = segs
        .iter()
        .rposition(|s| s.base <= uncleanable)
        .map_or(active_base, |i| segs[i].base)
        .min(active_base);
    let mut clean_bytes = 0;
    let mut dirty_bytes = 0;
    let mut oldest_dirty: Option<i64> = None;
    for (i, s) in non_active
        .iter()
        .enumerate()
        .filter(|(_, s)| s.base < bound)
    {
        if end_of(i) <= first_dirty {
            clean_bytes += s.size;
        } else {
            dirty_bytes += s.size;
            if let Some(t) = s.first_batch_ts {
                oldest_dirty = Some(oldest_dirty.map_or(t, |o| o.min(t)));
            }
        }
    }
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let overdue_ms = match oldest_dirty {
        Some(t) if p.max_compaction_lag_ms < i64::MAX => p
            .now_ms
            .saturating_sub(t)
            .saturating_sub(p.max_compaction_lag_ms)
            .max(0),
        _ => 0,
    };
    CleanableRange {
        first_dirty,
        first_uncleanable: bound.max(first_dirty),
        clean_bytes,
        dirty_bytes,
        dirty_ratio,
        overdue_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, size: u64, ts: i64) -> SegmentInfo {
        SegmentInfo {
            base,
            size,
            largest_ts: Some(ts),
            first_batch_ts: Some(ts),
        }
    }

    fn input(checkpoint: Option<i64>) -> PlanInput {
        PlanInput {
            log_start: 0,
            log_end: 400,
            checkpoint,
            last_stable: 400,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            now_ms: 10_000,
        }
    }

    fn log() -> Vec<SegmentInfo> {
        vec![
            seg(0, 100, 1_000),
            seg(100, 100, 2_000),
            seg(200, 100, 3_000),
            seg(300, 50, 4_000), // active
        ]
    }

    #[test]
    fn never_cleaned_log_is_all_dirty_up_to_the_active_segment() {
        let r = cleanable(&log(), &input(None));
        assert_eq!(r.first_dirty, 0);
        assert_eq!(r.first_uncleanable, 300);
        assert_eq!((r.clean_bytes, r.dirty_bytes), (0, 300));
        assert_eq!(r.dirty_ratio, 1.0);
        assert!(r.is_due(0.5));
    }

    #[test]
    fn checkpoint_splits_clean_from_dirty() {
        let r = cleanable(&log(), &input(Some(200)));
        assert_eq!(r.first_dirty, 200);
        assert_eq!((r.clean_bytes, r.dirty_bytes), (200, 100));
        assert!((r.dirty_ratio - 1.0 / 3.0).abs() < 1e-9);
        assert!(!r.is_due(0.5));
        assert!(r.is_due(0.3));
        // A checkpoint past the log end (damage) or before its start resets.
        assert_eq!(cleanable(&log(), &input(Some(9_999))).first_dirty, 0);
    }

    #[test]
    fn lag_and_last_stable_offset_hold_the_cleaner_back() {
        let mut p = input(None);
        p.min_compaction_lag_ms = 7_500; // segments with records newer than 2,500 wait
        let r = cleanable(&log(), &p);
        assert_eq!(r.first_uncleanable, 200);
        assert_eq!(r.dirty_bytes, 200);
        let mut p = input(None);
        p.last_stable = 150; // an open transaction from offset 150
        let r = cleanable(&log(), &p);
        assert_eq!(
            r.first_uncleanable, 100,
            "only whole segments below the LSO"
        );
        assert_eq!(r.dirty_bytes, 100);
    }

    #[test]
    fn overdue_logs_are_due_whatever_their_ratio() {
        let mut p = input(Some(200));
        p.max_compaction_lag_ms = 5_000;
        let r = cleanable(&log(), &p);
        assert_eq!(r.overdue_ms, 10_000 - 3_000 - 5_000);
        assert!(r.is_due(0.99));
    }

    #[test]
    fn nothing_to_clean_in_a_one_segment_log() {
        let r = cleanable(&[seg(0, 500, 1)], &input(None));
        assert_eq!(r.dirty_bytes, 0);
        assert!(!r.is_due(0.0));
    }
}
