//! Cluster metadata: the records the metadata log is made of, the image
//! built from them, and the identities they use.
//!
//! - [`ids`]: `NodeId`, `LeaderEpoch`, `TopicPartition`.
//! - [`records`]: the metadata records (KRaft's record types) and their encoding.
//! - [`image`]: the immutable [`MetadataImage`] every handler reads.
//! - [`store`]: the metadata log (the quorum) batches are committed to.
//! - [`controller`]: the quorum leader's service deciding every change.
//! - [`reassignment`]: moving partitions between brokers, and ISR changes.
//! - [`election`]: preferred and unclean leader elections.

pub mod controller;
pub mod election;
pub mod ids;
pub mod image;
pub mod lifecycle;
pub mod reassignment;
pub mod records;
pub mod store;

pub use ids::{LeaderEpoch, NodeId, TopicPartition};
pub use image::{ImageChanges, ImageError, MetadataImage, PartitionImage, TopicImage};
pub use records::{MetadataRecord, RecordBatch};
pub use store::{ControllerTimings, MetadataError, MetadataStore};
