//! Request headers and bodies, decoded without trusting the peer.
//!
//! `kafka-protocol` 0.18 sizes arrays with `Vec::with_capacity(count)` where
//! `count` comes straight off the wire, so a tiny request can ask for a huge
//! allocation. Two things make that harmless here: the process allocator
//! ([`crate::alloc::GuardedAlloc`]) serves such oversized requests with lazily
//! committed address space instead of failing (which would abort), and every
//! decode runs under `catch_unwind` so the remaining failure modes (capacity
//! overflow panics, buffer underflow) become a [`DecodeError`] for that
//! request alone.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message};
use thiserror::Error;

/// Why a request could not be decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Too short to hold even an API key, version and correlation id.
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    /// The API key is not one Kafka defines.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// The header or body bytes do not parse.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
}

/// A request with its header parsed and its body still raw.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// The API.
    pub api_key: ApiKey,
    /// The raw API key (for errors about unknown keys).
    pub api_version: i16,
    /// Echoed in the response header.
    pub correlation_id: i32,
    /// The full parsed header (client id, tagged fields).
    pub header: RequestHeader,
    /// Body bytes after the header.
    pub body: Bytes,
}

impl RequestFrame {
    /// Reads the header of a request frame.
    ///
    /// A version newer than this crate knows is still parsed (with the
    /// newest header layout) so ApiVersions can answer it per KIP-511.
    pub fn parse(mut frame: Bytes) -> Result<RequestFrame, DecodeError> {
        if frame.len() < 8 {
            return Err(DecodeError::TooShort(frame.len()));
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let api_key = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApiKey(key))?;
        let header_version = if version > api_key.valid_versions().max || version < 0 {
            // Unknown version: assume the flexible header, as Kafka does for ApiVersions.
            RequestHeader::VERSIONS.max
        } else {
            api_key.request_header_version(version)
        };
        let header =
            guarded(|| RequestHeader::decode(&mut frame, header_version)).map_err(|reason| {
                DecodeError::Malformed {
                    api: api_key,
                    version,
                    reason,
                }
            })?;
        Ok(RequestFrame {
            api_key,
            api_version: version,
            correlation_id,
            header,
            body: frame,
        })
    }

    /// The client id from the header, or "" when absent.
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// Runs a `kafka-protocol` decode, turning its errors and panics into a message.
fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(p) => Err(p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "decoder panicked".to_string())),
    }
}

/// Decodes a request body of type `T` at the frame's version, safely (see module docs).
pub fn decode_body<T: Decodable>(frame: &RequestFrame) -> Result<T, DecodeError> {
    decode_body_as(frame, frame.api_version)
}

/// Decodes a request body as `version`: for versions Kafka defines as
/// byte-identical to another (DescribeLogDirs v0 is v1).
pub fn decode_body_as<T: Decodable>(frame: &RequestFrame, version: i16) -> Result<T, DecodeError> {
    let mut body = frame.body.clone();
    guarded(|| T::decode(&mut body, version)).map_err(|reason| DecodeError::Malformed {
        api: frame.api_key,
        version,
        reason,
    })
}

/// Encodes a size-prefixed response frame: length, header, body.
pub fn encode_response<T: Encodable + HeaderVersion>(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<(), String> {
    let start = out.len();
    out.put_i32(0);
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(out, header_version)
        .map_err(|e| format!("{e:#}"))?;
    body.encode(out, version).map_err(|e| format!("{e:#}"))?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn request<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut out = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        header
            .encode(&mut out, key.request_header_version(version))
            .expect("header");
        body.encode(&mut out, version).expect("body");
        out.freeze()
    }

    #[test]
    fn parses_header_and_body() {
        let f = RequestFrame::parse(request(ApiKey::Metadata, 12, &MetadataRequest::default()))
            .expect("parse");
        assert_eq!(
            (f.api_key, f.api_version, f.correlation_id, f.client_id()),
            (ApiKey::Metadata, 12, 7, "t")
        );
        let _m: MetadataRequest = decode_body(&f).expect("body");
    }

    #[test]
    fn unknown_version_still_parses_header() {
        let mut raw = request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).to_vec();
        raw[3] = 99;
        let f = RequestFrame::parse(Bytes::from(raw)).expect("parse");
        assert_eq!(f.api_version, 99);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            RequestFrame::parse(Bytes::from_static(&[0, 1])),
            Err(DecodeError::TooShort(2))
        ));
        assert!(matches!(
            RequestFrame::parse(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 0])),
            Err(DecodeError::UnknownApiKey(_))
        ));
    }
}
