//! The network limits, read once from the broker's config, and the
//! connection counts they are checked against (Kafka's `ConnectionQuotas`).
//!
//! As in Kafka: when `max.connections` connections are open the acceptor
//! stops accepting until one closes (new clients wait in the listen
//! backlog); a connection from an address that already has
//! `max.connections.per.ip` (or its entry in
//! `max.connections.per.ip.overrides`) is accepted and closed at once.
//! Strom also never lets connections take more than three quarters of the
//! process's file descriptors (`RLIMIT_NOFILE`): the rest stay for log
//! segments, indexes and the broker's own files, which must not fail
//! because clients opened sockets.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use thiserror::Error;

use crate::config::BrokerConfig;

/// Longest a frame may take to arrive once its first byte has (and once
/// its memory is reserved): a Kafka client's default `request.timeout.ms`.
/// A client whose request takes longer to send has given up on it already.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection that sends nothing keeps its read buffers.
pub const BUFFER_RELEASE: Duration = Duration::from_secs(10);

/// How long a response may wait for its client, while more bytes of
/// responses are waiting broker-wide than the response pool holds, before
/// its connection is closed.
pub const RESPONSE_STALL: Duration = Duration::from_secs(1);

/// Why the network limits in the config are unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// An entry of `max.connections.per.ip.overrides` is not `host:count`.
    #[error("max.connections.per.ip.overrides entry '{0}' is not HOST:COUNT")]
    Override(String),
    /// A host in `max.connections.per.ip.overrides` does not resolve.
    #[error("max.connections.per.ip.overrides: cannot resolve host '{host}': {reason}")]
    Resolve {
        /// The host as written.
        host: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// `max.connections.per.ip` is 0 but no overrides allow anyone in.
    #[error("max.connections.per.ip is 0 and max.connections.per.ip.overrides is empty: no client could connect")]
    NobodyAllowed,
}

/// The limits the listener and connections enforce.
#[derive(Debug, Clone)]
pub struct NetLimits {
    /// Largest frame (`socket.request.max.bytes`).
    pub max_frame: usize,
    /// Bytes of requests being read or handled, broker-wide
    /// (`queued.max.request.bytes`; the same bound applies to responses
    /// waiting for clients that do not read them).
    pub pool_bytes: u64,
    /// Close a connection that sends nothing for this long
    /// (`connections.max.idle.ms`; `None` for -1).
    pub max_idle: Option<Duration>,
    /// A frame must arrive within this long of its first byte.
    pub frame_timeout: Duration,
    /// Connections open at once (`max.connections`, lowered to fit the
    /// file-descriptor reserve).
    pub max_connections: usize,
    /// Connections per client address (`max.connections.per.ip`).
    pub max_per_ip: u32,
    /// Per-address exceptions (`max.connections.per.ip.overrides`).
    pub per_ip_overrides: HashMap<IpAddr, u32>,
}

impl NetLimits {
    /// Reads the limits from `config`; `nofile` is the soft `RLIMIT_NOFILE`
    /// (`None` if unknown).
    pub fn from_config(
        config: &BrokerConfig,
        nofile: Option<u64>,
    ) -> Result<NetLimits, LimitsError> {
        let max_frame = config
            .get_i64("socket.request.max.bytes", 104_857_600)
            .max(1) as usize;
        let pool_bytes = default_pool_bytes(
            config.get_i64("queued.max.request.bytes", -1),
            max_frame as u64,
        );
        let max_idle = match config.get_i64("connections.max.idle.ms", 600_000) {
            ms if ms < 0 => None,
            ms => Some(Duration::from_millis(ms as u64)),
        };
        let frame_timeout = max_idle.map_or(FRAME_TIMEOUT, |i| i.min(FRAME_TIMEOUT));
        let max_connections =
            connection_cap(config.get_i64("max.connections", i32::MAX as i64), nofile);
        let max_per_ip = config
            .get_i64("max.connections.per.ip", i32::MAX as i64)
            .clamp(0, u32::MAX as i64) as u32;
        let per_ip_overrides = parse_overrides(&config.get("max.connections.per.ip.overrides"))?;
        if max_per_ip == 0 && per_ip_overrides.is_empty() {
            return Err(LimitsError::NobodyAllowed);
        }
        Ok(NetLimits {
            max_frame,
            pool_bytes,
            max_idle,
            frame_timeout,
            max_connections,
            max_per_ip,
            per_ip_overrides,
        })
    }
}

/// The request pool's size: `queued.max.request.bytes` when set (> 0).
/// Kafka's default (-1) leaves it unbounded; Strom's default is
/// `socket.request.max.bytes` (100 MiB): one largest-possible request can
/// always be read, a hundred producers sending librdkafka's 1 MiB frames
/// are never held back, and requests can pin at most twice that (the pool
/// lends its last bytes to a frame of any size, as Kafka's does).
pub fn default_pool_bytes(configured: i64, max_frame: u64) -> u64 {
    if configured > 0 {
        configured as u64
    } else {
        max_frame.max(1)
    }
}

/// `max.connections`, lowered so that connections leave a quarter of the
/// process's file descriptors (at least 64) to the broker's files.
pub fn connection_cap(max_connections: i64, nofile: Option<u64>) -> usize {
    let configured = max_connections.max(1) as u64;
    let cap = match nofile {
        Some(n) => {
            let reserve = (n / 4).max(64);
            n.saturating_sub(reserve).max(1)
        }
        None => u64::MAX,
    };
    configured.min(cap).min(usize::MAX as u64) as usize
}

