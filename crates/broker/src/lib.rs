//! Strom's broker: a Kafka-protocol server over Strom's partition logs.
//!
//! - [`server`]: listener, connection tasks, maintenance, graceful shutdown.
//! - `connection`: per-connection frame reading and in-order pipelining.
//! - [`net`]: the network limits: request memory pool, connection quotas, idle
//!   and frame timeouts, rate-limited logs.
//! - `dispatch`: API key to handler.
//! - [`handlers`]: one module per Kafka API.
//! - [`topics`]: topic metadata and partition logs.
//! - [`config`]: broker and topic configs under Kafka's names.
//! - [`group`]: the group coordinator.
//! - [`txn`]: producer ids, per-partition producer state, the transaction coordinator.

pub mod broker;
pub mod cleaner;
pub mod clock;
pub mod config;
mod connection;
pub mod controller_node;
mod dispatch;
mod durable;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod names;
pub mod net;
pub mod partition;
pub mod replica;
pub mod replication;
pub mod scram;
pub mod server;
pub mod topics;
pub mod txn;
pub mod waiters;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use server::{start, ServerError, ServerHandle};
