//! The producer: records are grouped per partition into batches (closed
//! at `batch.size` or after `linger.ms`), compressed, and sent by a
//! background task, several requests in flight per broker connection.
//! Idempotence is on by default: each batch carries the producer id, epoch
//! and sequence, so the broker drops retried duplicates and refuses gaps.
//! Transactions (`transactional.id`) make a set of sends and consumed
//! offsets visible atomically.
//!
//! ```no_run
//! # async fn demo() -> Result<(), strom_client::ClientError> {
//! use strom_client::producer::{Producer, ProducerConfig, ProducerRecord};
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092")).await?;
//! let delivery = producer
//!     .send(ProducerRecord::new("meter-readings").key("meter-42").value("2310"))
//!     .await?;
//! let meta = delivery.await?; // acknowledged: partition and offset
//! println!("{}-{}@{}", meta.topic, meta.partition, meta.offset);
//! producer.close().await?;
//! # Ok(()) }
//! ```

mod config;
mod partitioner;
mod request;
mod sender;
mod txn;

use std::collections::hash_map::Entry;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use strom_record::BatchWriter;
use tokio::sync::Notify;

pub use config::ProducerConfig;
pub use partitioner::{murmur2, partition_for_key};
pub use txn::ConsumerGroupMetadata;

use crate::cluster::Cluster;
use crate::error::ClientError;

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Partition, or `None` for the partitioner's choice.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<bytes::Bytes>,
    /// Value (`None`: a tombstone). `Bytes`, so sending one payload many
    /// times shares it instead of copying it per record.
    pub value: Option<bytes::Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Timestamp (ms); `None` stamps the send time.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key and no value yet.
    pub fn new(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<bytes::Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<bytes::Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Pins the partition.
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = Some(ts);
        self
    }

    fn size(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 4)
            .sum();
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + h
            + 16
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic (shared by every record of a batch).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset (-1 with acks=0).
    pub offset: i64,
    /// The record's timestamp (the broker's append time on LogAppendTime topics).
    pub timestamp: i64,
}

/// A batch's outcome, shared by the futures of all its records: one
/// completion per batch instead of a channel per record.
#[derive(Debug)]
struct BatchDone {
    topic: Arc<str>,
    partition: i32,
    state: Mutex<DoneState>,
}

#[derive(Debug, Default)]
struct DoneState {
    /// Base offset and log append time (-1 unless LogAppendTime), or the error.
    result: Option<Result<(i64, i64), ClientError>>,
    wakers: Vec<std::task::Waker>,
}

