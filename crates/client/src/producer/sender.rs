//! The producer's background task: closes batches (full, lingered,
//! flushed), numbers them for idempotence, sends them to their leaders with
//! up to `max.in.flight.requests.per.connection` in flight per partition,
//! and settles each record's future. Failed batches are retried with the
//! same bytes and sequence (so the broker can drop duplicates), in sequence
//! order, until `delivery.timeout.ms`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::mpsc;

use super::{request, txn, Accumulator, Inner, Open, PartitionQueue, Sealed};
use crate::error::ClientError;

type TopicPartition = (String, i32);

/// How one partition's batch came back.
#[derive(Debug)]
enum Outcome {
    Ok { base_offset: i64, append_time: i64 },
    Retry(String),
    Fail(ClientError),
}

impl Clone for Outcome {
    fn clone(&self) -> Self {
        match self {
            Outcome::Ok {
                base_offset,
                append_time,
            } => Outcome::Ok {
                base_offset: *base_offset,
                append_time: *append_time,
            },
            Outcome::Retry(s) => Outcome::Retry(s.clone()),
            Outcome::Fail(e) => Outcome::Fail(clone_error(e)),
        }
    }
}

struct Completion {
    batches: Vec<(TopicPartition, Sealed)>,
    outcomes: HashMap<TopicPartition, Outcome>,
}

impl Completion {
    /// Every batch of `batches` came back the same way.
    fn all(batches: Vec<(TopicPartition, Sealed)>, outcome: Outcome) -> Completion {
        let outcomes = batches
            .iter()
            .map(|(tp, _)| (tp.clone(), outcome.clone()))
            .collect();
        Completion { batches, outcomes }
    }
}

/// Closes an open batch: numbers it for idempotence and writes its header.
pub(super) fn seal(
    inner: &Inner,
    producer: Option<(i64, i16)>,
    transactional: bool,
    q: &mut PartitionQueue,
    open: Open,
) -> Sealed {
    let n = open.writer.count();
    let (mut pid, mut epoch, mut sequence) = (-1, -1, -1);
    if let Some((p, e)) = producer {
        (pid, epoch, sequence) = (p, e, q.next_sequence);
        q.next_sequence = if q.next_sequence > i32::MAX - n {
            n - (i32::MAX - q.next_sequence) - 1
        } else {
            q.next_sequence + n
        };
    }
    let mut attributes = inner.config.compression.attribute_bits();
    if transactional {
        attributes |= strom_record::ATTR_TRANSACTIONAL;
    }
    Sealed {
        records: u64::try_from(n).unwrap_or(0),
        bytes: Bytes::from(open.writer.finish(attributes, pid, epoch, sequence)),
        done: open.done,
        size: open.bytes,
        sequence,
        created: open.created,
        attempts: 0,
        // Sendable at once. Not `Instant::now()`: the sender loop compares
        // with the time it read before sealing, and a batch sealed "after"
        // that would wait for a timer (rounded up to the next millisecond).
        not_before: open.created,
    }
}

