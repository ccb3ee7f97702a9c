//! The Kafka wire protocol as Strom speaks it: size-prefixed frames, request
//! headers, safe decoding of request bodies with the `kafka-protocol` crate's
//! generated message types, response encoding, and the table of API versions
//! the broker serves.
#![deny(clippy::unwrap_used)]

pub mod alloc;
mod decode;
mod frame;
pub mod versions;

pub use decode::{decode_body, decode_body_as, encode_response, DecodeError, RequestFrame};
pub use frame::{FrameError, FrameReader};
