//! Strom's Kafka client: connections with API version negotiation
//! ([`Connection`] for one call at a time, [`mux::Mux`] pipelined), the
//! cluster view ([`cluster::Cluster`]), the [`producer`] and [`consumer`], and the
//! [`Admin`] calls the `strom` tools use.
#![deny(clippy::unwrap_used)]

mod admin;
pub mod cluster;
mod cluster_admin;
mod connection;
pub mod consumer;
mod elections;
mod error;
pub mod mux;
pub mod producer;
mod props;
mod reassign;
#[cfg(test)]
mod test_broker;
mod topics;
mod transactions;

pub use admin::{Admin, GroupDescription, GroupListing, GroupMember};
pub use cluster_admin::{BrokerInfo, Brokers, QuorumInfo, QuorumReplica};
pub use connection::Connection;
pub use elections::{ElectionOutcome, ElectionType, ELECTION_NOT_NEEDED};
pub use error::ClientError;
pub use reassign::{PartitionReassignment, ReassignmentOutcome};
pub use topics::{ClusterDescription, ConfigChange, ConfigValue, TopicDescription};
pub use transactions::{ProducerDescription, TransactionDescription, TransactionListing};
