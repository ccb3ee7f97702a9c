//! The async runtimes the client commands run on.

use anyhow::{Context, Result};

/// For commands that move records (produce, consume, perf): two workers,
/// so the client's background tasks run beside the caller's loop.
pub fn for_records() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// For request/response admin commands (topics, groups, transactions).
pub fn for_admin() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
