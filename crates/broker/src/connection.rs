//! One client connection: frames in, responses out in request order.
//!
//! A reader task reads and parses frames ahead into a bounded queue
//! (`queued.max.requests`, the connection's backpressure); a worker handles
//! them strictly one after another and writes each response before starting
//! the next request. Handling in order is what Kafka does (it mutes a
//! connection while a request is in progress) and what clients rely on:
//! librdkafka pipelines several Produce requests for one partition on one
//! connection and expects them appended in the order sent.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use strom_protocol::{FrameError, FrameReader, RequestFrame};

use crate::broker::Broker;
use crate::dispatch::dispatch;

/// How long a connection may send nothing before its frame buffers are freed.
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one connection until the peer closes it, a request is malformed,
/// or shutdown is signalled (then requests already read are finished first).
pub async fn serve(
    stream: TcpStream,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
    max_frame: usize,
    max_queued: usize,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<RequestFrame>(max_queued.max(1));
    let worker_peer = peer.clone();
    let worker = tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            match dispatch(&broker, req, &worker_peer).await {
                Ok(Some(buf)) => {
                    if let Err(e) = wr.write_all(&buf).await {
                        tracing::debug!(peer = %worker_peer, error = %e, "write failed; closing");
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!(peer = %worker_peer, error = %e, "bad request; closing connection");
                    break;
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut frames = FrameReader::new(max_frame);
    // A connection that sent nothing for a whole period gives its frame
    // buffers back (one timer per connection, reset only when it fires).
    let idle = tokio::time::sleep(IDLE_RELEASE);
    tokio::pin!(idle);
    let mut active = false;
    loop {
        // Wait for bytes first: unlike a frame read, this wait can be
        // interrupted by the idle timer without losing anything.
        tokio::select! {
            r = rd.readable() => {
                if r.is_err() {
                    break;
                }
            }
            _ = &mut idle => {
                if !active {
                    frames.release();
                }
                active = false;
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_RELEASE);
                continue;
            }
            _ = shutdown.changed() => break,
        }
        let frame = tokio::select! {
            f = frames.read(&mut rd) => f,
            _ = shutdown.changed() => break,
        };
        active = true;
        let bytes = match frame {
            Ok(b) => b.freeze(),
            Err(FrameError::Closed) => break,
            Err(e) => {
                tracing::info!(peer = %peer, error = %e, "bad frame; closing connection");
                break;
            }
        };
        let req = match RequestFrame::parse(bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(peer = %peer, error = %e, "bad request header; closing connection");
                break;
            }
        };
        tracing::trace!(peer = %peer, api = ?req.api_key, version = req.api_version, correlation_id = req.correlation_id, client = req.client_id(), "request");
        if tx.send(req).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = worker.await;
}
