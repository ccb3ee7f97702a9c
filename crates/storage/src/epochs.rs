//! The leader-epoch cache of a log (Kafka's `LeaderEpochFileCache`): for
//! each leader epoch that wrote to the log, the offset its first record
//! has. Replicas compare their caches to find where their logs diverge
//! (KIP-101, KIP-279): the records of epoch `e` end where the next epoch
//! the log knows starts.
//!
//! Kept in the log directory as `leader-epoch-checkpoint`, in Kafka's
//! text format (a version line `0`, a count line, then `epoch start_offset`
//! lines), rewritten durably on every change. Changes are rare: one per
//! leader change, plus truncations and moves of the log start.

use std::io;
use std::path::Path;

use crate::checkpoint;

/// Name of the checkpoint file, as Kafka names it.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// A checkpoint larger than this is not read (it would hold millions of
/// leader changes): the cache starts empty instead, as for a log from
/// before leader epochs.
const MAX_CHECKPOINT_BYTES: u64 = 1 << 20;

/// "No epoch" and "no offset" in Kafka's answers (`UNDEFINED_EPOCH`,
/// `UNDEFINED_EPOCH_OFFSET`).
pub const UNDEFINED: (i32, i64) = (-1, -1);

/// One leader epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of the first record written at it.
    pub start_offset: i64,
}

/// The entries of one log, epochs and start offsets both increasing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Reads `dir`'s checkpoint. A missing file is an empty cache; a file
    /// that is not a well-formed checkpoint (or too large) is logged and
    /// read as empty too: the replica then falls back to the high
    /// watermark, as a log from before leader epochs does.
    pub(crate) fn load(dir: &Path) -> io::Result<EpochCache> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_CHECKPOINT_BYTES => {
                tracing::warn!(file = %path.display(), bytes = m.len(), "leader-epoch checkpoint too large; ignored");
                return Ok(EpochCache::default());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(EpochCache::default()),
            Err(e) => return Err(e),
        }
        let text = std::fs::read_to_string(&path)?;
        match parse(&text) {
            Some(cache) => Ok(cache),
            None => {
                tracing::warn!(file = %path.display(), "unreadable leader-epoch checkpoint; ignored");
                Ok(EpochCache::default())
            }
        }
    }

    /// Writes the checkpoint durably.
    pub(crate) fn save(&self, dir: &Path) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        checkpoint::write_text(dir, LEADER_EPOCH_CHECKPOINT, &text)
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than
    /// the latest epoch known; entries starting at or after `start_offset`
    /// go (an epoch this node led without writing). Older or equal epochs
    /// change nothing. Returns whether the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self.latest().is_some_and(|l| l.epoch >= epoch) {
            return false;
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at most `requested` this
    /// log knows, and the offset after its last record (the start of the
    /// next epoch; `log_end` for the latest). [`UNDEFINED`] when `requested`
    /// is undefined, newer than every epoch here, or the cache is empty.
    /// An epoch older than all here answers `requested` and the start of
    /// the oldest.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        let Some(latest) = self.latest() else {
            return UNDEFINED;
        };
        if requested < 0 {
            return UNDEFINED;
        }
        if requested == latest.epoch {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return UNDEFINED;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The log was cut at `end`: epochs starting there or later are gone.
    pub(crate) fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// The log now starts at `start`: the epoch holding it starts there,
    /// older ones are gone.
    pub(crate) fn truncate_from_start(&mut self, start: i64) -> bool {
        let Some(holding) = self.entries.iter().rposition(|e| e.start_offset <= start) else {
            return false;
        };
        let mut changed = holding > 0;
        self.entries.drain(..holding);
        if self.entries[0].start_offset < start {
            self.entries[0].start_offset = start;
            changed = true;
        }
        changed
    }
}

/// Parses Kafka's checkpoint text; `None` when it is not one (wrong
/// version, count not matching, entries out of order).
fn parse(text: &str) -> Option<EpochCache> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut cache = EpochCache::default();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let epoch: i32 = parts.next()?.parse().ok()?;
        let start_offset: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || epoch < 0 || start_offset < 0 {
            return None;
        }
        if cache
            .latest()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset > start_offset)
        {
            return None;
        }
        cache.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    (cache.entries.len() == count).then_some(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for (e, o) in entries {
            assert!(c.assign(*e, *o));
        }
        c
    }

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(c.end_offset_for(4, 40), (4, 40), "latest: the log end");
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(
            c.end_offset_for(2, 40),
            (1, 10),
            "unknown: the one before it"
        );
        assert_eq!(c.end_offset_for(0, 40), (0, 0), "older than all");
        assert_eq!(c.end_offset_for(5, 40), UNDEFINED, "newer than all");
        assert_eq!(c.end_offset_for(-1, 40), UNDEFINED);
        assert_eq!(EpochCache::default().end_offset_for(0, 5), UNDEFINED);
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let mut c = cache(&[(1, 0), (2, 10)]);
        assert!(!c.assign(2, 15), "same epoch");
        assert!(!c.assign(1, 20), "older epoch");
        // Led epoch 3 from offset 10 without writing, then a new leader's
        // epoch 4 starts at 10 too.
        assert!(c.assign(3, 12));
        assert!(c.assign(4, 10));
        assert_eq!(c.entries(), cache(&[(1, 0), (4, 10)]).entries());
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert!(c.truncate_from_end(25));
        assert_eq!(
            c.latest(),
            Some(EpochEntry {
                epoch: 3,
                start_offset: 10
            })
        );
        assert!(!c.truncate_from_end(30));
        assert!(c.truncate_from_start(12));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        assert!(!c.truncate_from_start(5));
    }

    #[test]
    fn the_checkpoint_round_trips_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cache(&[(0, 0), (2, 7)]);
        c.save(dir.path()).expect("save");
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("read");
        assert_eq!(text, "0\n2\n0 0\n2 7\n");
        assert_eq!(EpochCache::load(dir.path()).expect("load"), c);
        for bad in [
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n2\n3 0\n2 7\n",
            "0\n1\nx 0\n",
            "0\n1\n-1 0\n",
        ] {
            std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), bad).expect("write");
            assert_eq!(
                EpochCache::load(dir.path()).expect("load"),
                EpochCache::default(),
                "{bad:?}"
            );
        }
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            EpochCache::load(empty.path()).expect("load"),
            EpochCache::default()
        );
    }
}
