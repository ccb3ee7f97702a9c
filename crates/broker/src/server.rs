//! The listener, background maintenance and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::{AdvertisedListener, Broker};
use crate::config::cluster::ClusterLayout;
use crate::config::BrokerConfig;
use crate::net::fd::{self, SpareFd};
use crate::net::limits::{LimitsError, NetLimits};
use crate::net::log::{ACCEPT_FAILED, REFUSED};
use crate::net::NetState;
use crate::topics::TopicError;

/// Why the server could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster configs (roles, voters, listeners) are unusable.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The network limits in the config are unusable.
    #[error("{0}")]
    Limits(#[from] LimitsError),
    /// Opening the data directory failed.
    #[error("cannot open data directory: {0}")]
    Data(#[from] TopicError),
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The broker state.
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish (up to 10 s), flushes
    /// and closes every log cleanly.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds the listener, opens the data directory and starts serving.
pub async fn start(config: BrokerConfig) -> Result<ServerHandle, ServerError> {
    let layout = ClusterLayout::from_config(&config)?;
    if !layout.roles.broker {
        return Err(ServerError::Config(crate::config::ConfigError::Refused(
            "process.roles=controller runs no broker: start it with controller_node::ControllerNode".into(),
        )));
    }
    // Every broker listener serves clients; a connection knows which one
    // it came in on (Metadata answers with that listener's endpoints).
    let mut bound = Vec::with_capacity(layout.broker_listeners.len());
    for l in &layout.broker_listeners {
        let addr = l.address();
        let fail = |source| ServerError::Bind {
            addr: addr.clone(),
            source,
        };
        let listener = TcpListener::bind(&addr).await.map_err(fail)?;
        let local = listener.local_addr().map_err(fail)?;
        bound.push(Bound {
            name: Arc::from(l.name.as_str()),
            listener,
            local,
        });
    }
    let local = bound.first().map(|b| b.local).ok_or_else(|| {
        ServerError::Config(crate::config::ConfigError::Refused(
            "listeners must contain a listener that is not a controller listener".into(),
        ))
    })?;
    // Advertised as configured, or as bound (the real port when it was 0).
    let advertised: Vec<AdvertisedListener> = bound
        .iter()
        .map(|b| {
            let name = b.name.to_string();
            match layout.advertised.iter().find(|l| l.name == name) {
                Some(a)
                    if config.is_set("advertised.listeners")
                        && !a.host.is_empty()
                        && a.port != 0 =>
                {
                    AdvertisedListener {
                        name,
                        host: a.host.clone(),
                        port: i32::from(a.port),
                    }
                }
                _ => AdvertisedListener {
                    name,
                    host: b.local.ip().to_string(),
                    port: i32::from(b.local.port()),
                },
            }
        })
        .collect();
    let first = advertised
        .first()
        .map(|a| format!("{}:{}", a.host, a.port))
        .unwrap_or_default();
    let all = advertised
        .iter()
        .map(|a| format!("{}://{}:{}", a.name, a.host, a.port))
        .collect::<Vec<_>>()
        .join(",");
    let limits = NetLimits::from_config(&config, fd::nofile_limit())?;
    let retention_every = Duration::from_millis(
        config
            .get_i64("log.retention.check.interval.ms", 300_000)
            .max(1) as u64,
    );
    let single = layout.single_node();
    let broker = {
        // Registration waits for the controller: off the runtime's workers.
        let advertised = advertised.clone();
        tokio::task::spawn_blocking(move || {
            Broker::open_in(config, &layout, advertised, crate::clock::system())
        })
        .await
        .map_err(|e| {
            ServerError::Config(crate::config::ConfigError::Refused(format!(
                "start-up failed: {e}"
            )))
        })??
    };
    let broker = Arc::new(broker);
    let (shutdown, shutdown_rx) = watch::channel(false);
    tracing::info!(listen = %local, advertised = %first, listeners = %all, cluster_id = %broker.cluster_id, node_id = broker.node_id, "strom broker started");

    let b = broker.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        let net = NetState::new(limits);
        tracing::info!(
            max_connections = net.limits.max_connections,
            max_connections_per_ip = net.limits.max_per_ip,
            queued_max_request_bytes = net.limits.pool_bytes,
            connections_max_idle_ms = net.limits.max_idle.map_or(-1, |d| d.as_millis() as i64),
            "connection limits"
        );
        let mut spare = SpareFd::open();
        let maintenance = tokio::spawn(maintain(b.clone(), retention_every, shutdown_rx.clone()));
        let mut stop = shutdown_rx.clone();
        loop {
            // At max.connections the acceptor waits for one to close, as
            // Kafka's does (new clients wait in the listen backlog).
            let accepted = tokio::select! {
                a = async {
                    net.connection_slot().await;
                    accept_any(&bound).await
                } => a,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                _ = stop.changed() => break,
            };
            let (on, accepted) = accepted;
            match accepted {
                Ok((stream, addr)) => {
                    let slot = match net.admit(addr.ip()) {
                        Ok(slot) => slot,
                        Err(e) => {
                            if let Some(suppressed) = REFUSED.check() {
                                tracing::info!(peer = %addr, suppressed, "rejected connection: {e} (max.connections.per.ip)");
                            }
                            drop(stream);
                            continue;
                        }
                    };
                    let (b, n, rx) = (b.clone(), net.clone(), shutdown_rx.clone());
                    let name = bound[on].name.clone();
                    conns.spawn(crate::connection::serve(stream, name, b, n, slot, rx));
                }
                Err(e) if fd::is_exhaustion(&e) => {
                    // Refuse the waiting connection with the spare
                    // descriptor instead of spinning on it.
                    let refused = spare.release()
                        && matches!(
                            tokio::time::timeout(
                                Duration::from_millis(10),
                                bound[on].listener.accept()
                            )
                            .await,
                            Ok(Ok(_))
                        );
                    spare.reacquire();
                    if let Some(suppressed) = ACCEPT_FAILED.check() {
                        tracing::warn!(error = %e, connections = net.connections(), refused, suppressed, "accept failed: out of file descriptors; refusing new connections until some close");
                    }
                    if !refused {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(e) => {
                    if let Some(suppressed) = ACCEPT_FAILED.check() {
                        tracing::warn!(error = %e, suppressed, "accept failed");
                    }
                }
            }
        }
        drop(bound);
        if !single {
            // Fenced first, so clients go elsewhere at once.
            let b = b.clone();
            let _ = tokio::task::spawn_blocking(move || {
                crate::metadata::lifecycle::controlled_shutdown(b.topics.store(), &b.membership)
            })
            .await;
        }
        tracing::info!(
            connections = conns.len(),
            "shutting down: finishing in-flight requests"
        );
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            conns.abort_all();
        }
        maintenance.abort();
        let stopping = b.clone();
        let _ = tokio::task::spawn_blocking(move || stopping.cleaner.shutdown()).await;
        let topics = b.topics.clone();
        let _ = tokio::task::spawn_blocking(move || topics.close_all()).await;
        tracing::info!("shutdown complete: logs flushed and marked clean");
    });
    Ok(ServerHandle {
        local_addr: local,
        broker,
        shutdown,
        task,
    })
}

/// One bound broker listener.
struct Bound {
    /// Its name (`PLAINTEXT`, `INTERNAL`, …).
    name: Arc<str>,
    listener: TcpListener,
    local: SocketAddr,
}

/// Waits for a connection on any of `bound`: which one, and the result.
async fn accept_any(bound: &[Bound]) -> (usize, std::io::Result<(TcpStream, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        for (i, b) in bound.iter().enumerate() {
            if let Poll::Ready(r) = b.listener.poll_accept(cx) {
                return Poll::Ready((i, r));
            }
        }
        Poll::Pending
    })
    .await
}

