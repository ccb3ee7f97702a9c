//! One client connection: frames in, responses out in request order.
//!
//! One task per connection reads a request, handles it, writes its response
//! and only then reads the next: Kafka does the same (it mutes a connection
//! while a request is in progress), and clients rely on it: librdkafka
//! pipelines several Produce requests for one partition on one connection
//! and expects them appended in the order sent. Requests a client pipelines
//! wait in the kernel's socket buffer, not in the broker's memory, and a
//! client that does not read its responses stops being read from: the
//! broker holds at most one response per connection.
//!
//! Why not read ahead while a request is handled: an earlier version read
//! frames into a queue for a second task. The queue bought nothing (the
//! requests were still handled one at a time) and cost a hand-off between
//! tasks, often between cores, per request: a produce frame was copied from
//! the socket on one core and checksummed and written to the log on the
//! other, from a rotating set of buffers no longer in cache. Handling it
//! where it was read cut the broker's CPU per produced gigabyte by ~12%.
//!
//! What a connection may hold (see `net`):
//! - a frame's bytes only once the request memory pool has lent them
//!   (`queued.max.request.bytes`); it waits for them otherwise;
//! - a frame must arrive within `FRAME_TIMEOUT` (30 s, or
//!   `connections.max.idle.ms` if shorter) of its first byte, else the
//!   connection is closed and the frame's memory freed;
//! - a response that does not go out at once is counted in the response
//!   pool until it does; a connection whose response takes that pool past
//!   its size is closed at once, one whose client has read nothing for
//!   `RESPONSE_STALL` while the pool is over its size too, and any response must be
//!   taken by its client within `connections.max.idle.ms`; no request is
//!   handled while that pool holds more than its size (for at most about
//!   `RESPONSE_STALL`), so responses cannot pile up faster than stalled
//!   connections are closed;
//! - a connection that sends nothing for `connections.max.idle.ms` is closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use strom_protocol::parts::write_all_parts;
use strom_protocol::{FrameError, FrameReader, RequestFrame};

use crate::broker::Broker;
use crate::dispatch::{dispatch, Response};
use crate::net::limits::{BUFFER_RELEASE, RESPONSE_STALL};
use crate::net::log::{Escaped, BAD_REQUESTS, CLOSED_FOR_MEMORY};
use crate::net::memory_pool::Reservation;
use crate::net::{ConnectionSlot, NetState};

/// Runs `fut`, giving up after `limit`; no timer is armed when it is ready
/// at once (the common case: a frame already in the socket buffer).
async fn within<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    tokio::pin!(fut);
    tokio::select! {
        biased;
        r = &mut fut => return Some(r),
        _ = std::future::ready(()) => {}
    }
    tokio::time::timeout(limit, fut).await.ok()
}

/// Logs a malformed request, a limited number of times per second.
fn bad_request(peer: &str, what: &str, error: &dyn std::fmt::Display) {
    if let Some(suppressed) = BAD_REQUESTS.check() {
        let error = error.to_string();
        tracing::info!(peer = %peer, error = %Escaped(&error), suppressed, "{what}; closing connection");
    }
}

/// Logs a connection closed for holding memory, rate-limited.
fn closed_for_memory(peer: &str, why: &str, bytes: u64) {
    if let Some(suppressed) = CLOSED_FOR_MEMORY.check() {
        tracing::info!(peer = %peer, bytes, suppressed, "{why}; closing connection");
    }
}

/// How a response write ended other than by being written.
enum WriteEnd {
    /// The socket failed.
    Io(std::io::Error),
    /// The client read nothing while responses held too much memory.
    Stalled,
    /// The client took longer than `connections.max.idle.ms`.
    Idle,
}

/// Writes one response. If it does not go out at once its bytes are
/// counted in the response pool until it does.
async fn write_response(
    wr: &mut OwnedWriteHalf,
    resp: Response,
    net: &NetState,
    max_idle: Option<Duration>,
) -> Result<(), WriteEnd> {
    let bytes: u64 = match &resp {
        Response::Whole(b) => b.len() as u64,
        Response::Parts(p) => p.iter().map(|b| b.len() as u64).sum(),
    };
    let write = async {
        match &resp {
            Response::Whole(buf) => wr.write_all(buf).await,
            Response::Parts(parts) => write_all_parts(wr, parts).await,
        }
    };
    tokio::pin!(write);
    tokio::select! {
        biased;
        r = &mut write => return r.map_err(WriteEnd::Io),
        _ = std::future::ready(()) => {}
    }
    let _counted = net.responses.account(bytes);
    if net.responses.over() {
        // This response takes the pool past its bound: its client is the
        // one to give way, now, before others wait on it.
        return Err(WriteEnd::Stalled);
    }
    let started = Instant::now();
    loop {
        tokio::select! {
            r = &mut write => return r.map_err(WriteEnd::Io),
            _ = tokio::time::sleep(RESPONSE_STALL) => {
                if net.responses.over() {
                    return Err(WriteEnd::Stalled);
                }
                if max_idle.is_some_and(|i| started.elapsed() >= i) {
                    return Err(WriteEnd::Idle);
                }
            }
        }
    }
}

