//! Strom's metadata quorum: a replicated log of opaque entries, built on
//! [openraft](https://docs.rs/openraft) 0.9.
//!
//! The broker serialises its metadata records into byte entries, [`Quorum::propose`]s them on
//! the leader, and receives every committed entry, in log order, through its
//! [`StateMachine`]. The crate knows nothing about topics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use strom_quorum::{Quorum, QuorumConfig, StateMachine};
//!
//! #[derive(Default)]
//! struct Image(Vec<Vec<u8>>);
//! impl StateMachine for Image {
//!     fn apply(&mut self, _index: u64, entry: &[u8]) { self.0.push(entry.to_vec()) }
//!     fn snapshot(&self) -> Vec<u8> { self.0.concat() /* a real image serialises itself */ }
//!     fn restore(&mut self, _snapshot: &[u8]) -> Result<(), String> { Ok(()) }
//! }
//!
//! let cfg = QuorumConfig::single(1, "127.0.0.1:9093".parse()?, "/var/lib/strom/__cluster_metadata");
//! let quorum = Quorum::start(cfg, Image::default()).await?;
//! let index = quorum.propose(b"a metadata record".to_vec()).await?;
//! println!("committed at {index}, leader {:?}", quorum.leader());
//! quorum.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # The API
//! - [`Quorum::start`] opens `dir`, restores the state machine from the latest snapshot, replays
//!   the committed entries after it, and joins the quorum. Voters (ids in
//!   [`QuorumConfig::voters`], Kafka's `controller.quorum.voters`) initialise the cluster the
//!   first time they start on an empty directory; restarts reuse the stored state. A node not
//!   among the voters becomes an observer (a Raft learner): it asks the leader to add it and
//!   then receives every entry without voting.
//! - [`Quorum::propose`] commits an entry (at most [`MAX_ENTRY_BYTES`]) and returns its index
//!   once it is applied locally; on a non-leader it fails with [`ProposeError::NotLeader`],
//!   naming the leader when known.
//! - [`Quorum::leader`] / [`Quorum::subscribe_leader`] give the current leader and its changes.
//! - [`Quorum::describe`] gives what Kafka's `DescribeQuorum` returns.
//! - [`Quorum::add_observer`] adds an observer from the leader's side.
//! - [`Quorum::set_leader_service`] / [`Quorum::call_leader`]: a request any node sends to the
//!   current leader's service, where changes are decided one at a time (the broker's controller).
//! - [`Quorum::shutdown`] stops the node; its files stay.
//!
//! # Guarantees
//! - Every committed entry is applied exactly once per process start, in index order, on every
//!   node; entries a restored snapshot covers are not re-applied. Indexes have gaps where the
//!   log holds the quorum's own entries (leader changes, membership).
//! - Log appends and votes are fsynced before they are acknowledged; a torn last log record is
//!   cut off on start; any other damage fails [`Quorum::start`] with [`QuorumError::Disk`].
//! - After `snapshot_every` entries the state machine's [`StateMachine::snapshot`] is stored and
//!   the log before it (less one more interval kept for lagging followers) is dropped. A
//!   follower missing those entries gets the snapshot and [`StateMachine::restore`]s it.
//! - One node per directory: `dir/lock` is `flock`ed while the node runs.
//! - State machine calls run on tokio's blocking pool, never on a runtime worker.
//!
//! See `docs/QUORUM.md` for the files on disk, the RPC framing and the `DescribeQuorum` mapping.

mod config;
mod disk;
mod log_store;
mod quorum;
mod rpc;
mod service;
mod state_machine;
mod types;

pub use config::QuorumConfig;
pub use disk::DiskError;
pub use quorum::{ProposeError, Quorum, QuorumDescription, QuorumError, ReplicaDescription};
pub use service::{LeaderService, ServiceFuture};
pub use state_machine::StateMachine;

/// Largest entry [`Quorum::propose`] accepts (1 MiB, Kafka's default `max.message.bytes`
/// order of magnitude; metadata records are far smaller).
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
