//! One client connection: frames in, responses out in request order.
//!
//! The reader decodes each frame's header and spawns its handler at once, so
//! many requests are in flight per connection (a long-poll fetch does not
//! stall a produce behind it in the broker); the writer awaits the handlers
//! in arrival order, because Kafka clients rely on ordered responses. The
//! queue between them is bounded (`queued.max.requests`), which is the
//! connection's backpressure.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use strom_protocol::{read_frame, FrameError, RequestFrame};

use crate::broker::Broker;
use crate::dispatch::{dispatch, DispatchError};

type Pending = JoinHandle<Result<Option<BytesMut>, DispatchError>>;

/// Serves one connection until the peer closes it, a request is malformed,
/// or shutdown is signalled (then in-flight requests are finished first).
pub async fn serve(
    stream: TcpStream,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
    max_frame: usize,
    max_in_flight: usize,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Pending>(max_in_flight.max(1));
    let writer_peer = peer.clone();
    let writer = tokio::spawn(async move {
        while let Some(h) = rx.recv().await {
            match h.await {
                Ok(Ok(Some(buf))) => {
                    if let Err(e) = wr.write_all(&buf).await {
                        tracing::debug!(peer = %writer_peer, error = %e, "write failed; closing");
                        break;
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::info!(peer = %writer_peer, error = %e, "bad request; closing connection");
                    break;
                }
                Err(e) => {
                    tracing::error!(peer = %writer_peer, error = %e, "request handler failed; closing connection");
                    break;
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max_frame, &mut buf) => f,
            _ = shutdown.changed() => break,
        };
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
        let b = broker.clone();
        let h = tokio::spawn(async move { dispatch(&b, req).await });
        if tx.send(h).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
