//! Producer id allocation that never hands out an id twice, even across
//! crashes: ids come in blocks, and a block is recorded on disk (fsynced)
//! before its first id is used, as Kafka's controller does with its blocks.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// Ids reserved per disk write.
pub const BLOCK_SIZE: i64 = 1000;

const FILE: &str = "producer-id-block";

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// Hands out producer ids.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIds {
    /// Opens the allocator kept in `dir`; the first id handed out is the end
    /// of the last block reserved before.
    pub fn open(dir: &Path) -> std::io::Result<ProducerIds> {
        let path = dir.join(FILE);
        let end = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            block: Mutex::new(Block { next: end, end }),
        })
    }

    /// A fresh producer id.
    pub fn next(&self) -> std::io::Result<i64> {
        let mut b = self.block.lock();
        if b.next >= b.end {
            let end = b.next + BLOCK_SIZE;
            crate::durable::write_atomically(&self.path, end.to_string().as_bytes())?;
            b.end = end;
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
        let first: Vec<i64> = (0..3).map(|_| a.next().expect("id")).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(b.next().expect("id"), BLOCK_SIZE);
    }
}
