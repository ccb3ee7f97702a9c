//! Transaction markers for partitions another broker leads: the coordinator
//! sends them WriteTxnMarkers over the inter-broker listener, as Kafka's
//! `TransactionMarkerChannelManager` does. A blocking exchange (the
//! coordinator completes transactions off the async workers), one request
//! per leader with every partition it leads.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, RequestHeader, ResponseHeader, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// WriteTxnMarkers v1 (flexible), what Kafka's brokers send each other.
const VERSION: i16 = 1;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response read (a marker response is small; this bounds damage).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why markers could not be written on another broker.
#[derive(Debug, thiserror::Error)]
pub enum RemoteMarkerError {
    /// The leader could not be reached or answered garbage.
    #[error("broker {addr}: {reason}")]
    Exchange {
        /// Its address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The leader refused a partition's marker.
    #[error("broker {addr} refused the marker for {topic}-{partition}: error code {code}")]
    Refused {
        /// Its address.
        addr: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Kafka's error code.
        code: i16,
    },
}

/// Writes the commit (`commit`) or abort marker of producer `pid`/`epoch`
/// on `partitions`, all led by the broker at `host:port`.
pub fn send(
    host: &str,
    port: i32,
    pid: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    partitions: &[(String, i32)],
) -> Result<(), RemoteMarkerError> {
    let addr = format!("{host}:{port}");
    let fail = |reason: String| RemoteMarkerError::Exchange {
        addr: addr.clone(),
        reason,
    };
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (topic, p) in partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partition_indexes.push(*p),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![*p]),
            ),
        }
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_topics(topics)
        .with_coordinator_epoch(coordinator_epoch)]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::WriteTxnMarkers as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("strom-txn-coordinator")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, WriteTxnMarkersRequest::header_version(VERSION))
        .and_then(|()| req.encode(&mut body, VERSION))
        .map_err(|e| fail(format!("cannot encode: {e}")))?;

    let sock = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| fail("cannot resolve".into()))?;
    let mut stream = TcpStream::connect_timeout(&sock, TIMEOUT).map_err(|e| fail(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail(e.to_string()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).map_err(|e| fail(e.to_string()))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| fail(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RESPONSE {
        return Err(fail(format!("response of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    stream
        .read_exact(&mut buf)
        .map_err(|e| fail(e.to_string()))?;
    let mut buf = bytes::Bytes::from(buf);
    ResponseHeader::decode(&mut buf, WriteTxnMarkersResponse::header_version(VERSION))
        .map_err(|e| fail(format!("bad response header: {e}")))?;
    let resp = WriteTxnMarkersResponse::decode(&mut buf, VERSION)
        .map_err(|e| fail(format!("bad response: {e}")))?;
    if buf.has_remaining() {
        tracing::debug!(
            left = buf.remaining(),
            "trailing bytes after a WriteTxnMarkers response"
        );
    }
    for m in resp.markers {
        for t in m.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(RemoteMarkerError::Refused {
                        addr: addr.clone(),
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        code: p.error_code,
                    });
                }
            }
        }
    }
    Ok(())
}
