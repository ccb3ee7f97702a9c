//! The follower side: one fetcher per leader broker copies the logs of the
//! partitions this node follows from it, as Kafka's `ReplicaFetcherThread`
//! does: a Fetch with this node's `replica_id`, the leader's batches
//! appended at the leader's offsets, the leader's high watermark kept. The
//! offset a follower fetches from tells the leader how far it has got.
//!
//! The fetchers run on a small runtime of their own, so copying logs never
//! delays the metadata quorum's heartbeats or the clients' requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use strom_storage::StorageError;
use tokio::sync::Notify;
use uuid::Uuid;

use super::peer::Peer;
use super::throttle::FollowerThrottle;
use crate::metadata::{LeaderEpoch, NodeId, TopicPartition};
use crate::partition::Partition;

/// How long a fetcher with only throttled replicas waits for the rate to drop.
const THROTTLE_PAUSE: Duration = Duration::from_millis(100);

/// Fetch v12: replica id in the request body, topics by name, the
/// leader's log start and high watermark in the response.
const FETCH_VERSION: i16 = 12;

/// Kafka's replica fetcher settings.
#[derive(Debug, Clone, Copy)]
pub struct FetcherConfig {
    /// `replica.fetch.max.bytes`: per partition.
    pub partition_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per response.
    pub response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait_ms: i32,
    /// `replica.fetch.backoff.ms`: after an error.
    pub backoff: Duration,
}

impl Default for FetcherConfig {
    fn default() -> FetcherConfig {
        FetcherConfig {
            partition_max_bytes: 1_048_576,
            response_max_bytes: 10_485_760,
            max_wait_ms: 500,
            backoff: Duration::from_millis(1000),
        }
    }
}

/// A partition this node follows.
#[derive(Debug, Clone)]
pub struct Followed {
    /// Which.
    pub tp: TopicPartition,
    /// Its topic's id.
    pub topic_id: Uuid,
    /// The local log.
    pub log: Arc<Partition>,
    /// The leader epoch it is followed at.
    pub epoch: LeaderEpoch,
    /// Out of the ISR and named in its topic's
    /// `follower.replication.throttled.replicas`: fetched within
    /// `follower.replication.throttled.rate`.
    pub throttled: bool,
}

/// Where a leader is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAddr {
    /// Host.
    pub host: String,
    /// Port.
    pub port: i32,
}

type Followers = Arc<Mutex<HashMap<TopicPartition, Followed>>>;

