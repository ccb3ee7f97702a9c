//! File descriptors: the process limit, and one spare kept so that the
//! listener can refuse a connection cleanly when they run out.
//!
//! When `accept()` fails with EMFILE/ENFILE the pending connection stays in
//! the listen backlog and the listener stays readable: a server that only
//! retries spins (and used to log `accept failed` every 50 ms), and the
//! client hangs. With a spare descriptor the listener gives it up, accepts
//! the connection, closes it (the client sees the connection closed and
//! retries elsewhere or later) and takes the spare again.

use std::fs::File;

/// The soft `RLIMIT_NOFILE` of this process, if it can be read.
pub fn nofile_limit() -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rc != 0 || rl.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(rl.rlim_cur)
}

/// Whether an `accept()` error means descriptors (or kernel memory for
/// them) ran out, as opposed to a connection that went away meanwhile.
pub fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// One descriptor held back for refusing connections.
#[derive(Debug)]
pub struct SpareFd(Option<File>);

impl SpareFd {
    /// Opens the spare (`/dev/null`); none if even that fails.
    pub fn open() -> SpareFd {
        SpareFd(File::open("/dev/null").ok())
    }

    /// Gives the spare up so one descriptor is free.
    pub fn release(&mut self) -> bool {
        self.0.take().is_some()
    }

    /// Takes the spare again (after the refused connection is closed).
    pub fn reacquire(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }

    /// Whether the spare is held.
    pub fn held(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spare_is_given_up_and_taken_again() {
        let mut s = SpareFd::open();
        assert!(s.held());
        assert!(s.release());
        assert!(!s.held());
        assert!(!s.release());
        s.reacquire();
        assert!(s.held());
        assert!(nofile_limit().is_none_or(|n| n > 0));
        assert!(is_exhaustion(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!is_exhaustion(&std::io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
