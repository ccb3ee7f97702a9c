//! A connection from this broker to another one (the follower's fetch
//! session with its leader): Kafka framing, one request in flight, every
//! length from the peer bounded before anything is allocated.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an exchange with a peer failed; the caller reconnects.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Connecting, writing or reading failed or timed out.
    #[error("broker {addr}: {reason}")]
    Io {
        /// The peer's address.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The peer's bytes could not be read as the expected response.
    #[error("broker {addr} sent an unreadable response: {reason}")]
    Protocol {
        /// The peer's address.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

/// One open connection to a peer broker.
#[derive(Debug)]
pub struct Peer {
    addr: String,
    stream: TcpStream,
    correlation: i32,
    client_id: &'static str,
    max_response: usize,
}

impl Peer {
    /// Connects to `host:port` within `timeout`. Responses larger than
    /// `max_response` bytes are refused (the connection is then dropped).
    pub async fn connect(
        host: &str,
        port: i32,
        client_id: &'static str,
        max_response: usize,
        timeout: Duration,
    ) -> Result<Peer, PeerError> {
        let addr = format!("{host}:{port}");
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(PeerError::Io {
                    addr,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(PeerError::Io {
                    addr,
                    reason: "connect timed out".into(),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(Peer {
            addr,
            stream,
            correlation: 0,
            client_id,
            max_response,
        })
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` as `key` version `version` and reads its response,
    /// all within `timeout`.
    pub async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut body = BytesMut::with_capacity(256);
        body.extend_from_slice(&[0, 0, 0, 0]);
        header
            .encode(&mut body, Req::header_version(version))
            .and_then(|()| req.encode(&mut body, version))
            .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?;
        let len = (body.len() - 4) as u32;
        body[..4].copy_from_slice(&len.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&body).await?;
            let len = self.stream.read_u32().await? as usize;
            if len > self.max_response {
                return Err(std::io::Error::other(format!(
                    "response of {len} bytes is over the {} allowed",
                    self.max_response
                )));
            }
            let mut buf = vec![0u8; len];
            self.stream.read_exact(&mut buf).await?;
            Ok(buf)
        };
        let buf = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(self.io(e.to_string())),
            Err(_) => return Err(self.io("timed out".into())),
        };
        let mut buf = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut buf, Resp::header_version(version))
            .map_err(|e| self.protocol(format!("bad response header: {e}")))?;
        if rh.correlation_id != self.correlation {
            return Err(self.protocol(format!(
                "correlation id {} answers request {}",
                rh.correlation_id, self.correlation
            )));
        }
        let resp = Resp::decode(&mut buf, version).map_err(|e| self.protocol(e.to_string()))?;
        if buf.has_remaining() {
            tracing::debug!(peer = %self.addr, left = buf.remaining(), "trailing bytes after a response");
        }
        Ok(resp)
    }

    fn io(&self, reason: String) -> PeerError {
        PeerError::Io {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn protocol(&self, reason: String) -> PeerError {
        PeerError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}