struct Fetcher {
    addr: LeaderAddr,
    partitions: Followers,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Every fetcher of this node, by leader.
pub struct ReplicaFetchers {
    me: NodeId,
    config: FetcherConfig,
    throttle: Arc<FollowerThrottle>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    fetchers: Mutex<HashMap<NodeId, Fetcher>>,
}

impl std::fmt::Debug for ReplicaFetchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaFetchers")
            .field("me", &self.me)
            .field("leaders", &self.fetchers.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ReplicaFetchers {
    /// The fetchers of node `me`; none runs until [`ReplicaFetchers::set`].
    pub fn new(me: NodeId, config: FetcherConfig, throttle: FollowerThrottle) -> ReplicaFetchers {
        ReplicaFetchers {
            me,
            config,
            throttle: Arc::new(throttle),
            runtime: Mutex::new(None),
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the followed partitions exactly `wanted` (per leader, with its
    /// address): fetchers start, change partitions or stop accordingly.
    pub fn set(&self, wanted: HashMap<NodeId, (LeaderAddr, Vec<Followed>)>) {
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, f| {
            let keep = wanted.get(leader).is_some_and(|(a, _)| *a == f.addr);
            if !keep {
                f.task.abort();
            }
            keep
        });
        for (leader, (addr, parts)) in wanted {
            let map: HashMap<TopicPartition, Followed> =
                parts.into_iter().map(|f| (f.tp.clone(), f)).collect();
            if let Some(f) = fetchers.get(&leader) {
                *f.partitions.lock() = map;
                f.changed.notify_one();
                continue;
            }
            let Some(handle) = self.handle() else { return };
            let partitions: Followers = Arc::new(Mutex::new(map));
            let changed = Arc::new(Notify::new());
            tracing::info!(leader = %leader, host = %addr.host, port = addr.port, "starting a replica fetcher");
            let task = handle.spawn(run(
                self.me,
                addr.clone(),
                partitions.clone(),
                changed.clone(),
                self.config,
                self.throttle.clone(),
            ));
            fetchers.insert(
                leader,
                Fetcher {
                    addr,
                    partitions,
                    changed,
                    task,
                },
            );
        }
    }

    /// Partitions followed, for tests and metrics.
    pub fn followed(&self) -> usize {
        self.fetchers
            .lock()
            .values()
            .map(|f| f.partitions.lock().len())
            .sum()
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        let mut rt = self.runtime.lock();
        if rt.is_none() {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("strom-replica-fetcher")
                .enable_all()
                .build()
            {
                Ok(r) => *rt = Some(r),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the replica fetchers' runtime");
                    return None;
                }
            }
        }
        rt.as_ref().map(|r| r.handle().clone())
    }

    /// Stops every fetcher.
    pub fn stop(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            f.task.abort();
        }
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for ReplicaFetchers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One fetcher: connect, fetch, append, repeat; reconnect after errors.
async fn run(
    me: NodeId,
    addr: LeaderAddr,
    partitions: Followers,
    changed: Arc<Notify>,
    config: FetcherConfig,
    throttle: Arc<FollowerThrottle>,
) {
    // Where to fetch next when it is not the log end (after the leader's
    // log start moved past ours).
    let mut next: HashMap<TopicPartition, i64> = HashMap::new();
    let max_response = usize::try_from(config.response_max_bytes).unwrap_or(usize::MAX)
        + usize::try_from(config.partition_max_bytes).unwrap_or(0)
        + (1 << 20);
    loop {
        let mut peer = match Peer::connect(
            &addr.host,
            addr.port,
            "strom-replica-fetcher",
            max_response,
            Duration::from_secs(10),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "replica fetcher cannot connect");
                tokio::time::sleep(config.backoff).await;
                continue;
            }
        };
        loop {
            let mut followed: Vec<Followed> = partitions.lock().values().cloned().collect();
            if followed.is_empty() {
                changed.notified().await;
                continue;
            }
            // Over follower.replication.throttled.rate, throttled replicas
            // sit this round out (as Kafka's fetcher leaves them out).
            let now = throttle.clock.wall_ms().max(0) as u64;
            if followed.iter().any(|f| f.throttled) && throttle.holds(now) {
                followed.retain(|f| !f.throttled);
                if followed.is_empty() {
                    tokio::select! {
                        _ = tokio::time::sleep(THROTTLE_PAUSE) => {}
                        _ = changed.notified() => {}
                    }
                    continue;
                }
            }
            next.retain(|tp, _| followed.iter().any(|f| f.tp == *tp));
            let req = request(me, &followed, &next, &config);
            let timeout = Duration::from_millis(config.max_wait_ms.max(0) as u64 + 30_000);
            let resp: FetchResponse =
                match peer.call(ApiKey::Fetch, FETCH_VERSION, &req, timeout).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "replica fetch failed; reconnecting");
                        break;
                    }
                };
            if resp.error_code != 0 {
                tracing::warn!(
                    leader = peer.addr(),
                    code = resp.error_code,
                    "replica fetch refused"
                );
                tokio::time::sleep(config.backoff).await;
                continue;
            }
            let mut progressed = false;
            let mut failed = false;
            for t in &resp.responses {
                for pd in &t.partitions {
                    let tp = TopicPartition::new(t.topic.0.as_str(), pd.partition_index);
                    // Only what is still followed, at the epoch it was asked at.
                    let Some(f) = followed.iter().find(|f| f.tp == tp) else {
                        continue;
                    };
                    if partitions
                        .lock()
                        .get(&tp)
                        .is_none_or(|now| now.epoch != f.epoch)
                    {
                        continue;
                    }
                    if f.throttled {
                        let bytes = pd.records.as_ref().map_or(0, |r| r.len());
                        throttle.rate.record(bytes as u64, now);
                    }
                    match apply(f, pd, &mut next) {
                        Ok(moved) => progressed |= moved,
                        Err(()) => failed = true,
                    }
                }
            }
            if failed && !progressed {
                tokio::select! {
                    _ = tokio::time::sleep(config.backoff) => {}
                    _ = changed.notified() => {}
                }
            }
        }
        tokio::time::sleep(config.backoff).await;
    }
}