/// Closes batches that are due; returns the earliest time another one will be.
fn seal_due(inner: &Inner, acc: &mut Accumulator, now: Instant) -> Option<Instant> {
    let linger = inner.config.linger;
    let force = acc.flushing > 0 || acc.closed;
    let (producer, transactional) = (acc.producer, acc.transactional);
    let mut next = None::<Instant>;
    for q in acc.topics.queues_mut() {
        let due = match &q.open {
            Some(o) => force || o.bytes >= inner.config.batch_size || o.created + linger <= now,
            None => false,
        };
        if due {
            if let Some(open) = q.open.take() {
                let s = seal(inner, producer, transactional, q, open);
                q.sealed.push_back(s);
            }
        } else if let Some(o) = &q.open {
            let at = o.created + linger;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(s) = q.sealed.front().filter(|s| s.not_before > now) {
            next = Some(next.map_or(s.not_before, |n| n.min(s.not_before)));
        }
    }
    next
}

/// Takes the batches that may be sent now (at most one per partition, up
/// to `max.in.flight.requests.per.connection` per partition in flight);
/// fails those past the delivery timeout.
fn take_sendable(
    inner: &Inner,
    acc: &mut Accumulator,
    now: Instant,
) -> Vec<(TopicPartition, Sealed)> {
    let max = inner.config.max_in_flight.max(1);
    let mut out = Vec::new();
    let mut freed = 0;
    for q in acc.topics.queues_mut() {
        while q.in_flight < max {
            let Some(front) = q.sealed.front() else { break };
            if front.not_before > now {
                break;
            }
            let Some(s) = q.sealed.pop_front() else { break };
            if now.duration_since(s.created) > inner.config.delivery_timeout {
                freed += s.size;
                fail(
                    inner,
                    s,
                    ClientError::Timeout(format!(
                        "delivery to {}-{} (delivery.timeout.ms)",
                        q.name, q.partition
                    )),
                );
                continue;
            }
            q.in_flight += 1;
            out.push((q.topic_partition(), s));
            // One batch per partition per request (Kafka refuses a partition
            // twice in one Produce); the next goes in the next request,
            // pipelined on the same connection.
            break;
        }
    }
    acc.buffered = acc.buffered.saturating_sub(freed);
    out
}

fn fail(inner: &Inner, s: Sealed, e: ClientError) {
    inner.deliveries.failed(s.records, &e);
    s.done.complete(Err(e));
}

/// A copy of an error for each party that hears of it.
pub(super) fn clone_error(e: &ClientError) -> ClientError {
    match e {
        ClientError::Kafka { context, error } => ClientError::Kafka {
            context: context.clone(),
            error: *error,
        },
        ClientError::Timeout(s) => ClientError::Timeout(s.clone()),
        other => ClientError::Protocol(other.to_string()),
    }
}

/// Runs until the producer is closed and everything is settled.
pub(super) async fn run(inner: Arc<Inner>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
    loop {
        let now = Instant::now();
        let wake = inner.wake.notified();
        let (batches, next, finished) = {
            let mut acc = inner.acc();
            let next = seal_due(&inner, &mut acc, now);
            let batches = take_sendable(&inner, &mut acc, now);
            (batches, next, acc.closed && acc.idle())
        };
        if finished {
            inner.progress.notify_waiters();
            return;
        }
        if !batches.is_empty() {
            dispatch(&inner, batches, &done_tx).await;
            continue;
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wake => {}
            Some(c) = done_rx.recv() => settle(&inner, c).await,
            _ = sleep => {}
        }
        while let Ok(c) = done_rx.try_recv() {
            settle(&inner, c).await;
        }
    }
}

/// Groups batches by leader and sends one Produce request per broker.
async fn dispatch(
    inner: &Arc<Inner>,
    batches: Vec<(TopicPartition, Sealed)>,
    done: &mpsc::UnboundedSender<Completion>,
) {
    let mut by_node: BTreeMap<i32, Vec<(TopicPartition, Sealed)>> = BTreeMap::new();
    let mut unroutable = Vec::new();
    for (tp, s) in batches {
        match inner.cluster.topic(&tp.0, false).await {
            Ok(t) => match t.leaders.get(tp.1 as usize).copied().filter(|l| *l >= 0) {
                Some(leader) => by_node.entry(leader).or_default().push((tp, s)),
                None => unroutable.push((tp, s, "no leader".to_string())),
            },
            Err(e) => unroutable.push((tp, s, e.to_string())),
        }
    }
    if !unroutable.is_empty() {
        let mut outcomes = HashMap::new();
        let mut list = Vec::new();
        for (tp, s, why) in unroutable {
            outcomes.insert(tp.clone(), Outcome::Retry(why));
            list.push((tp, s));
        }
        let _ = done.send(Completion {
            batches: list,
            outcomes,
        });
    }
    for (node, list) in by_node {
        let list = match txn::add_partitions(inner, list).await {
            Ok(list) => list,
            Err((list, e)) => {
                let _ = done.send(Completion::all(list, Outcome::Fail(e)));
                continue;
            }
        };
        send_to(inner, node, list, done).await;
    }
}

async fn send_to(
    inner: &Arc<Inner>,
    node: i32,
    list: Vec<(TopicPartition, Sealed)>,
    done: &mpsc::UnboundedSender<Completion>,
) {
    let retry_all = |list: Vec<(TopicPartition, Sealed)>, why: String| {
        let _ = done.send(Completion::all(list, Outcome::Retry(why)));
    };
    let conn = match inner.cluster.node(node).await {
        Ok(c) => c,
        Err(e) => return retry_all(list, e.to_string()),
    };
    let version = match conn.version(ApiKey::Produce) {
        Ok(v) => v,
        Err(e) => {
            let _ = done.send(Completion::all(list, Outcome::Fail(e)));
            return;
        }
    };
    let mut topics: BTreeMap<&str, Vec<produce_request::PartitionProduceData>> = BTreeMap::new();
    for ((t, p), s) in &list {
        topics.entry(t).or_default().push(
            produce_request::PartitionProduceData::default()
                .with_index(*p)
                .with_records(Some(s.bytes.clone())),
        );
    }
    let req = ProduceRequest::default()
        .with_acks(inner.config.acks)
        .with_timeout_ms(
            inner
                .config
                .request_timeout
                .as_millis()
                .min(i32::MAX as u128) as i32,
        )
        .with_transactional_id(
            inner
                .config
                .transactional_id
                .clone()
                .map(|t| TransactionalId(StrBytes::from_string(t))),
        )
        .with_topic_data(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    produce_request::TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partition_data(parts)
                })
                .collect(),
        );
    if inner.config.acks == 0 {
        let outcome = match conn.send_no_response(ApiKey::Produce, version, &req).await {
            Ok(()) => Outcome::Ok {
                base_offset: -1,
                append_time: -1,
            },
            Err(e) => Outcome::Retry(e.to_string()),
        };
        let _ = done.send(Completion::all(list, outcome));
        return;
    }
    // Batches go to the socket as they are: a frame of buffers, not a copy.
    let mut by_topic: BTreeMap<&str, Vec<(i32, Bytes)>> = BTreeMap::new();
    for ((t, p), s) in &list {
        by_topic.entry(t).or_default().push((*p, s.bytes.clone()));
    }
    let parts = request::Produce {
        transactional_id: inner.config.transactional_id.as_deref(),
        acks: req.acks,
        timeout_ms: req.timeout_ms,
        topics: by_topic.into_iter().collect(),
    };
    let client_id = inner.config.client_id.clone();
    let sent = conn
        .send_parts(
            ApiKey::Produce,
            version,
            |id| request::frame(version, id, &client_id, &parts),
            || req,
        )
        .await;
    let pending = match sent {
        Ok(p) => p,
        Err(e) => return retry_all(list, e.to_string()),
    };
    let done = done.clone();
    tokio::spawn(async move {
        let outcomes = match conn.wait::<ProduceResponse>(pending).await {
            Err(e) => list
                .iter()
                .map(|(tp, _)| (tp.clone(), Outcome::Retry(e.to_string())))
                .collect(),
            Ok(r) => {
                let mut m = HashMap::new();
                for t in r.responses {
                    for p in t.partition_responses {
                        let tp = (t.name.0.to_string(), p.index);
                        let o = match ResponseError::try_from_code(p.error_code) {
                            None => Outcome::Ok {
                                base_offset: p.base_offset,
                                append_time: p.log_append_time_ms,
                            },
                            Some(e)
                                if e.is_retriable()
                                    || e == ResponseError::OutOfOrderSequenceNumber =>
                            {
                                Outcome::Retry(e.to_string())
                            }
                            Some(e) => Outcome::Fail(ClientError::Kafka {
                                context: format!(
                                    "producing to {}-{}{}",
                                    tp.0,
                                    tp.1,
                                    p.error_message
                                        .as_ref()
                                        .map(|m| format!(" ({m})"))
                                        .unwrap_or_default()
                                ),
                                error: e,
                            }),
                        };
                        m.insert(tp, o);
                    }
                }
                m
            }
        };
        let _ = done.send(Completion {
            batches: list,
            outcomes,
        });
    });
}

