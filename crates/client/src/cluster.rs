//! What a client knows about the cluster: brokers, topic partitions and
//! their leaders (from Metadata), and one pipelined connection per broker,
//! re-made when it fails. Bootstrap servers are tried in turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

use crate::error::ClientError;
use crate::mux::Mux;

/// A topic's partitions: the leader node of each, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Leader node id per partition (-1 when leaderless).
    pub leaders: Vec<i32>,
    /// The topic's id (nil from brokers older than Metadata v10).
    pub id: uuid::Uuid,
}

/// Failed connection attempts to one address: when the next may start.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    not_before: Instant,
    wait: Duration,
}

#[derive(Debug, Default)]
struct State {
    brokers: HashMap<i32, String>,
    topics: HashMap<String, TopicInfo>,
    conns: HashMap<String, Arc<Mux>>,
    backoff: HashMap<String, Backoff>,
    /// Coordinators by (key, key type) for [`Cluster::known_coordinator`].
    coordinators: HashMap<(String, i8), Arc<Mux>>,
}

/// Cluster metadata and connections, shared by a client's tasks.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    /// `reconnect.backoff.ms` and `reconnect.backoff.max.ms`.
    reconnect: (Duration, Duration),
    state: Mutex<State>,
    /// FindCoordinator requests sent (a test checks that commits reuse a
    /// known coordinator).
    coordinator_lookups: std::sync::atomic::AtomicU64,
}

impl Cluster {
    /// A cluster reached through `bootstrap` (comma-separated HOST:PORT list).
    pub fn new(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Cluster, ClientError> {
        let bootstrap: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is empty".into()));
        }
        Ok(Cluster {
            bootstrap,
            client_id: client_id.to_string(),
            timeout,
            reconnect: (Duration::from_millis(50), Duration::from_millis(1000)),
            state: Mutex::new(State::default()),
            coordinator_lookups: Default::default(),
        })
    }

    /// Sets the reconnect backoff: after a failed connection to an address
    /// the next attempt waits `first`, doubling per failure up to `max`
    /// (with up to 20% random jitter), so a restarting broker is not
    /// hammered and a client does not spin.
    pub fn with_reconnect_backoff(mut self, first: Duration, max: Duration) -> Cluster {
        self.reconnect = (first, max.max(first));
        self
    }

