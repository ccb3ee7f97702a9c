//! The network layer's limits: what one client can make the broker hold.
//!
//! - [`memory_pool`]: bytes of requests being read or handled, broker-wide
//!   (`queued.max.request.bytes`), and bytes of responses waiting for
//!   clients.
//! - [`limits`]: the limits read from the config, and the connection
//!   counts (`max.connections`, `max.connections.per.ip`).
//! - [`fd`]: the file-descriptor limit and a spare descriptor for refusing
//!   connections cleanly.
//! - [`log`]: rate-limited, escaped log lines for what clients do wrong.
//!
//! The listener (`server`) and the connection task (`connection`) use them.

pub mod fd;
pub mod limits;
pub mod log;
pub mod memory_pool;

use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use limits::{ConnectionQuotas, NetLimits, TooManyConnections};
use memory_pool::MemoryPool;

/// What the listener and every connection share.
#[derive(Debug)]
pub struct NetState {
    /// The limits.
    pub limits: NetLimits,
    /// Bytes of requests being read or handled (and read buffers kept).
    pub requests: Arc<MemoryPool>,
    /// Bytes of responses being written.
    pub responses: Arc<MemoryPool>,
    quotas: Mutex<ConnectionQuotas>,
    /// Wakes the acceptor when a connection closes.
    closed: Notify,
}

impl NetState {
    /// Fresh state for `limits`.
    pub fn new(limits: NetLimits) -> Arc<NetState> {
        Arc::new(NetState {
            requests: MemoryPool::new(limits.pool_bytes),
            responses: MemoryPool::new(limits.pool_bytes),
            quotas: Mutex::new(ConnectionQuotas::new(&limits)),
            closed: Notify::new(),
            limits,
        })
    }

    /// Waits until another connection may be accepted (`max.connections`).
    pub async fn connection_slot(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.quotas.lock().slot_available() {
                return;
            }
            closed.await;
        }
    }

    /// Counts a connection from `ip`; the returned guard uncounts it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, TooManyConnections> {
        self.quotas.lock().admit(ip)?;
        Ok(ConnectionSlot {
            net: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.quotas.lock().total()
    }
}

/// One counted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    net: Arc<NetState>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.net.quotas.lock().release(self.ip);
        self.net.closed.notify_waiters();
    }
}
