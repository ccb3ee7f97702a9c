//! A replicated partition's high watermark, saved in its directory every
//! few seconds (Kafka's `replication-offset-checkpoint`, written every
//! `replica.high.watermark.checkpoint.interval.ms`).
//!
//! After a restart the log may hold records past what was acknowledged: a
//! leader's unreplicated tail, or what a follower copied from a leader that
//! then died. Everything below the high watermark is on every in-sync
//! replica, so a replica coming back as a follower cuts its log to the
//! checkpoint and fetches the rest from the current leader. The checkpoint
//! only lags the true high watermark, which costs a little refetching,
//! never a record.

use std::path::Path;

/// The file, in the partition's directory.
pub const FILE: &str = "high-watermark";

/// The saved high watermark, if the file is there and readable.
pub fn read(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    match text.trim().parse::<i64>() {
        Ok(hw) if hw >= 0 => Some(hw),
        _ => {
            tracing::warn!(dir = %dir.display(), "unreadable high-watermark checkpoint; the log is refetched from its start");
            None
        }
    }
}

/// Saves `hw` (written aside and renamed, so a crash leaves the old or the
/// new value, never a torn one).
pub fn write(dir: &Path, hw: i64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, format!("{hw}\n"))?;
    std::fs::rename(&tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_junk_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), None);
        write(dir.path(), 42).expect("write");
        assert_eq!(read(dir.path()), Some(42));
        std::fs::write(dir.path().join(FILE), b"-3").expect("junk");
        assert_eq!(read(dir.path()), None);
        std::fs::write(dir.path().join(FILE), b"\xff").expect("junk");
        assert_eq!(read(dir.path()), None);
    }
}