/// Settles a completed request: acknowledges, retries or fails each batch.
async fn settle(inner: &Arc<Inner>, c: Completion) {
    let mut stale_topics = Vec::new();
    {
        let mut acc = inner.acc();
        let now = Instant::now();
        for (tp, mut s) in c.batches {
            let outcome =
                c.outcomes.get(&tp).cloned().unwrap_or_else(|| {
                    Outcome::Retry("partition missing from the response".into())
                });
            let transactional = acc.transactional;
            let Some(q) = acc.topics.queue_mut(&tp.0, tp.1) else {
                continue;
            };
            q.in_flight = q.in_flight.saturating_sub(1);
            let size = s.size;
            match outcome {
                Outcome::Ok {
                    base_offset,
                    append_time,
                } => {
                    inner.deliveries.acknowledged(s.records);
                    s.done.complete(Ok((base_offset, append_time)));
                    acc.buffered = acc.buffered.saturating_sub(size);
                    acc.pool.recycle(s.bytes, inner.config.buffer_memory);
                }
                Outcome::Retry(why)
                    if s.attempts < inner.config.retries
                        && now.duration_since(s.created) < inner.config.delivery_timeout =>
                {
                    tracing::debug!(topic = %tp.0, partition = tp.1, attempt = s.attempts + 1, reason = %why, "retrying batch");
                    s.attempts += 1;
                    s.not_before = now + inner.config.retry_backoff;
                    // Keep sequence order: a retried batch goes before later ones.
                    let at = q
                        .sealed
                        .iter()
                        .position(|o| s.sequence >= 0 && o.sequence > s.sequence)
                        .unwrap_or(if s.sequence >= 0 { q.sealed.len() } else { 0 });
                    q.sealed.insert(at, s);
                    stale_topics.push(tp.0.clone());
                }
                Outcome::Retry(why) => {
                    fail(
                        inner,
                        s,
                        ClientError::Timeout(format!(
                            "delivery to {}-{} after retries: {why}",
                            tp.0, tp.1
                        )),
                    );
                    acc.buffered = acc.buffered.saturating_sub(size);
                    if transactional {
                        acc.txn_error.get_or_insert(why);
                    }
                }
                Outcome::Fail(e) => {
                    if transactional {
                        acc.txn_error.get_or_insert(e.to_string());
                    }
                    fail(inner, s, e);
                    acc.buffered = acc.buffered.saturating_sub(size);
                }
            }
        }
    }
    stale_topics.sort();
    stale_topics.dedup();
    for t in stale_topics {
        inner.cluster.invalidate(&t).await;
    }
    inner.progress.notify_waiters();
    inner.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;
    use crate::producer::{BatchDone, ProducerConfig};
    use std::time::Duration;
    use strom_record::BatchWriter;
    use tokio::sync::Notify;

    fn inner(linger_ms: &str) -> Inner {
        let mut config = ProducerConfig::new("127.0.0.1:9");
        config.set("linger.ms", linger_ms).expect("linger.ms");
        Inner {
            idempotent: false,
            deliveries: Default::default(),
            cluster: Cluster::new("127.0.0.1:9", "test", Duration::from_secs(1)).expect("cluster"),
            acc: Default::default(),
            wake: Notify::new(),
            progress: Notify::new(),
            txn: tokio::sync::Mutex::new(txn::TxnState::Uninitialized),
            config,
        }
    }

    fn open_batch(acc: &mut Accumulator, created: Instant) {
        let mut writer = BatchWriter::new(0, 1024);
        writer.append(0, None, Some(b"v"), &[]);
        acc.topics.set_partitions("t", 1, i64::MAX);
        let q = acc.topics.queue_mut("t", 0).expect("partition 0");
        q.open = Some(Open {
            writer,
            done: BatchDone::new("t".into(), 0),
            bytes: 10,
            created,
        });
    }

    /// A batch the sender seals is sendable in the same pass: it must not
    /// wait for a timer (which rounds up to the next millisecond, and once
    /// added a millisecond to every acknowledgement at low rates).
    #[test]
    fn a_batch_sealed_at_linger_zero_goes_out_in_the_same_pass() {
        let inner = inner("0");
        let mut acc = Accumulator::default();
        let now = Instant::now();
        open_batch(&mut acc, now);
        let next = seal_due(&inner, &mut acc, now);
        assert_eq!(next, None, "nothing left to wait for");
        let sent = take_sendable(&inner, &mut acc, now);
        assert_eq!(sent.len(), 1);
    }

    /// With a linger, a young batch waits until it is due, then goes.
    #[test]
    fn a_young_batch_waits_for_its_linger() {
        let inner = inner("5");
        let mut acc = Accumulator::default();
        let now = Instant::now();
        open_batch(&mut acc, now);
        assert_eq!(
            seal_due(&inner, &mut acc, now),
            Some(now + Duration::from_millis(5))
        );
        assert!(take_sendable(&inner, &mut acc, now).is_empty());
        let later = now + Duration::from_millis(5);
        assert_eq!(seal_due(&inner, &mut acc, later), None);
        assert_eq!(take_sendable(&inner, &mut acc, later).len(), 1);
    }
}
