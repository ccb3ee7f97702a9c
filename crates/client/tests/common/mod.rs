//! An in-process broker for the client's integration tests: the same one the
//! unit tests use.

#[path = "../../src/test_broker.rs"]
mod test_broker;

pub use test_broker::start;
