//! Strom's Kafka client: connections with API version negotiation
//! ([`Connection`] for one call at a time, [`mux::Mux`] pipelined), the
//! cluster view ([`cluster::Cluster`]), the [`producer`], and the [`Admin`]
//! calls the `strom` tools use. The consumer is still to come.
#![deny(clippy::unwrap_used)]

mod admin;
pub mod cluster;
mod connection;
mod error;
pub mod mux;
pub mod producer;
mod topics;
mod transactions;

pub use admin::{Admin, GroupDescription, GroupListing, GroupMember};
pub use connection::Connection;
pub use error::ClientError;
pub use topics::{ConfigChange, ConfigValue, TopicDescription};
pub use transactions::{ProducerDescription, TransactionDescription, TransactionListing};
