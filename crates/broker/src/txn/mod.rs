//! Exactly-once support: producer ids, the per-partition producer state
//! that checks sequences and tracks open and aborted transactions, and the
//! transaction coordinator.

pub mod coordinator;
mod loading;
pub mod log;
pub mod producer_ids;
pub mod producer_state;
pub mod remote_markers;
#[cfg(test)]
mod timeout_tests;

pub use coordinator::{TxnConfig, TxnCoordinator};
