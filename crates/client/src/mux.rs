//! A pipelined broker connection: many requests in flight, answered in
//! order. A writer task sends frames as callers hand them over; a reader
//! task matches each response to the oldest outstanding request (Kafka
//! answers every connection in request order) and checks the correlation id.
//! When either side fails, every outstanding request fails with the error
//! and the connection reports itself closed, so callers reconnect.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use strom_protocol::parts::write_all_parts;

use crate::connection::{encode_request, Connection};
use crate::error::ClientError;

/// Largest response accepted (bounds allocation on a hostile length).
const MAX_RESPONSE: usize = 256 << 20;

type Reply = oneshot::Sender<Result<Bytes, String>>;

/// A request frame to write: one buffer, or several written with one
/// vectored write (Produce: record batches are not copied into the frame).
#[derive(Debug)]
enum Frame {
    One(Bytes),
    Parts(Vec<Bytes>),
}

struct Shared {
    /// Correlation ids and reply slots of requests sent and not yet answered.
    waiting: Mutex<VecDeque<(i32, Reply)>>,
    closed: AtomicBool,
}

impl Shared {
    fn fail_all(&self, why: &str) {
        self.closed.store(true, Ordering::Release);
        let waiting: Vec<_> = match self.waiting.lock() {
            Ok(mut w) => w.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for (_, reply) in waiting {
            let _ = reply.send(Err(why.to_string()));
        }
    }
}

/// A response that will arrive: await it with [`Mux::wait`].
#[derive(Debug)]
pub struct PendingResponse {
    rx: oneshot::Receiver<Result<Bytes, String>>,
    key: ApiKey,
    version: i16,
}

/// A pipelined connection to one broker.
#[derive(Debug)]
pub struct Mux {
    addr: String,
    client_id: String,
    versions: HashMap<i16, i16>,
    timeout: Duration,
    next_id: AtomicI32,
    out: mpsc::Sender<(Frame, Option<(i32, Reply)>)>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Mux {
    /// Connects to `addr`, negotiates versions, and starts the reader and writer.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Mux, ClientError> {
        let conn = Connection::connect(addr, client_id, timeout).await?;
        let (stream, versions) = conn.into_parts();
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            waiting: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(write_loop(write, rx, shared.clone()));
        tokio::spawn(read_loop(read, shared.clone()));
        Ok(Mux {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            versions,
            timeout,
            next_id: AtomicI32::new(1),
            out: tx,
            shared,
        })
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True once the connection failed; make a new one.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.out.is_closed()
    }

    /// The version of `key` to use, if both sides have one.
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        self.versions
            .get(&(key as i16))
            .copied()
            .ok_or(ClientError::Unsupported(key))
    }