/// Parses Kafka's `host:count,host:count`; host names are resolved once
/// (as Kafka does with `InetAddress.getByName`), IPv6 literals may be
/// written bracketed.
pub fn parse_overrides(s: &str) -> Result<HashMap<IpAddr, u32>, LimitsError> {
    let mut out = HashMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| LimitsError::Override(entry.to_string()))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| LimitsError::Override(entry.to_string()))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(LimitsError::Override(entry.to_string()));
        }
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| LimitsError::Resolve {
                    host: host.to_string(),
                    reason: e.to_string(),
                })?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in ips {
            out.insert(canonical(ip), count);
        }
    }
    Ok(out)
}

/// An IPv4 address seen through an IPv6 socket counts as itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A connection refused because its address has as many as it may.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("address {ip} already has the configured maximum of {max} connections")]
pub struct TooManyConnections {
    /// The client's address.
    pub ip: IpAddr,
    /// Its limit.
    pub max: u32,
}

/// Open connections, in total and per client address.
#[derive(Debug)]
pub struct ConnectionQuotas {
    max_total: usize,
    max_per_ip: u32,
    overrides: HashMap<IpAddr, u32>,
    total: usize,
    per_ip: HashMap<IpAddr, u32>,
}

impl ConnectionQuotas {
    /// Quotas for `limits`, with nothing open.
    pub fn new(limits: &NetLimits) -> ConnectionQuotas {
        ConnectionQuotas {
            max_total: limits.max_connections,
            max_per_ip: limits.max_per_ip,
            overrides: limits.per_ip_overrides.clone(),
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Whether another connection may be accepted (else the acceptor waits).
    pub fn slot_available(&self) -> bool {
        self.total < self.max_total
    }

    /// Counts a new connection from `ip`, or refuses it if its address is
    /// at its limit (nothing is counted then).
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), TooManyConnections> {
        let ip = canonical(ip);
        let max = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let n = self.per_ip.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            return Err(TooManyConnections { ip, max });
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Forgets a closed connection from `ip`.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Connections open now from `ip`.
    pub fn from_ip(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: u32, overrides: &str) -> NetLimits {
        NetLimits {
            max_frame: 1024,
            pool_bytes: 1024,
            max_idle: None,
            frame_timeout: FRAME_TIMEOUT,
            max_connections: total,
            max_per_ip: per_ip,
            per_ip_overrides: parse_overrides(overrides).expect("overrides"),
        }
    }

    #[test]
    fn per_ip_limit_refuses_the_next_connection_and_overrides_win() {
        let mut q = ConnectionQuotas::new(&limits(100, 2, "10.0.0.9:5, [::1]:0"));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.9".parse().expect("ip");
        let v6: IpAddr = "::1".parse().expect("ip");
        assert!(q.admit(a).is_ok());
        assert!(q.admit(a).is_ok());
        assert_eq!(q.admit(a), Err(TooManyConnections { ip: a, max: 2 }));
        assert_eq!(q.total(), 2, "a refused connection is not counted");
        for _ in 0..5 {
            assert!(q.admit(b).is_ok());
        }
        assert!(q.admit(b).is_err());
        assert!(q.admit(v6).is_err(), "an override of 0 lets nobody in");
        assert_eq!(q.from_ip(v6), 0);
        q.release(a);
        assert!(q.admit(a).is_ok(), "a closed connection frees its slot");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert!(
            q.admit(mapped).is_err(),
            "IPv4-mapped counts as the IPv4 address"
        );
        q.release("10.9.9.9".parse().expect("ip"));
        assert_eq!(q.total(), 7, "releasing an unknown address changes nothing");
    }

    #[test]
    fn the_total_limit_stops_accepting_until_one_closes() {
        let mut q = ConnectionQuotas::new(&limits(2, u32::MAX, ""));
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(q.slot_available());
        q.admit(a).expect("first");
        q.admit(a).expect("second");
        assert!(!q.slot_available());
        q.release(a);
        assert!(q.slot_available());
    }

    #[test]
    fn overrides_parse_as_kafka_writes_them() {
        let o = parse_overrides("127.0.0.1:200, localhost:3,[fe80::1]:7").expect("parse");
        assert_eq!(o.get(&"127.0.0.1".parse::<IpAddr>().expect("ip")), Some(&3));
        assert_eq!(o.get(&"fe80::1".parse::<IpAddr>().expect("ip")), Some(&7));
        assert!(parse_overrides("").expect("empty").is_empty());
        assert!(matches!(
            parse_overrides("hostonly"),
            Err(LimitsError::Override(_))
        ));
        assert!(matches!(
            parse_overrides("h:x"),
            Err(LimitsError::Override(_))
        ));
        assert!(matches!(
            parse_overrides(":3"),
            Err(LimitsError::Override(_))
        ));
    }

    #[test]
    fn connections_leave_a_quarter_of_the_descriptors_and_the_pool_has_a_bound() {
        assert_eq!(connection_cap(i32::MAX as i64, Some(20_000)), 15_000);
        assert_eq!(connection_cap(100, Some(20_000)), 100);
        assert_eq!(connection_cap(i32::MAX as i64, Some(100)), 36);
        assert_eq!(connection_cap(i32::MAX as i64, Some(10)), 1);
        assert_eq!(connection_cap(5, None), 5);
        assert_eq!(default_pool_bytes(-1, 100 << 20), 100 << 20);
        assert_eq!(default_pool_bytes(0, 100 << 20), 100 << 20);
        assert_eq!(default_pool_bytes(5 << 20, 100 << 20), 5 << 20);
    }
}
