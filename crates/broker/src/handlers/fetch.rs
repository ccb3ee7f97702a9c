//! Fetch: long-polling reads of raw batches, with incremental fetch sessions
//! (KIP-227).
//!
//! A fetch waits up to `max_wait_ms` until `min_bytes` are available. It is
//! woken by appends (a watch channel bumped by Produce), never by polling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use parking_lot::Mutex;
use strom_storage::StorageError;
use tokio::sync::Notify;
use uuid::Uuid;

use super::s;
use crate::broker::Broker;
use crate::metadata::{LeaderEpoch, NodeId};
use crate::partition::Partition;
use crate::replication;

/// Most sessions kept (Kafka's `max.incremental.fetch.session.cache.slots`).
const MAX_SESSIONS: usize = 1000;

/// What a session remembers about one partition.
#[derive(Debug, Clone)]
struct SessionPartition {
    topic_id: Uuid,
    /// The leader epoch the client believes current (-1: unknown).
    epoch: i32,
    /// The epoch of the last batch the client has (Fetch v12+; -1: none).
    last_fetched_epoch: i32,
    fetch_offset: i64,
    max_bytes: i32,
    /// (high watermark, log start offset) last sent; `None` before the first response.
    last_sent: Option<(i64, i64)>,
}

type Key = (String, i32);

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: Vec<(Key, SessionPartition)>,
    last_used: Instant,
}

/// The broker's fetch sessions.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: Mutex<HashMap<i32, Session>>,
    next_id: AtomicI32,
}

impl FetchSessions {
    fn new_id(&self) -> i32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id > 0 {
                return id;
            }
        }
    }

    fn insert(&self, partitions: Vec<(Key, SessionPartition)>, now: Instant) -> i32 {
        let id = self.new_id();
        let mut g = self.sessions.lock();
        if g.len() >= MAX_SESSIONS {
            if let Some(oldest) = g.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k) {
                g.remove(&oldest);
            }
        }
        g.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: now,
            },
        );
        id
    }
}

/// One partition to read in this round.
struct Want {
    key: Key,
    topic_id: Uuid,
    epoch: i32,
    last_fetched_epoch: i32,
    fetch_offset: i64,
    max_bytes: i32,
    last_sent: Option<(i64, i64)>,
}

impl Want {
    fn new(key: Key, p: &SessionPartition, last_sent: Option<(i64, i64)>) -> Want {
        Want {
            key,
            topic_id: p.topic_id,
            epoch: p.epoch,
            last_fetched_epoch: p.last_fetched_epoch,
            fetch_offset: p.fetch_offset,
            max_bytes: p.max_bytes,
            last_sent,
        }
    }
}

