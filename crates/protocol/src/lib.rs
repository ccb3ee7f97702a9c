//! The Kafka wire protocol as Strom speaks it: size-prefixed frames, request
//! headers, safe decoding of request bodies with the `kafka-protocol` crate's
//! generated message types, response encoding, and the table of API versions
//! the broker serves.
#![deny(clippy::unwrap_used)]

pub mod alloc;
mod decode;
mod fetch_response;
mod frame;
pub mod parts;
pub mod versions;

pub use decode::{decode_body, decode_body_as, encode_response, DecodeError, RequestFrame};
pub use fetch_response::fetch_response_parts;
pub use frame::{FrameError, FrameReader};