/// Serves one connection until the peer closes it, a request is malformed,
/// a limit closes it, or shutdown is signalled (a request being handled is
/// finished first). `slot` counts it against the connection limits;
/// `listener` is the name of the listener it came in on.
pub async fn serve(
    stream: TcpStream,
    listener: Arc<str>,
    broker: Arc<Broker>,
    net: Arc<NetState>,
    slot: ConnectionSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    let _slot = slot;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let limits = &net.limits;
    let mut frames = FrameReader::new(limits.max_frame);
    // The request pool's share for the buffers `frames` keeps for reuse.
    let mut kept: Option<Reservation> = None;
    // One timer per connection, re-armed only when it fires: it frees the
    // read buffers of a quiet connection and closes an idle one.
    let tick = limits.max_idle.map_or(BUFFER_RELEASE, |i| {
        (i / 4).clamp(Duration::from_millis(10), BUFFER_RELEASE)
    });
    let timer = tokio::time::sleep(tick);
    tokio::pin!(timer);
    let mut last_active = Instant::now();
    let mut released = true;
    loop {
        // Wait for bytes first: unlike a frame read, this wait can be
        // interrupted by the timer without losing anything. A peek, not
        // `readable()`: the frame reads take exactly the bytes they need, so
        // the socket's readiness outlives the data, and `readable()` would
        // return at once on a drained socket; the frame timeout would then
        // close a connection that is only idle (every 30 s, not after
        // `connections.max.idle.ms`). A peek that finds nothing clears it.
        let mut first = [0u8; 1];
        tokio::select! {
            r = rd.peek(&mut first) => {
                if r.is_err() {
                    break;
                }
            }
            _ = &mut timer => {
                let quiet = last_active.elapsed();
                if quiet >= BUFFER_RELEASE && !released {
                    frames.release();
                    kept = None;
                    released = true;
                }
                if limits.max_idle.is_some_and(|i| quiet >= i) {
                    tracing::debug!(peer = %peer, idle_ms = quiet.as_millis() as u64, "connection idle for connections.max.idle.ms; closing");
                    break;
                }
                timer.as_mut().reset(Instant::now() + tick);
                continue;
            }
            _ = shutdown.changed() => break,
        }
        let size = tokio::select! {
            s = within(limits.frame_timeout, frames.read_size(&mut rd)) => s,
            _ = shutdown.changed() => break,
        };
        let size = match size {
            Some(Ok(s)) => s,
            Some(Err(FrameError::Closed)) => break,
            Some(Err(e)) => {
                bad_request(&peer, "bad frame", &e);
                break;
            }
            None => {
                closed_for_memory(&peer, "frame size did not arrive in time", 0);
                break;
            }
        };
        // A frame that fits in the buffers kept from earlier requests is
        // already paid for (the steady state of a producer: no pool
        // traffic at all). Otherwise the kept share is given back and the
        // frame's size reserved.
        let reservation = if kept.as_ref().is_some_and(|k| k.bytes() >= size as u64) {
            None
        } else {
            kept = None;
            match net.requests.try_reserve(size as u64) {
                Some(r) => Some(r),
                None => {
                    // Back-pressure: wait, holding nothing, for memory to come back.
                    frames.release();
                    tokio::select! {
                        r = net.requests.reserve(size as u64) => Some(r),
                        _ = shutdown.changed() => break,
                    }
                }
            }
        };
        let body = tokio::select! {
            b = within(limits.frame_timeout, frames.read_body(&mut rd, size)) => b,
            _ = shutdown.changed() => break,
        };
        let bytes = match body {
            Some(Ok(b)) => b.freeze(),
            Some(Err(e)) => {
                tracing::debug!(peer = %peer, error = %e, "connection closed mid-frame");
                break;
            }
            None => {
                closed_for_memory(
                    &peer,
                    "frame did not arrive within the frame timeout",
                    size as u64,
                );
                break;
            }
        };
        let req = match RequestFrame::parse(bytes) {
            Ok(r) => r,
            Err(e) => {
                bad_request(&peer, "bad request header", &e);
                break;
            }
        };
        // While responses waiting for clients hold more than their bound,
        // build no new one: the stalled connections are closed within
        // RESPONSE_STALL, so this wait is short.
        if net.responses.over() {
            tokio::select! {
                _ = net.responses.wait_until_under() => {}
                _ = shutdown.changed() => break,
            }
        }
        tracing::trace!(peer = %peer, api = ?req.api_key, version = req.api_version, correlation_id = req.correlation_id, client = %Escaped(req.client_id()), "request");
        match dispatch(&broker, req, &peer, &listener).await {
            Ok(Some(resp)) => match write_response(&mut wr, resp, &net, limits.max_idle).await {
                Ok(()) => {}
                Err(WriteEnd::Io(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "write failed; closing");
                    break;
                }
                Err(WriteEnd::Stalled) => {
                    closed_for_memory(
                        &peer,
                        "client reads no responses while responses fill their memory bound",
                        net.responses.used(),
                    );
                    break;
                }
                Err(WriteEnd::Idle) => {
                    tracing::debug!(peer = %peer, "client took no response for connections.max.idle.ms; closing");
                    break;
                }
            },
            Ok(None) => {}
            Err(e) => {
                bad_request(&peer, "bad request", &e);
                break;
            }
        }
        drop(reservation);
        // Keep the read buffers for the next request only while the pool
        // has room for them (half of it); else free them now.
        let retained = frames.retained() as u64;
        if kept.as_ref().map(|k| k.bytes()) != Some(retained) {
            drop(kept.take()); // given back before asking again
            kept = net.requests.try_keep(retained);
            if kept.is_none() && retained > 0 {
                frames.release();
            }
        }
        released = frames.retained() == 0;
        last_active = Instant::now();
    }
    drop(kept);
    let _ = wr.shutdown().await;
}
