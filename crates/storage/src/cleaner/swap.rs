//! Replacing segments with their cleaned copy so that a crash at any point
//! leaves either the old segments or the new one, never a mix.
//!
//! The steps, each durable before the next (what Kafka does with its
//! `.cleaned` and `.swap` suffixes, with one commit record instead of a
//! rename per file):
//!
//! 1. The cleaned segment is written as `<base>.log.cleaned`,
//!    `<base>.index.cleaned` and `<base>.timeindex.cleaned`, and fsynced.
//!    A crash here leaves the old segments; `.cleaned` files are deleted
//!    at the next open.
//! 2. **Commit**: `cleaner-swap` is written atomically (temp file, fsync,
//!    rename, directory fsync). It names the new segment's base offset and
//!    the base offsets it replaces. From here on the clean is done: the next
//!    open finishes it.
//! 3. The replaced segments other than the one at `<base>` are deleted, then
//!    the `.cleaned` files are renamed over `<base>.index`, `<base>.timeindex`
//!    and last `<base>.log`; the directory is fsynced.
//! 4. `cleaner-swap` is removed.
//!
//! Every step of 3 can run again after a crash: a rename whose source is
//! gone happened already, a delete of a missing file is done.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::sync_dir;
use crate::segment::file_stem;

/// The commit record of a segment swap.
pub(crate) const SWAP_FILE: &str = "cleaner-swap";

/// Suffix of a cleaned segment's files before the swap.
const CLEANED: &str = ".cleaned";

/// The file extensions of a segment, the log last (it is renamed last).
const EXTENSIONS: [&str; 3] = ["index", "timeindex", "log"];

/// A committed replacement: `base`'s new files replace the segments at `replaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Swap {
    pub base: i64,
    pub replaces: Vec<i64>,
}

/// The path of a segment file: `<dir>/<20 digits>.<ext>`.
pub(crate) fn segment_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", file_stem(base)))
}

/// The path a cleaned segment file is written to.
pub(crate) fn cleaned_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}{CLEANED}", file_stem(base)))
}

/// Step 2: makes the swap durable (the clean's commit point).
pub(crate) fn commit(dir: &Path, swap: &Swap) -> io::Result<()> {
    let mut text = format!("{}\n", swap.base);
    for r in &swap.replaces {
        text.push_str(&format!("{r}\n"));
    }
    let tmp = dir.join(format!("{SWAP_FILE}.tmp"));
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(SWAP_FILE))?;
    sync_dir(dir)
}

/// Steps 3 and 4: puts the committed swap's files in place.
pub(crate) fn finish(dir: &Path, swap: &Swap) -> io::Result<()> {
    for &old in swap.replaces.iter().filter(|&&b| b != swap.base) {
        for ext in EXTENSIONS {
            remove_if_present(&segment_path(dir, old, ext))?;
        }
    }
    for ext in EXTENSIONS {
        let from = cleaned_path(dir, swap.base, ext);
        match fs::rename(&from, segment_path(dir, swap.base, ext)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(dir)?;
    remove_if_present(&dir.join(SWAP_FILE))?;
    sync_dir(dir)
}

fn remove_if_present(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads a committed swap, `None` when there is none (or it is unreadable:
/// then it was never completely written, as the rename is atomic).
fn read(dir: &Path) -> io::Result<Option<Swap>> {
    let text = match fs::read_to_string(dir.join(SWAP_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut nums = text.lines().map(|l| l.trim().parse::<i64>());
    let Some(Ok(base)) = nums.next() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged", dir.join(SWAP_FILE).display()),
        ));
    };
    let replaces = nums.collect::<Result<Vec<_>, _>>().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged: {e}", dir.join(SWAP_FILE).display()),
        )
    })?;
    Ok(Some(Swap { base, replaces }))
}

/// At open, before the segments are listed: finishes a committed swap and
/// deletes the files of an uncommitted one. Returns true when it changed
/// anything (the log is then scanned as after a crash).
pub(crate) fn recover(dir: &Path) -> io::Result<bool> {
    let mut changed = false;
    if let Some(swap) = read(dir)? {
        tracing::warn!(log = %dir.display(), base = swap.base, replaces = ?swap.replaces, "finishing a segment swap the cleaner committed before a crash");
        finish(dir, &swap)?;
        changed = true;
    }
    let _ = fs::remove_file(dir.join(format!("{SWAP_FILE}.tmp")));
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(CLEANED)) {
            tracing::info!(file = %entry.path().display(), "removing an unfinished cleaned segment");
            remove_if_present(&entry.path())?;
            changed = true;
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: PathBuf, text: &str) {
        let _ = dir;
        fs::write(name, text).expect("write");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Old segments 0 and 10, their cleaned replacement at 0.
    fn setup(dir: &Path) -> Swap {
        for base in [0, 10, 20] {
            for ext in EXTENSIONS {
                write(dir, segment_path(dir, base, ext), &format!("old {base}"));
            }
        }
        for ext in EXTENSIONS {
            write(dir, cleaned_path(dir, 0, ext), "new 0");
        }
        Swap {
            base: 0,
            replaces: vec![0, 10],
        }
    }

    fn after_swap(dir: &Path) {
        assert_eq!(
            names(dir),
            vec![
                "00000000000000000000.index",
                "00000000000000000000.log",
                "00000000000000000000.timeindex",
                "00000000000000000020.index",
                "00000000000000000020.log",
                "00000000000000000020.timeindex",
            ]
        );
        assert_eq!(
            fs::read_to_string(segment_path(dir, 0, "log")).expect("read"),
            "new 0"
        );
    }

    #[test]
    fn uncommitted_clean_leaves_the_old_segments() {
        let d = tempfile::tempdir().expect("tmp");
        setup(d.path());
        assert!(recover(d.path()).expect("recover"));
        assert_eq!(names(d.path()).len(), 9);
        assert_eq!(
            fs::read_to_string(segment_path(d.path(), 0, "log")).expect("read"),
            "old 0"
        );
    }

    #[test]
    fn committed_swap_is_finished_from_any_point() {
        // Crash right after the commit, and after each later file operation.
        for stop_after in 0..7 {
            let d = tempfile::tempdir().expect("tmp");
            let swap = setup(d.path());
            commit(d.path(), &swap).expect("commit");
            let mut ops: Vec<Box<dyn Fn()>> = Vec::new();
            let p = d.path().to_path_buf();
            for ext in EXTENSIONS {
                let p = p.clone();
                ops.push(Box::new(move || {
                    let _ = fs::remove_file(segment_path(&p, 10, ext));
                }));
            }
            for ext in EXTENSIONS {
                let p = p.clone();
                ops.push(Box::new(move || {
                    let _ = fs::rename(cleaned_path(&p, 0, ext), segment_path(&p, 0, ext));
                }));
            }
            for op in ops.iter().take(stop_after) {
                op();
            }
            assert!(recover(d.path()).expect("recover"));
            after_swap(d.path());
        }
    }

    #[test]
    fn finish_is_complete() {
        let d = tempfile::tempdir().expect("tmp");
        let swap = setup(d.path());
        commit(d.path(), &swap).expect("commit");
        finish(d.path(), &swap).expect("finish");
        after_swap(d.path());
        assert!(!recover(d.path()).expect("recover"));
    }
}