/// Retention, interval flushes and idle file-handle release, off the request path.
async fn maintain(broker: Arc<Broker>, retention_every: Duration, mut stop: watch::Receiver<bool>) {
    let mut flush_tick = tokio::time::interval(Duration::from_millis(100));
    let mut group_tick = tokio::time::interval(Duration::from_millis(50));
    // Like Kafka's log.initial.task.delay.ms: no retention pass right at start-up.
    let first = tokio::time::Instant::now() + retention_every.min(Duration::from_secs(30));
    let mut retention_tick = tokio::time::interval_at(first, retention_every);
    let txn_every = Duration::from_millis(
        broker
            .config
            .get_i64(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                10_000,
            )
            .max(1) as u64,
    );
    let mut txn_tick = tokio::time::interval_at(tokio::time::Instant::now() + txn_every, txn_every);
    let lag_ms = broker
        .config
        .get_i64("replica.lag.time.max.ms", 30_000)
        .max(1);
    // Kafka's ISR expiration runs every half lag time.
    let mut isr_tick = tokio::time::interval(Duration::from_millis((lag_ms as u64 / 2).max(10)));
    let hw_every = broker
        .config
        .get_i64("replica.high.watermark.checkpoint.interval.ms", 5_000)
        .max(10) as u64;
    let mut hw_tick = tokio::time::interval(Duration::from_millis(hw_every));
    loop {
        tokio::select! {
            _ = flush_tick.tick() => {
                let topics = broker.topics.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for p in topics.all_partitions() {
                        if let Err(e) = p.log.flush_if_due() {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "interval flush failed");
                        }
                    }
                }).await;
            }
            _ = group_tick.tick() => broker.groups.tick(),
            _ = broker.topics.coordinator_moves().changed() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.apply_coordinator_moves()).await;
            }
            _ = txn_tick.tick() => {
                // Transaction timeouts, id and producer expiry, producer snapshots.
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    b.txns.tick(&b.groups);
                    for p in b.topics.all_partitions() {
                        if let Err(e) = p.save_producer_state(false) {
                            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot save producer state");
                        }
                    }
                }).await;
            }
            _ = isr_tick.tick() => {
                crate::replication::shrink_isrs(&broker.topics, lag_ms);
            }
            _ = hw_tick.tick() => {
                let topics = broker.topics.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for p in topics.all_partitions() {
                        if let Err(e) = p.checkpoint_high_watermark() {
                            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot save the high-watermark checkpoint");
                        }
                    }
                }).await;
            }
            _ = retention_tick.tick() => {
                let topics = broker.topics.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for p in topics.all_partitions() {
                        if let Err(e) = p.log.apply_retention() {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
                        }
                        p.log.release_idle_handles(10 * 60 * 1000);
                    }
                }).await;
            }
            _ = stop.changed() => return,
        }
    }
}