fn partition_error(index: i32, e: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(e.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}

/// Reads every wanted partition once, within `max_bytes` in all (the
/// request's, capped by the broker's `fetch.max.bytes`). Returns the
/// partitions to send and the bytes of records gathered. A follower's
/// fetch (`replica`) reads up to the log end, not the high watermark, and
/// tells the leader how far that follower has got.
#[allow(clippy::too_many_arguments)]
fn gather(
    broker: &Broker,
    version: i16,
    replica: Option<NodeId>,
    wants: &[Want],
    max_bytes: i32,
    incremental: bool,
    read_committed: bool,
    waiter: &Arc<Notify>,
) -> (Vec<(Key, Uuid, PartitionData)>, usize, bool) {
    let mut out = Vec::new();
    let mut budget = max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut error = false;
    let mut first = true;
    // Only a follower's fetch is throttled, and only with a rate set.
    let limit = match replica {
        Some(_) => broker
            .config
            .get_i64("leader.replication.throttled.rate", i64::MAX),
        None => i64::MAX,
    };
    let now = broker.clock().wall_ms().max(0) as u64;
    for w in wants {
        let part = if w.key.0.is_empty() {
            Err(ResponseError::UnknownTopicId)
        } else {
            broker
                .replicas
                .leader_at(&w.key.0, w.key.1, LeaderEpoch(w.epoch))
                .map_err(|e| e.code())
        };
        let (p, throttled) = match part {
            Ok(led) => {
                // Before reading: an append after the read wakes this fetch.
                led.log.waiters.register(waiter);
                match diverging(&led.log, w) {
                    Ok(None) => {}
                    Ok(Some((epoch, end_offset))) => {
                        // No records, and the follower's offset means
                        // nothing here until it has cut its log.
                        let pd = PartitionData::default()
                            .with_partition_index(w.key.1)
                            .with_high_watermark(led.log.high_watermark())
                            .with_last_stable_offset(led.log.last_stable_offset())
                            .with_log_start_offset(led.log.log.log_start_offset())
                            .with_diverging_epoch(
                                EpochEndOffset::default()
                                    .with_epoch(epoch)
                                    .with_end_offset(end_offset),
                            )
                            .with_records(Some(Bytes::new()));
                        out.push((w.key.clone(), w.topic_id, pd));
                        error = true;
                        continue;
                    }
                    Err(e) => {
                        out.push((w.key.clone(), w.topic_id, partition_error(w.key.1, e)));
                        error = true;
                        continue;
                    }
                }
                if let Some(node) = replica {
                    if w.fetch_offset <= led.log.log.log_end_offset() {
                        let effects = led.log.on_follower_fetch(node, w.fetch_offset);
                        if let Some(isr) = effects.propose_isr {
                            replication::propose_isr(
                                broker.topics.clone(),
                                led.log.clone(),
                                led.topic.id,
                                led.epoch,
                                isr,
                            );
                        }
                    }
                }
                let throttled = limit != i64::MAX
                    && replica.is_some_and(|node| {
                        !led.log.in_isr(node) && leader_throttles(broker, &led.topic.name, w.key.1)
                    });
                (led.log, throttled)
            }
            Err(e) => {
                out.push((w.key.clone(), w.topic_id, partition_error(w.key.1, e)));
                error = true;
                continue;
            }
        };
        let hw = p.high_watermark();
        let lso = p.log.log_start_offset();
        let stable = p.last_stable_offset().min(hw);
        // Followers copy the whole log; read_committed consumers see
        // nothing past the last stable offset, others nothing past the
        // high watermark.
        let end = if replica.is_some() {
            p.log.log_end_offset()
        } else {
            hw
        };
        let upper = if replica.is_some() {
            end
        } else if read_committed {
            stable
        } else {
            hw
        };
        let mut pd = PartitionData::default()
            .with_partition_index(w.key.1)
            .with_high_watermark(hw)
            .with_last_stable_offset(stable)
            .with_log_start_offset(if version >= 5 { lso } else { -1 });
        let mut records = Bytes::new();
        let held = throttled && broker.leader_throttle.exceeds(limit, now);
        if w.fetch_offset != upper && w.fetch_offset <= end && (first || budget > 0) && !held {
            // The first partition with data gets at least one whole batch
            // even past the budget, as Kafka does (minOneMessage).
            let limit = (w.max_bytes.max(0) as usize).min(budget);
            match p.log.read(w.fetch_offset, limit.max(1), Some(upper)) {
                Ok(r) => records = r.records,
                Err(StorageError::OffsetOutOfRange { .. }) => {
                    pd = pd.with_error_code(ResponseError::OffsetOutOfRange.code());
                    error = true;
                }
                Err(e) => {
                    tracing::error!(topic = %w.key.0, partition = w.key.1, error = %e, "fetch read failed");
                    pd = pd.with_error_code(ResponseError::KafkaStorageError.code());
                    error = true;
                }
            }
        } else if w.fetch_offset > end || w.fetch_offset < lso {
            pd = pd.with_error_code(ResponseError::OffsetOutOfRange.code());
            error = true;
        }
        if read_committed {
            let aborted = if records.is_empty() {
                Vec::new()
            } else {
                p.aborted_between(w.fetch_offset, upper - 1)
                    .into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            };
            pd = pd.with_aborted_transactions(Some(aborted));
        }
        if !records.is_empty() {
            first = false;
            budget = budget.saturating_sub(records.len());
            if throttled {
                broker.leader_throttle.record(records.len() as u64, now);
            }
        }
        total += records.len();
        let changed = pd.error_code != 0 || !records.is_empty() || w.last_sent != Some((hw, lso));
        if !incremental || changed {
            out.push((w.key.clone(), w.topic_id, pd.with_records(Some(records))));
        }
    }
    (out, total, error)
}

/// Whether `topic` names partition `index` on this broker in
/// `leader.replication.throttled.replicas`.
fn leader_throttles(broker: &Broker, topic: &str, index: i32) -> bool {
    broker
        .topics
        .configs_of(topic)
        .get("leader.replication.throttled.replicas")
        .is_some_and(|v| replication::throttle::names_replica(v, index, NodeId(broker.node_id)))
}

/// Where the fetcher's log parts from this leader's, from the epoch of
/// its last batch (KIP-320, Kafka's `Partition.readRecords`): the
/// largest epoch here at most that one and where its records end, when
/// that is before the fetch offset or an older epoch. OFFSET_OUT_OF_RANGE
/// when the epoch cannot be placed or the offset is before the log start.
fn diverging(p: &Partition, w: &Want) -> Result<Option<(i32, i64)>, ResponseError> {
    if w.last_fetched_epoch < 0 {
        return Ok(None);
    }
    let (epoch, end) = p.log.end_offset_for_epoch(w.last_fetched_epoch);
    if epoch < 0 || end < 0 || w.fetch_offset < p.log.log_start_offset() {
        return Err(ResponseError::OffsetOutOfRange);
    }
    Ok((epoch < w.last_fetched_epoch || end < w.fetch_offset).then_some((epoch, end)))
}

/// The broker's `fetch.max.bytes` (Kafka's default 55 MiB).
fn broker_max_bytes(broker: &Broker) -> i32 {
    broker
        .config
        .get_i64("fetch.max.bytes", 57_671_680)
        .clamp(0, i32::MAX as i64) as i32
}

/// One entry per partition, as Kafka reads a request's partitions into an
/// ordered map: a partition named again keeps its first place and takes the
/// later fetch offset and limit.
fn dedupe(requested: Vec<(Key, SessionPartition)>) -> Vec<(Key, SessionPartition)> {
    let mut at: HashMap<Key, usize> = HashMap::with_capacity(requested.len());
    let mut out: Vec<(Key, SessionPartition)> = Vec::with_capacity(requested.len());
    for (k, p) in requested {
        match at.get(&k) {
            Some(&i) => out[i].1 = p,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, p));
            }
        }
    }
    out
}