/// The Fetch request for `followed`.
fn request(
    me: NodeId,
    followed: &[Followed],
    next: &HashMap<TopicPartition, i64>,
    config: &FetcherConfig,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for f in followed {
        let (offset, last_epoch) = match next.get(&f.tp) {
            Some(at) => (*at, -1),
            None => (
                f.log.log.log_end_offset(),
                f.log.log.latest_epoch().unwrap_or(-1),
            ),
        };
        let part = FetchPartition::default()
            .with_partition(f.tp.partition)
            .with_current_leader_epoch(f.epoch.0)
            .with_last_fetched_epoch(last_epoch)
            .with_fetch_offset(offset)
            .with_log_start_offset(f.log.log.log_start_offset())
            .with_partition_max_bytes(config.partition_max_bytes);
        match topics
            .iter_mut()
            .find(|t| t.topic.0.as_str() == &*f.tp.topic)
        {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(f.tp.topic.to_string())))
                    .with_topic_id(f.topic_id)
                    .with_partitions(vec![part]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(me.0))
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(config.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Applies one partition's answer; `Ok(true)` when the log grew.
fn apply(
    f: &Followed,
    pd: &kafka_protocol::messages::fetch_response::PartitionData,
    next: &mut HashMap<TopicPartition, i64>,
) -> Result<bool, ()> {
    let log = &f.log;
    match ResponseError::try_from_code(pd.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange) => {
            let leo = log.log.log_end_offset();
            let result = if leo < pd.log_start_offset {
                // The leader no longer has what follows our log: start over
                // at its log start, as Kafka's follower does.
                next.insert(f.tp.clone(), pd.log_start_offset);
                log.truncate_to(log.log.log_start_offset())
            } else if pd.high_watermark >= 0 && leo > pd.high_watermark {
                // Ahead of the leader (an old leader's unreplicated tail).
                log.truncate_to(pd.high_watermark)
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::error!(partition = %f.tp, error = %e, "cannot truncate a follower's log");
            } else {
                tracing::info!(partition = %f.tp, leader_log_start = pd.log_start_offset, leader_hw = pd.high_watermark, "follower log out of the leader's range; truncated");
            }
            return Err(());
        }
        Some(e) => {
            tracing::debug!(partition = %f.tp, error = ?e, "the leader refused a replica fetch");
            return Err(());
        }
    }
    if pd.diverging_epoch.epoch >= 0 && pd.diverging_epoch.end_offset >= 0 {
        return truncate_diverged(
            f,
            pd.diverging_epoch.epoch,
            pd.diverging_epoch.end_offset,
            next,
        );
    }
    let records: Bytes = pd.records.clone().unwrap_or_default();
    let before = log.log.log_end_offset();
    if !records.is_empty() {
        match log.append_replicated(&records, f.epoch) {
            Ok(_) => {}
            Err(StorageError::OffsetOverlap { .. }) => {
                // Our end moved since the request (a truncation): fetch again.
                next.remove(&f.tp);
                return Err(());
            }
            Err(e) => {
                tracing::error!(partition = %f.tp, error = %e, "cannot append replicated records");
                return Err(());
            }
        }
    }
    let after = log.log.log_end_offset();
    if after > before {
        next.remove(&f.tp);
    }
    // The leader's log start, once we have records at or past it.
    if pd.log_start_offset > log.log.log_start_offset() && pd.log_start_offset <= after {
        if let Err(e) = log.log.delete_records_before(pd.log_start_offset) {
            tracing::warn!(partition = %f.tp, error = %e, "cannot move a follower's log start");
        }
    }
    log.set_follower_high_watermark(pd.high_watermark, f.epoch);
    Ok(after > before)
}

/// The leader says our log parts from its own after `leader_end` (the end
/// of its epoch `leader_epoch`, the largest it has at most our latest):
/// cut where both logs still agree, as Kafka's follower does (KIP-279).
/// When we have that epoch too, both have it up to the smaller of the two
/// ends; when we do not, our records up to the end of our largest epoch
/// before it are checked in the next round. `Ok(true)`: fetch again now.
fn truncate_diverged(
    f: &Followed,
    leader_epoch: i32,
    leader_end: i64,
    next: &mut HashMap<TopicPartition, i64>,
) -> Result<bool, ()> {
    let log = &f.log;
    let leo = log.log.log_end_offset();
    let (epoch, end) = log.log.end_offset_for_epoch(leader_epoch);
    let to = if epoch < 0 || end < 0 {
        leader_end.min(leo)
    } else if epoch == leader_epoch {
        leader_end.min(end)
    } else {
        end.min(leo)
    };
    next.remove(&f.tp);
    match log.truncate_diverged(to, f.epoch) {
        Ok(cut) => {
            if cut {
                tracing::info!(partition = %f.tp, leader_epoch, leader_end, offset = to, log_end_offset = log.log.log_end_offset(), "follower log diverged from the leader's; truncated");
            }
            Ok(true)
        }
        Err(e) => {
            tracing::error!(partition = %f.tp, error = %e, "cannot truncate a follower's diverged log");
            Err(())
        }
    }
}