    fn frame<Req: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        id: i32,
        req: &Req,
    ) -> Result<Bytes, ClientError> {
        Ok(encode_request(key, version, id, &self.client_id, req)?.freeze())
    }

    /// Queues a request; its response is awaited later with [`Mux::wait`].
    pub async fn send<Req: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<PendingResponse, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.frame(key, version, id, req)?;
        self.queue(Frame::One(frame), key, version, id).await
    }

    /// Like [`Mux::send`] for a frame the caller writes as buffers (with
    /// the correlation id it is given); `build` returns `None` to fall back
    /// to encoding `req`.
    pub async fn send_parts<Req: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        build: impl FnOnce(i32) -> Option<Vec<Bytes>>,
        req: impl FnOnce() -> Req,
    ) -> Result<PendingResponse, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = match build(id) {
            Some(parts) => Frame::Parts(parts),
            None => Frame::One(self.frame(key, version, id, &req())?),
        };
        self.queue(frame, key, version, id).await
    }

    async fn queue(
        &self,
        frame: Frame,
        key: ApiKey,
        version: i16,
        id: i32,
    ) -> Result<PendingResponse, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.out
            .send((frame, Some((id, tx))))
            .await
            .map_err(|_| ClientError::Protocol(format!("connection to {} is closed", self.addr)))?;
        Ok(PendingResponse { rx, key, version })
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<Req: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<(), ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.frame(key, version, id, req)?;
        self.out
            .send((Frame::One(frame), None))
            .await
            .map_err(|_| ClientError::Protocol(format!("connection to {} is closed", self.addr)))
    }

    /// Waits for a response (up to the connection's timeout) and decodes it.
    pub async fn wait<Resp: Decodable + HeaderVersion>(
        &self,
        p: PendingResponse,
    ) -> Result<Resp, ClientError> {
        self.wait_for(p, self.timeout).await
    }

    /// Like [`Mux::wait`] with its own limit (JoinGroup waits out a whole rebalance).
    pub async fn wait_for<Resp: Decodable + HeaderVersion>(
        &self,
        p: PendingResponse,
        limit: Duration,
    ) -> Result<Resp, ClientError> {
        let body = tokio::time::timeout(limit, p.rx)
            .await
            .map_err(|_| {
                // The response may still come; nothing else can be matched after it.
                self.shared.fail_all("a request timed out");
                ClientError::Timeout(format!("{:?} request to {}", p.key, self.addr))
            })?
            .map_err(|_| ClientError::Protocol(format!("connection to {} closed", self.addr)))?
            .map_err(|why| {
                ClientError::Io(std::io::Error::other(format!("{}: {why}", self.addr)))
            })?;
        let mut body = body;
        ResponseHeader::decode(&mut body, p.key.response_header_version(p.version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Resp::decode(&mut body, p.version)
            .map_err(|e| ClientError::Protocol(format!("{:?} v{} response: {e}", p.key, p.version)))
    }

    /// Sends at the negotiated version and waits for the response.
    pub async fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &self,
        key: ApiKey,
        req: &Req,
    ) -> Result<(i16, Resp), ClientError> {
        let v = self.version(key)?;
        let p = self.send(key, v, req).await?;
        Ok((v, self.wait(p).await?))
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.shared.fail_all("connection dropped");
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Frame, Option<(i32, Reply)>)>,
    shared: Arc<Shared>,
) {
    while let Some((frame, reply)) = rx.recv().await {
        if shared.closed.load(Ordering::Acquire) {
            if let Some((_, r)) = reply {
                let _ = r.send(Err("connection closed".into()));
            }
            continue;
        }
        if let Some(r) = reply {
            match shared.waiting.lock() {
                Ok(mut w) => w.push_back(r),
                Err(_) => return,
            }
        }
        let written = match &frame {
            Frame::One(b) => write.write_all(b).await,
            Frame::Parts(parts) => write_all_parts(&mut write, parts).await,
        };
        if let Err(e) = written {
            shared.fail_all(&e.to_string());
        }
    }
    shared.fail_all("connection dropped");
}

async fn read_loop(mut read: OwnedReadHalf, shared: Arc<Shared>) {
    loop {
        let mut len = [0u8; 4];
        if let Err(e) = read.read_exact(&mut len).await {
            shared.fail_all(&e.to_string());
            return;
        }
        let n = i32::from_be_bytes(len);
        if n < 4 || n as usize > MAX_RESPONSE {
            shared.fail_all(&format!("response length {n} out of range"));
            return;
        }
        // Read into uninitialised capacity: no zeroing of large responses.
        let n = n as usize;
        let mut buf = bytes::BytesMut::with_capacity(n);
        while buf.len() < n {
            let mut rest = (&mut read).take((n - buf.len()) as u64);
            match rest.read_buf(&mut buf).await {
                Ok(0) => {
                    shared.fail_all("connection closed mid-response");
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    shared.fail_all(&e.to_string());
                    return;
                }
            }
        }
        let id = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let next = match shared.waiting.lock() {
            Ok(mut w) => w.pop_front(),
            Err(_) => return,
        };
        match next {
            Some((want, reply)) if want == id => {
                let _ = reply.send(Ok(buf.freeze()));
            }
            Some((want, reply)) => {
                let why = format!("response for request {id} arrived for {want}");
                let _ = reply.send(Err(why.clone()));
                shared.fail_all(&why);
                return;
            }
            None => {
                shared.fail_all(&format!("unexpected response {id}"));
                return;
            }
        }
    }
}
