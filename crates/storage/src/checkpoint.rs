//! Small state files in a log directory.
//!
//! - `clean_shutdown`: written last by a clean close, holding the log end
//!   offset; removed before the first write after opening. Its presence lets
//!   the next open skip the recovery scan.
//! - `log_start_offset`: the log start offset when DeleteRecords moved it past
//!   the first segment's base offset (Kafka keeps this in a checkpoint file).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Name of the clean-shutdown marker.
pub(crate) const CLEAN_SHUTDOWN: &str = "clean_shutdown";
/// Name of the log-start-offset file.
pub(crate) const LOG_START_OFFSET: &str = "log_start_offset";

/// Writes `value` to `dir/name` durably: temp file, fsync, rename, fsync dir.
pub(crate) fn write_i64(dir: &Path, name: &str, value: i64) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    writeln!(f, "{value}")?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Writes `text` to `dir/name` durably: temp file, fsync, rename, fsync dir.
pub(crate) fn write_text(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads an i64 written by [`write_i64`]; `None` when missing or unreadable.
pub(crate) fn read_i64(dir: &Path, name: &str) -> io::Result<Option<i64>> {
    match fs::read_to_string(dir.join(name)) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `dir/name` durably if present.
pub(crate) fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory so renames and unlinks in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
