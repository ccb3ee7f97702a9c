//! One broker connection: request framing, correlation ids, API versions.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ClientError;

/// Largest response accepted (bounds allocation on a hostile length).
const MAX_RESPONSE: usize = 256 << 20;

/// A connection to one broker.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    next_id: i32,
    client_id: String,
    timeout: Duration,
    /// Highest version of each API both sides speak.
    versions: HashMap<i16, i16>,
}

/// Versions above which this client does not go although kafka-protocol
/// lists them: requests that name topics by id only (Produce v13, Fetch
/// v13+, KIP-516) and versions whose request structs the crate lacks
/// (OffsetCommit and OffsetFetch v10, listed for ApiKey but not encodable).
/// Strom's broker stops below them; Kafka 4.x offers them.
fn highest_we_speak(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce | ApiKey::Fetch => 12,
        ApiKey::OffsetCommit | ApiKey::OffsetFetch => 9,
        _ => i16::MAX,
    }
}

impl Connection {
    /// Connects and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(format!("connecting to {addr}")))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut c = Connection {
            stream,
            next_id: 1,
            client_id: client_id.to_string(),
            timeout,
            versions: HashMap::new(),
        };
        // v3 names the client (KIP-511); Kafka refuses empty or odd names
        // with INVALID_REQUEST.
        let hello = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = c.call_at(ApiKey::ApiVersions, 3, &hello).await?;
        ClientError::check(resp.error_code, "ApiVersions")?;
        for k in resp.api_keys {
            if let Ok(key) = ApiKey::try_from(k.api_key) {
                let ours = key.valid_versions();
                let v = k.max_version.min(ours.max).min(highest_we_speak(key));
                if v >= k.min_version.max(ours.min) {
                    c.versions.insert(k.api_key, v);
                }
            }
        }
        Ok(c)
    }

    /// The socket and the negotiated versions, for a pipelined [`crate::mux::Mux`].
    pub fn into_parts(self) -> (TcpStream, HashMap<i16, i16>) {
        (self.stream, self.versions)
    }

    /// The version of `key` to use, if both sides have one.
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        self.versions
            .get(&(key as i16))
            .copied()
            .ok_or(ClientError::Unsupported(key))
    }

    /// Sends a request at the negotiated version and reads its response.
    pub async fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        req: &Req,
    ) -> Result<(i16, Resp), ClientError> {
        let v = self.version(key)?;
        Ok((v, self.call_at(key, v, req).await?))
    }

    /// Sends a request at `version` and reads its response.
    pub async fn call_at<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let out = encode_request(key, version, id, &self.client_id, req)?;
        let fut = async {
            self.stream.write_all(&out).await?;
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let n = i32::from_be_bytes(len);
            if n < 0 || n as usize > MAX_RESPONSE {
                return Err(ClientError::Protocol(format!(
                    "response length {n} out of range"
                )));
            }
            let mut buf = vec![0u8; n as usize];
            self.stream.read_exact(&mut buf).await?;
            Ok(bytes::Bytes::from(buf))
        };
        let mut body = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout(format!("{key:?} request")))??;
        let hv = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut body, hv)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if header.correlation_id != id {
            return Err(ClientError::Protocol(format!(
                "response for request {} arrived for {id}",
                header.correlation_id
            )));
        }
        Resp::decode(&mut body, version)
            .map_err(|e| ClientError::Protocol(format!("{key:?} v{version} response: {e}")))
    }
}

/// A whole request frame: length prefix, header for `key`/`version`, body.
pub(crate) fn encode_request<Req: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    req: &Req,
) -> Result<BytesMut, ClientError> {
    let mut out = BytesMut::new();
    out.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut out, key.request_header_version(version))
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    req.encode(&mut out, version)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let len = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}