/// Handles a Fetch request.
pub async fn handle(broker: &Broker, version: i16, req: FetchRequest) -> FetchResponse {
    let by_id = version >= 13;
    let resolve = |name: &TopicName, id: Uuid| -> String {
        if by_id {
            broker
                .topics
                .get_by_id(id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        } else {
            name.0.to_string()
        }
    };
    let topic_id_of = |name: &str| broker.topics.get(name).map(|t| t.id).unwrap_or_default();

    // A broker's follower fetch names its node id (in the body before v15).
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let replica = (replica_id >= 0).then_some(NodeId(replica_id));

    // Decide the session and the partitions to read.
    let mut session_id = 0;
    let mut incremental = false;
    let wants: Vec<Want>;
    let requested: Vec<(Key, SessionPartition)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let name = resolve(&t.topic, t.topic_id);
            let id = if by_id {
                t.topic_id
            } else {
                topic_id_of(&name)
            };
            t.partitions.iter().map(move |p| {
                (
                    (name.clone(), p.partition),
                    SessionPartition {
                        topic_id: id,
                        epoch: p.current_leader_epoch,
                        last_fetched_epoch: if version >= 12 {
                            p.last_fetched_epoch
                        } else {
                            -1
                        },
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes,
                        last_sent: None,
                    },
                )
            })
        })
        .collect();
    let requested = dedupe(requested);
    match (req.session_id, req.session_epoch) {
        (id, -1) => {
            if id != 0 {
                broker.fetch_sessions.sessions.lock().remove(&id);
            }
            wants = requested
                .into_iter()
                .map(|(k, p)| Want::new(k, &p, None))
                .collect();
        }
        (_, 0) => {
            wants = requested
                .iter()
                .map(|(k, p)| Want::new(k.clone(), p, None))
                .collect();
            session_id = broker
                .fetch_sessions
                .insert(requested, broker.clock().now());
        }
        (id, epoch) => {
            let mut g = broker.fetch_sessions.sessions.lock();
            let Some(sess) = g.get_mut(&id) else {
                return FetchResponse::default()
                    .with_error_code(ResponseError::FetchSessionIdNotFound.code());
            };
            if sess.next_epoch != epoch {
                return FetchResponse::default()
                    .with_error_code(ResponseError::InvalidFetchSessionEpoch.code());
            }
            for (k, p) in requested {
                match sess.partitions.iter_mut().find(|(sk, _)| *sk == k) {
                    Some((_, sp)) => {
                        sp.fetch_offset = p.fetch_offset;
                        sp.epoch = p.epoch;
                        sp.last_fetched_epoch = p.last_fetched_epoch;
                        sp.max_bytes = p.max_bytes;
                    }
                    None => sess.partitions.push((k, p)),
                }
            }
            for f in &req.forgotten_topics_data {
                let name = resolve(&f.topic, f.topic_id);
                sess.partitions
                    .retain(|((t, p), _)| !(t == &name && f.partitions.contains(p)));
            }
            sess.last_used = broker.clock().now();
            session_id = id;
            incremental = true;
            wants = sess
                .partitions
                .iter()
                .map(|(k, p)| Want::new(k.clone(), p, p.last_sent))
                .collect();
        }
    }

    // Kafka bounds a response by the broker's fetch.max.bytes too.
    let max_bytes = broker_max_bytes(broker).min(req.max_bytes.max(0));

    // Long poll: re-gather after each append until min_bytes or the deadline.
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let (parts, _) = loop {
        let waiter = Arc::new(Notify::new());
        let (parts, total, error) = gather(
            broker,
            version,
            replica,
            &wants,
            max_bytes,
            incremental,
            req.isolation_level == 1,
            &waiter,
        );
        if error || total >= req.min_bytes.max(0) as usize || Instant::now() >= deadline {
            break (parts, total);
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    };

    // Remember what the session was told.
    if session_id != 0 {
        let mut g = broker.fetch_sessions.sessions.lock();
        if let Some(sess) = g.get_mut(&session_id) {
            sess.next_epoch = if incremental {
                req.session_epoch.wrapping_add(1).max(1)
            } else {
                1
            };
            for (k, _, pd) in &parts {
                if let Some((_, sp)) = sess.partitions.iter_mut().find(|(sk, _)| sk == k) {
                    sp.last_sent = Some((pd.high_watermark, pd.log_start_offset));
                }
            }
        }
    }

    // Group partitions by topic, in request order.
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for ((name, _), id, pd) in parts {
        match topics.last_mut() {
            Some(t) if (by_id && t.topic_id == id) || (!by_id && t.topic.0.as_str() == name) => {
                t.partitions.push(pd)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(s(if by_id { String::new() } else { name })))
                    .with_topic_id(if by_id { id } else { Uuid::nil() })
                    .with_partitions(vec![pd]),
            ),
        }
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics)
}
