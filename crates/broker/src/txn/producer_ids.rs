//! Producer id allocation that never hands out an id twice, even across
//! crashes: ids come in blocks, and a block is recorded on disk (fsynced)
//! before its first id is used, as Kafka's controller does with its blocks.
//!
//! When `producer-id-block` is missing from a data directory that has been
//! used, the allocator does not start again at 0: the coordinator raises it
//! above every producer id the partitions' producer state and
//! `__transaction_state` remember ([`ProducerIds::raise_floor`]).

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use thiserror::Error;

/// Ids reserved per disk write.
pub const BLOCK_SIZE: i64 = 1000;

/// The file, in the data directory.
pub const FILE: &str = "producer-id-block";

const REMEDY: &str = "It holds the end of the last block of producer ids this broker reserved. \
To recover, delete the file: the broker then continues above the highest producer id found in \
the partitions' producer state and __transaction_state. Or write into it a number above every \
producer id ever handed out";

/// Why the allocator could not open.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProducerIdsError {
    /// The file is empty or does not hold a block end.
    #[error("{} {problem}. {REMEDY}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// Hands out producer ids.
pub struct ProducerIds {
    source: Source,
    block: Mutex<Block>,
    /// False when the file was missing at open.
    found: bool,
}

/// Asks the controller for a block of `count` ids; returns its first id.
pub type BlockSource = Box<dyn Fn(i64) -> std::io::Result<i64> + Send + Sync>;

/// Where blocks come from.
enum Source {
    /// One node: reserved in `producer-id-block`.
    File(PathBuf),
    /// A cluster: handed out by the controller (AllocateProducerIds), so
    /// no two brokers ever give out the same id.
    Controller(BlockSource),
}

impl std::fmt::Debug for ProducerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::File(p) => p.display().to_string(),
            Source::Controller(_) => "controller".to_string(),
        };
        f.debug_struct("ProducerIds")
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

/// Reads the block end in `path`: `None` when the file does not exist.
fn read_block_end(path: &Path) -> Result<Option<i64>, ProducerIdsError> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ProducerIdsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let damaged = |problem: String| ProducerIdsError::Damaged {
        path: path.to_path_buf(),
        problem,
    };
    let trimmed = String::from_utf8_lossy(&text);
    let trimmed = trimmed.trim();
    if trimmed.is_empty() {
        return Err(damaged(format!(
            "is empty ({} bytes), but it should hold a producer id",
            text.len()
        )));
    }
    match trimmed.parse::<i64>() {
        Ok(end) if end >= 0 => Ok(Some(end)),
        _ => {
            let shown: String = trimmed.chars().take(40).collect();
            Err(damaged(format!(
                "is damaged: it should hold a producer id (a number of zero or more), not {shown:?}"
            )))
        }
    }
}

impl ProducerIds {
    /// Opens the allocator kept in `dir`; the first id handed out is the end
    /// of the last block reserved before (0 when the file is missing, until
    /// [`ProducerIds::raise_floor`]).
    pub fn open(dir: &Path) -> Result<ProducerIds, ProducerIdsError> {
        let path = dir.join(FILE);
        let stored = read_block_end(&path)?;
        let end = stored.unwrap_or(0);
        Ok(ProducerIds {
            source: Source::File(path),
            block: Mutex::new(Block { next: end, end }),
            found: stored.is_some(),
        })
    }

    /// An allocator whose blocks come from the cluster's controller.
    pub fn from_controller(source: BlockSource) -> ProducerIds {
        ProducerIds {
            source: Source::Controller(source),
            block: Mutex::new(Block { next: 0, end: 0 }),
            found: true,
        }
    }

    /// True when `producer-id-block` existed at open.
    pub fn found_file(&self) -> bool {
        self.found
    }

    /// Makes every id handed out from now on larger than `highest_used`:
    /// the next id starts a fresh block past the one `highest_used` came
    /// from and the one after it (ids may have been handed out from a block
    /// reserved after it, before any partition saw them). Returns the next id.
    pub fn raise_floor(&self, highest_used: i64) -> i64 {
        let floor = (highest_used.max(0) / BLOCK_SIZE)
            .saturating_add(2)
            .saturating_mul(BLOCK_SIZE);
        let mut b = self.block.lock();
        // The controller's blocks are above every id it handed out already.
        if floor > b.next && matches!(self.source, Source::File(_)) {
            b.next = floor;
        }
        b.next
    }

    /// A fresh producer id.
    pub fn next(&self) -> std::io::Result<i64> {
        let mut b = self.block.lock();
        if b.next >= b.end {
            match &self.source {
                Source::File(path) => {
                    let end = b.next + BLOCK_SIZE;
                    crate::durable::write_atomically(path, end.to_string().as_bytes())?;
                    b.end = end;
                }
                Source::Controller(ask) => {
                    let first = ask(BLOCK_SIZE)?;
                    b.next = first;
                    b.end = first + BLOCK_SIZE;
                }
            }
        }
        let id = b.next;
        b.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ProducerIds::open(dir.path()).expect("open");
        assert!(!a.found_file());
        let first: Vec<i64> = (0..3).map(|_| a.next().expect("id")).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIds::open(dir.path()).expect("reopen");
        assert!(b.found_file());
        assert_eq!(b.next().expect("id"), BLOCK_SIZE);
    }

    #[test]
    fn empty_or_damaged_files_say_what_is_wrong_and_how_to_recover() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (content, expect) in [
            ("", "is empty (0 bytes)"),
            ("\n", "is empty (1 bytes)"),
            ("12x", "not \"12x\""),
            ("-5", "not \"-5\""),
        ] {
            std::fs::write(dir.path().join(FILE), content).expect("write");
            let e = ProducerIds::open(dir.path())
                .expect_err("refused")
                .to_string();
            assert!(e.contains(expect), "{content:?}: {e}");
            assert!(e.contains("producer-id-block"), "{e}");
            assert!(e.contains("To recover, delete the file"), "{e}");
            assert!(
                !e.contains("cannot write"),
                "a read failure never says write: {e}"
            );
        }
    }

    #[test]
    fn a_raised_floor_skips_past_the_used_block_and_is_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ProducerIds::open(dir.path()).expect("open");
        assert_eq!(a.raise_floor(4321), 6000);
        assert_eq!(a.next().expect("id"), 6000);
        // A lower floor never moves it back.
        assert_eq!(a.raise_floor(7), 6001);
        drop(a);
        let b = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(b.next().expect("id"), 7000);
    }
}