    /// The request timeout of every connection.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection to `addr`, made or re-made as needed.
    pub async fn connection(&self, addr: &str) -> Result<Arc<Mux>, ClientError> {
        {
            let st = self.state.lock().await;
            if let Some(c) = st.conns.get(addr).filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let not_before = self
            .state
            .lock()
            .await
            .backoff
            .get(addr)
            .map(|b| b.not_before);
        if let Some(at) = not_before.filter(|at| *at > Instant::now()) {
            tokio::time::sleep_until(at.into()).await;
        }
        match Mux::connect(addr, &self.client_id, self.timeout).await {
            Ok(mux) => {
                let mux = Arc::new(mux);
                let mut st = self.state.lock().await;
                st.backoff.remove(addr);
                st.conns.insert(addr.to_string(), mux.clone());
                Ok(mux)
            }
            Err(e) => {
                let (first, max) = self.reconnect;
                let mut st = self.state.lock().await;
                let wait = st
                    .backoff
                    .get(addr)
                    .map_or(first, |b| (b.wait * 2).min(max));
                let jitter = wait.mul_f64(0.2 * jitter_fraction());
                st.backoff.insert(
                    addr.to_string(),
                    Backoff {
                        not_before: Instant::now() + wait + jitter,
                        wait,
                    },
                );
                Err(e)
            }
        }
    }

    /// A connection to any broker: known brokers first, then the bootstrap list.
    pub async fn any_connection(&self) -> Result<Arc<Mux>, ClientError> {
        let known: Vec<String> = self.state.lock().await.brokers.values().cloned().collect();
        let mut last = None;
        for addr in known.iter().chain(self.bootstrap.iter()) {
            match self.connection(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no broker to connect to".into())))
    }

    /// The connection to node `id`.
    pub async fn node(&self, id: i32) -> Result<Arc<Mux>, ClientError> {
        let addr = self.state.lock().await.brokers.get(&id).cloned();
        match addr {
            Some(a) => self.connection(&a).await,
            None => Err(ClientError::Kafka {
                context: format!("node {id} is not in the metadata"),
                error: ResponseError::LeaderNotAvailable,
            }),
        }
    }

    /// Fetches metadata for `topics` and caches brokers and leaders.
    pub async fn refresh(&self, topics: &[String], auto_create: bool) -> Result<(), ClientError> {
        self.refresh_codes(topics, auto_create).await.map(|_| ())
    }

    /// [`Cluster::refresh`], returning the error code of each topic that
    /// had one.
    async fn refresh_codes(
        &self,
        topics: &[String],
        auto_create: bool,
    ) -> Result<Vec<(String, i16)>, ClientError> {
        let conn = self.any_connection().await?;
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(auto_create);
        let (_, r): (i16, MetadataResponse) = conn.call(ApiKey::Metadata, &req).await?;
        let mut st = self.state.lock().await;
        let mut codes = Vec::new();
        for b in r.brokers {
            st.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host, b.port));
        }
        for t in r.topics {
            let Some(name) = t.name else { continue };
            if t.error_code != 0 {
                st.topics.remove(name.0.as_str());
                codes.push((name.0.to_string(), t.error_code));
                continue;
            }
            let id = t.topic_id;
            let mut leaders = vec![-1; t.partitions.len()];
            for p in t.partitions {
                if let Some(slot) = usize::try_from(p.partition_index)
                    .ok()
                    .and_then(|i| leaders.get_mut(i))
                {
                    *slot = p.leader_id.0;
                }
            }
            st.topics
                .insert(name.0.to_string(), TopicInfo { leaders, id });
        }
        Ok(codes)
    }

    /// A topic's partitions, from the cache or fresh metadata.
    pub async fn topic(&self, name: &str, auto_create: bool) -> Result<TopicInfo, ClientError> {
        if let Some(t) = self.state.lock().await.topics.get(name) {
            return Ok(t.clone());
        }
        // A topic being created (auto-created by this request, or just
        // created by an admin) is LEADER_NOT_AVAILABLE or, on Kafka, unknown
        // for a moment: retry until the request timeout, as Kafka's clients
        // wait up to max.block.ms.
        let deadline = tokio::time::Instant::now() + self.timeout();
        let mut backoff = Duration::from_millis(50);
        loop {
            let codes = self.refresh_codes(&[name.to_string()], auto_create).await?;
            if let Some(t) = self.state.lock().await.topics.get(name) {
                return Ok(t.clone());
            }
            let code = codes.first().map_or(0, |(_, c)| *c);
            let error = ResponseError::try_from_code(code)
                .unwrap_or(ResponseError::UnknownTopicOrPartition);
            let passing = error == ResponseError::LeaderNotAvailable
                || (auto_create && error == ResponseError::UnknownTopicOrPartition);
            if !passing || tokio::time::Instant::now() + backoff > deadline {
                return Err(ClientError::Kafka {
                    context: format!("topic {name}"),
                    error,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// The name of a cached topic with this id.
    pub async fn topic_name(&self, id: uuid::Uuid) -> Option<String> {
        let st = self.state.lock().await;
        st.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(name, _)| name.clone())
    }

    /// Forgets a topic's metadata so the next use fetches it again
    /// (after NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, ...).
    pub async fn invalidate(&self, name: &str) {
        self.state.lock().await.topics.remove(name);
    }

    /// Forgets all topic metadata (a broker went away).
    pub async fn invalidate_all(&self) {
        self.state.lock().await.topics.clear();
    }

    /// The coordinator of a group (`key_type` 0) or transactional id (1).
    /// While the coordinator is not ready (its internal topic being
    /// created or loaded), the lookup is retried until the request timeout.
    pub async fn coordinator(&self, key: &str, key_type: i8) -> Result<Arc<Mux>, ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.find_coordinator(key, key_type).await {
                Err(ClientError::Kafka { error, .. })
                    if matches!(
                        error,
                        ResponseError::CoordinatorNotAvailable
                            | ResponseError::CoordinatorLoadInProgress
                            | ResponseError::NotCoordinator
                    ) && tokio::time::Instant::now() + backoff < deadline =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn find_coordinator(&self, key: &str, key_type: i8) -> Result<Arc<Mux>, ClientError> {
        self.coordinator_lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = self.any_connection().await?;
        let v = conn.version(ApiKey::FindCoordinator)?;
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_key(StrBytes::from_string(key.to_string()))
        };
        let p = conn.send(ApiKey::FindCoordinator, v, &req).await?;
        let r: FindCoordinatorResponse = conn.wait(p).await?;
        let (code, node, host, port) = match r.coordinators.into_iter().next() {
            Some(c) if v >= 4 => (c.error_code, c.node_id.0, c.host.to_string(), c.port),
            _ => (r.error_code, r.node_id.0, r.host.to_string(), r.port),
        };
        ClientError::check(code, format!("finding the coordinator of {key}"))?;
        let addr = format!("{host}:{port}");
        self.state.lock().await.brokers.insert(node, addr.clone());
        self.connection(&addr).await
    }

    /// The coordinator of `key` found by an earlier call, while its
    /// connection is open; otherwise looked up (FindCoordinator) and kept.
    /// For callers that send it request after request (a transactional
    /// producer: four per transaction); they call
    /// [`Cluster::forget_coordinators`] when a request fails in a way that
    /// may mean it moved.
    pub async fn known_coordinator(
        &self,
        key: &str,
        key_type: i8,
    ) -> Result<Arc<Mux>, ClientError> {
        let id = (key.to_string(), key_type);
        let known = self.state.lock().await.coordinators.get(&id).cloned();
        if let Some(c) = known.filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let c = self.coordinator(key, key_type).await?;
        self.state.lock().await.coordinators.insert(id, c.clone());
        Ok(c)
    }

    /// Drops the coordinators [`Cluster::known_coordinator`] kept.
    pub async fn forget_coordinators(&self) {
        self.state.lock().await.coordinators.clear();
    }
}

#[cfg(test)]
impl Cluster {
    /// FindCoordinator requests sent so far.
    pub(crate) fn coordinator_lookups(&self) -> u64 {
        self.coordinator_lookups
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A number in [0, 1) that differs between calls (for backoff jitter; not
/// for anything that needs real randomness).
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconnects_back_off_and_double() {
        // A port nobody listens on: every connect is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cluster = Cluster::new(&addr, "t", Duration::from_secs(1))
            .expect("cluster")
            .with_reconnect_backoff(Duration::from_millis(100), Duration::from_millis(250));
        let mut waits = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            assert!(cluster.connection(&addr).await.is_err());
            waits.push(t.elapsed());
        }
        // First attempt at once; then at least 100, 200, 250, 250 ms apart
        // (doubling, capped: uncapped the last would wait 800 ms).
        assert!(waits[0] < Duration::from_millis(100), "{waits:?}");
        assert!(waits[1] >= Duration::from_millis(100), "{waits:?}");
        assert!(waits[2] >= Duration::from_millis(200), "{waits:?}");
        assert!(waits[3] >= Duration::from_millis(250), "{waits:?}");
        assert!(waits[4] < Duration::from_millis(700), "capped: {waits:?}");
    }
}
