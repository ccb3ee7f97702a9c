//! Hostile input over raw TCP. The promise: every bad frame gets an error
//! response or a closed connection, memory stays bounded, and the broker
//! keeps serving everyone else.

use kafka_protocol::messages::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Client;

/// Writes `bytes` and waits for the broker to close the connection.
async fn expect_closed(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut sink = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut sink)).await;
    assert!(
        read.is_ok(),
        "connection not closed after {:?}",
        &bytes[..bytes.len().min(16)]
    );
}

async fn still_serves(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr).await;
    // v3 names the client (KIP-511); empty names get INVALID_REQUEST.
    let hello = ApiVersionsRequest::default()
        .with_client_software_name(kafka_protocol::protocol::StrBytes::from_static_str("it"))
        .with_client_software_version(kafka_protocol::protocol::StrBytes::from_static_str("1.0"));
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &hello).await;
    assert_eq!(r.error_code, 0);
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

#[tokio::test]
async fn garbage_lengths_truncation_and_unknown_apis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let addr = server.local_addr;
    let before = rss_bytes();
    // Negative and 2 GiB length prefixes.
    expect_closed(addr, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    expect_closed(addr, &[0x7f, 0xff, 0xff, 0xff, 0, 0]).await;
    expect_closed(addr, &[0x80, 0, 0, 0]).await;
    // A frame that promises 100 MB and stops: no 100 MB buffer is made.
    expect_closed(addr, &[0x05, 0xf5, 0xe1, 0x00, 0, 3, 0, 12]).await;
    // Truncated frame and too-short header.
    expect_closed(addr, &[0, 0, 0, 10, 0, 3]).await;
    expect_closed(addr, &[0, 0, 0, 2, 0, 3]).await;
    // Unknown API key, unsupported version of a known API.
    expect_closed(
        addr,
        &Client::frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default())
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 5 { 0x70 } else { *b })
            .collect::<Vec<_>>(),
    )
    .await;
    let mut unsupported = Client::frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
    unsupported[7] = 50;
    expect_closed(addr, &unsupported).await;
    // Hostile array count inside a valid-looking Produce.
    let mut hostile = Client::frame(ApiKey::Produce, 3, 1, &ProduceRequest::default());
    let n = hostile.len();
    hostile[n - 4..].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    expect_closed(addr, &hostile).await;
    // Random bytes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..50 {
        let junk: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut frame = (junk.len() as i32).to_be_bytes().to_vec();
        frame.extend(junk);
        expect_closed(addr, &frame).await;
    }
    still_serves(addr).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 256 << 20, "resident memory grew by {grown} bytes");
    server.shutdown().await;
}

#[tokio::test]
async fn unsupported_api_versions_version_gets_kip511_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    let mut frame = Client::frame(ApiKey::ApiVersions, 3, 42, &ApiVersionsRequest::default());
    frame[7] = 99; // version 99
    c.stream.write_all(&frame).await.expect("write");
    let (cid, mut body) = c.recv_raw(ApiKey::ApiVersions, 0).await.expect("answer");
    assert_eq!(cid, 42);
    let r = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0)
        .expect("v0 body");
    assert_eq!(r.error_code, 35);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == 18 && k.max_version >= 3));
    server.shutdown().await;
}

#[tokio::test]
async fn hundreds_of_connections_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let addr = server.local_addr;
    let mut tasks = Vec::new();
    for i in 0..300 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            if i % 3 == 0 {
                let _ = c.stream.write_all(&[0xff; 8]).await;
                return;
            }
            let r: MetadataResponse = c
                .call(ApiKey::Metadata, 12, &MetadataRequest::default())
                .await;
            assert_eq!(r.brokers.len(), 1);
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    still_serves(addr).await;
    server.shutdown().await;
}
