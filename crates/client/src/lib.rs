//! Strom's Kafka client (early): one connection with API version
//! negotiation, and the admin calls the `strom` command-line tools need.
//! The producer and consumer come with the client-library issue.
#![deny(clippy::unwrap_used)]

mod admin;
pub mod cluster;
mod connection;
mod error;
pub mod mux;
pub mod producer;
mod transactions;

pub use admin::{Admin, GroupDescription, GroupListing, GroupMember};
pub use connection::Connection;
pub use error::ClientError;
pub use transactions::{ProducerDescription, TransactionDescription, TransactionListing};