impl BatchDone {
    fn new(topic: Arc<str>, partition: i32) -> Arc<BatchDone> {
        Arc::new(BatchDone {
            topic,
            partition,
            state: Mutex::new(DoneState::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, DoneState> {
        // Plain data set once; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles the batch and wakes every waiting record future.
    fn complete(&self, result: Result<(i64, i64), ClientError>) {
        let wakers = {
            let mut st = self.state();
            st.result.get_or_insert(result);
            std::mem::take(&mut st.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }
}

/// Resolves when the broker acknowledged the record (or it failed).
#[derive(Debug)]
pub struct DeliveryFuture {
    batch: Arc<BatchDone>,
    /// The record's place in its batch (its offset delta).
    index: i32,
    timestamp: i64,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.batch.state();
        match &st.result {
            Some(Ok((base_offset, append_time))) => Poll::Ready(Ok(RecordMetadata {
                topic: self.batch.topic.clone(),
                partition: self.batch.partition,
                offset: if *base_offset < 0 {
                    -1
                } else {
                    base_offset + i64::from(self.index)
                },
                timestamp: if *append_time >= 0 {
                    *append_time
                } else {
                    self.timestamp
                },
            })),
            Some(Err(e)) => Poll::Ready(Err(sender::clone_error(e))),
            None => {
                // Polled again by the same task: no second waker.
                if !st.wakers.last().is_some_and(|w| w.will_wake(cx.waker())) {
                    st.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// A batch being filled: records are encoded into it as they are sent.
#[derive(Debug)]
struct Open {
    writer: BatchWriter,
    done: Arc<BatchDone>,
    /// Bytes of its records (what `buffer.memory` counts).
    bytes: usize,
    created: Instant,
}

/// A batch built and numbered, ready to go (or to go again).
#[derive(Debug)]
struct Sealed {
    bytes: bytes::Bytes,
    done: Arc<BatchDone>,
    /// Bytes it holds of `buffer.memory`.
    size: usize,
    sequence: i32,
    created: Instant,
    attempts: u32,
    not_before: Instant,
}

#[derive(Debug, Default)]
struct PartitionQueue {
    /// The topic's name, shared by the batches' record metadata.
    name: Arc<str>,
    open: Option<Open>,
    sealed: VecDeque<Sealed>,
    in_flight: usize,
    next_sequence: i32,
}

/// State shared by callers and the sender task.
#[derive(Debug, Default)]
struct Accumulator {
    /// Looked up for every record: FNV, not SipHash (keys are the
    /// application's own topic names, and hashing was 5% of a 1 KiB run).
    parts: fnv::FnvHashMap<(String, i32), PartitionQueue>,
    buffered: usize,
    flushing: usize,
    closed: bool,
    /// Producer id and epoch for idempotent batches.
    producer: Option<(i64, i16)>,
    transactional: bool,
    /// Partitions added to the open transaction.
    txn_partitions: HashSet<(String, i32)>,
    /// First error that makes the open transaction abortable.
    txn_error: Option<String>,
    /// True between begin_transaction and commit/abort.
    in_txn: bool,
    sticky: partitioner::Sticky,
    /// Partition counts by topic and until when (ms since the epoch) they
    /// are trusted (saves a metadata lookup per record; refreshed after
    /// `METADATA_MAX_AGE`).
    partition_counts: fnv::FnvHashMap<String, (i32, i64)>,
    /// Buffers of acknowledged batches, reused for new ones (a fresh
    /// megabyte per batch costs page faults; see [`BATCH_POOL`]).
    pool: Vec<Vec<u8>>,
}

/// How many acknowledged batch buffers a producer keeps for reuse.
const BATCH_POOL: usize = 8;

impl Accumulator {
    /// Keeps an acknowledged batch's buffer for a later batch, when nothing
    /// else holds it and the pool has room.
    fn recycle(&mut self, bytes: bytes::Bytes) {
        if self.pool.len() < BATCH_POOL {
            if let Ok(b) = bytes.try_into_mut() {
                self.pool.push(b.into());
            }
        }
    }
}

/// How long a topic's partition count is trusted (Kafka's `metadata.max.age.ms` default).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

impl Accumulator {
    fn idle(&self) -> bool {
        self.parts
            .values()
            .all(|q| q.open.is_none() && q.sealed.is_empty() && q.in_flight == 0)
    }
}

#[derive(Debug)]
struct Inner {
    config: ProducerConfig,
    idempotent: bool,
    cluster: Cluster,
    acc: Mutex<Accumulator>,
    /// Wakes the sender (new full batch, flush, completion).
    wake: Notify,
    /// Wakes callers waiting for buffer space or for a flush to finish.
    progress: Notify,
    txn: tokio::sync::Mutex<txn::TxnState>,
}

impl Inner {
    fn acc(&self) -> MutexGuard<'_, Accumulator> {
        // A panic while holding the lock leaves consistent data (no partial updates span awaits).
        self.acc.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A Kafka producer.
#[derive(Debug)]
pub struct Producer {
    inner: Arc<Inner>,
    sender: Option<tokio::task::JoinHandle<()>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    /// Connects and, for idempotent producers, obtains a producer id.
    /// Transactional producers call [`Producer::init_transactions`] next.
    pub async fn new(config: ProducerConfig) -> Result<Producer, ClientError> {
        let idempotent = config.idempotent()?;
        let cluster = Cluster::new(
            &config.bootstrap_servers,
            &config.client_id,
            config.request_timeout,
        )?
        .with_reconnect_backoff(config.reconnect_backoff, config.reconnect_backoff_max);
        let inner = Arc::new(Inner {
            idempotent,
            cluster,
            acc: Mutex::new(Accumulator {
                transactional: config.transactional_id.is_some(),
                ..Default::default()
            }),
            wake: Notify::new(),
            progress: Notify::new(),
            txn: tokio::sync::Mutex::new(txn::TxnState::Uninitialized),
            config,
        });
        if idempotent && inner.config.transactional_id.is_none() {
            let (pid, epoch) = txn::init_producer_id(&inner, None).await?;
            inner.acc().producer = Some((pid, epoch));
        }
        let sender = tokio::spawn(sender::run(inner.clone()));
        Ok(Producer {
            inner,
            sender: Some(sender),
        })
    }

    /// True when batches carry producer ids and sequences.
    pub fn is_idempotent(&self) -> bool {
        self.inner.idempotent
    }

    /// Queues a record. The returned future resolves once the broker
    /// acknowledged it. Waits (up to `max.block.ms`) for metadata of a new
    /// topic and while `buffer.memory` is full.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let inner = &self.inner;
        // The common case, without a wake-up registration per record:
        // the partition count is known and buffer.memory has room.
        let (mut record, _) = match self.try_append(record, now_ms())? {
            Ok(f) => return Ok(f),
            Err(back) => back,
        };
        let mut deadline = None;
        loop {
            let notified = inner.progress.notified();
            let known = match self.try_append(record, now_ms())? {
                Ok(f) => return Ok(f),
                Err((back, known)) => {
                    record = back;
                    known
                }
            };
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + inner.config.max_block);
            if !known {
                self.lookup_partitions(&record.topic, deadline).await?;
                continue;
            }
            // buffer.memory is full: wait for acknowledgements to free some.
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return Err(ClientError::Timeout(
                    "waiting for buffer.memory to free up".into(),
                ));
            }
        }
    }

    /// Appends when the topic's partition count is cached and there is room;
    /// gives the record back otherwise, saying whether the count was known
    /// (so the wait is for `buffer.memory`, not for metadata).
    #[allow(clippy::type_complexity)]
    fn try_append(
        &self,
        record: ProducerRecord,
        now: i64,
    ) -> Result<Result<DeliveryFuture, (ProducerRecord, bool)>, ClientError> {
        let mut acc = self.inner.acc();
        let cached = acc
            .partition_counts
            .get(&record.topic)
            .filter(|(_, expires)| now < *expires)
            .map(|(n, _)| *n);
        match cached {
            Some(n) => Ok(self
                .append(&mut acc, record, n, now)?
                .map_err(|r| (r, true))),
            None => Ok(Err((record, false))),
        }
    }

    /// Looks up (and caches) a topic's partition count, creating the topic
    /// if the broker auto-creates topics.
    async fn lookup_partitions(&self, topic: &str, deadline: Instant) -> Result<(), ClientError> {
        let inner = &self.inner;
        let info = tokio::time::timeout_at(deadline.into(), inner.cluster.topic(topic, true))
            .await
            .map_err(|_| ClientError::Timeout(format!("metadata for topic {topic}")))??;
        let n = info.leaders.len() as i32;
        if n == 0 {
            return Err(ClientError::Config(format!(
                "topic {topic} has no partitions"
            )));
        }
        let expires = now_ms() + METADATA_MAX_AGE.as_millis() as i64;
        inner
            .acc()
            .partition_counts
            .insert(topic.to_string(), (n, expires));
        Ok(())
    }

    /// Encodes the record into its partition's open batch, or gives it back
    /// when `buffer.memory` is full.
    fn append(
        &self,
        acc: &mut Accumulator,
        record: ProducerRecord,
        partitions: i32,
        now: i64,
    ) -> Result<Result<DeliveryFuture, ProducerRecord>, ClientError> {
        let inner = &self.inner;
        if acc.closed {
            return Err(ClientError::Protocol("the producer is closed".into()));
        }
        if acc.transactional {
            txn::check_can_send(acc)?;
        }
        let size = record.size();
        if acc.buffered + size > inner.config.buffer_memory && acc.buffered > 0 {
            return Ok(Err(record));
        }
        let partition = match record.partition {
            Some(p) if p < 0 || p >= partitions => {
                return Err(ClientError::Kafka {
                    context: format!(
                        "partition {p} of topic {} ({partitions} partitions)",
                        record.topic
                    ),
                    error: kafka_protocol::error::ResponseError::UnknownTopicOrPartition,
                })
            }
            Some(p) => p,
            None => match record.key.as_deref() {
                Some(k) if !inner.config.partitioner_ignore_keys => {
                    partition_for_key(k, partitions)
                }
                _ => {
                    let batch = inner.config.batch_size;
                    acc.sticky.next(&record.topic, partitions, size, batch)
                }
            },
        };
        let timestamp = record.timestamp.unwrap_or(now);
        let (producer, transactional) = (acc.producer, acc.transactional);
        let ProducerRecord {
            topic,
            key,
            value,
            headers,
            ..
        } = record;
        let q = match acc.parts.entry((topic, partition)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let name = Arc::from(e.key().0.as_str());
                e.insert(PartitionQueue {
                    name,
                    ..Default::default()
                })
            }
        };
        // A batch never grows past batch.size: close it and start another.
        if q.open.as_ref().is_some_and(|o| {
            o.writer.count() > 0 && o.writer.size() + size > inner.config.batch_size
        }) {
            if let Some(full) = q.open.take() {
                let sealed = sender::seal(inner, producer, transactional, q, full);
                q.sealed.push_back(sealed);
                inner.wake.notify_one();
            }
        }
        let first = q.open.is_none();
        let pool = &mut acc.pool;
        let open = q.open.get_or_insert_with(|| Open {
            writer: BatchWriter::with_buffer(
                pool.pop().unwrap_or_default(),
                timestamp,
                inner.config.batch_size.min(1 << 20),
            ),
            done: BatchDone::new(q.name.clone(), partition),
            bytes: 0,
            created: Instant::now(),
        });
        let index = open.writer.count();
        let took = open
            .writer
            .append(timestamp, key.as_deref(), value.as_deref(), &headers);
        let future = DeliveryFuture {
            batch: open.done.clone(),
            index,
            timestamp,
        };
        open.bytes += took;
        let full = open.writer.size() >= inner.config.batch_size;
        acc.buffered += took;
        if full || first {
            inner.wake.notify_one();
        }
        Ok(Ok(future))
    }

    /// Sends everything queued now and waits until all of it is acknowledged or failed.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        inner.acc().flushing += 1;
        inner.wake.notify_one();
        let result = loop {
            let notified = inner.progress.notified();
            if inner.acc().idle() {
                break Ok(());
            }
            if self.sender.as_ref().is_none_or(|s| s.is_finished()) {
                break Err(ClientError::Protocol(
                    "the producer's sender stopped".into(),
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        };
        inner.acc().flushing -= 1;
        result
    }

    /// Flushes and stops the sender.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let r = self.flush().await;
        self.inner.acc().closed = true;
        self.inner.wake.notify_one();
        if let Some(s) = self.sender.take() {
            let _ = s.await;
        }
        r
    }

    /// Registers the transactional id with its coordinator, fencing earlier
    /// producers of the same id and aborting their open transaction.
    pub async fn init_transactions(&self) -> Result<(), ClientError> {
        txn::init_transactions(&self.inner).await
    }

    /// Starts a transaction: sends until the commit or abort belong to it.
    pub async fn begin_transaction(&self) -> Result<(), ClientError> {
        txn::begin(&self.inner).await
    }

    /// Adds consumed offsets to the transaction: they are committed for the
    /// consumer group exactly when the transaction commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(String, i32, i64)],
        group: &ConsumerGroupMetadata,
    ) -> Result<(), ClientError> {
        txn::send_offsets(&self.inner, offsets, group).await
    }

    /// Flushes, then commits the transaction.
    pub async fn commit_transaction(&self) -> Result<(), ClientError> {
        self.flush().await?;
        txn::end(&self.inner, true).await
    }

    /// Flushes, then aborts the transaction: its records stay invisible to
    /// read_committed consumers.
    pub async fn abort_transaction(&self) -> Result<(), ClientError> {
        self.flush().await?;
        txn::end(&self.inner, false).await
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.inner.acc().closed = true;
        self.inner.wake.notify_one();
    }
}
