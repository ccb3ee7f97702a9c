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
mod topics;
mod txn;

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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
    /// Topic. Shared, not owned: a producer sending a million records a
    /// second to one topic clones a pointer per record, not the name.
    pub topic: Arc<str>,
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
    pub fn new(topic: impl Into<Arc<str>>) -> Self {
        // Every field named: `..Default::default()` would make (and drop)
        // a default topic per record.
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
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
    /// Base offset and log append time (-1 unless LogAppendTime), or the
    /// error. Set once; a settled record's poll reads it without a lock
    /// (an application polling a million futures a second pays per poll).
    result: OnceLock<Result<(i64, i64), ClientError>>,
    /// Tasks waiting for the result.
    wakers: Mutex<Vec<std::task::Waker>>,
}

impl BatchDone {
    fn new(topic: Arc<str>, partition: i32) -> Arc<BatchDone> {
        Arc::new(BatchDone {
            topic,
            partition,
            result: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        })
    }

    fn wakers(&self) -> MutexGuard<'_, Vec<std::task::Waker>> {
        // A list of wakers; a panic elsewhere cannot leave it half-written.
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles the batch and wakes every waiting record future.
    fn complete(&self, result: Result<(i64, i64), ClientError>) {
        // Set before taking the wakers: a poll that registers its waker
        // under the lock re-reads the result there, so it either sees the
        // result or has its waker taken here.
        let _ = self.result.set(result);
        let wakers = std::mem::take(&mut *self.wakers());
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

impl DeliveryFuture {
    fn outcome(
        &self,
        result: &Result<(i64, i64), ClientError>,
    ) -> Result<RecordMetadata, ClientError> {
        match result {
            Ok((base_offset, append_time)) => Ok(RecordMetadata {
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
            }),
            Err(e) => Err(sender::clone_error(e)),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.batch.result.get() {
            return Poll::Ready(self.outcome(r));
        }
        let mut wakers = self.batch.wakers();
        if let Some(r) = self.batch.result.get() {
            return Poll::Ready(self.outcome(r));
        }
        // Polled again by the same task: no second waker.
        if !wakers.last().is_some_and(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
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
    /// Records in it (what the delivery counts add when it settles).
    records: u64,
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
    partition: i32,
    open: Option<Open>,
    sealed: VecDeque<Sealed>,
    in_flight: usize,
    next_sequence: i32,
}

impl PartitionQueue {
    /// The topic and partition, as the sender's requests name them.
    fn topic_partition(&self) -> (String, i32) {
        (self.name.to_string(), self.partition)
    }
}

/// State shared by callers and the sender task.
#[derive(Debug, Default)]
struct Accumulator {
    /// Per topic: partition count, sticky partition, partition queues.
    topics: topics::Topics,
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
    /// Buffers of acknowledged batches, reused for new ones.
    pool: BufferPool,
}

/// Buffers of acknowledged batches, reused for new ones: a fresh megabyte
/// per batch costs page faults and zeroing (10% of a 1 KiB run's client
/// CPU when only 8 were kept while 32 were in use).
#[derive(Debug, Default)]
struct BufferPool {
    free: Vec<Vec<u8>>,
    /// Capacity of the buffers in `free`.
    bytes: usize,
}

impl BufferPool {
    /// Keeps an acknowledged batch's buffer for a later batch when nothing
    /// else holds it and the kept buffers stay within `limit`
    /// (`buffer.memory`). A fresh buffer is only made when none is kept, so
    /// kept plus in-use buffers never exceed the most ever in use at once:
    /// about `buffer.memory`, as with Kafka's `BufferPool`.
    fn recycle(&mut self, batch: bytes::Bytes, limit: usize) {
        if let Ok(b) = batch.try_into_mut() {
            let b: Vec<u8> = b.into();
            if self.bytes + b.capacity() <= limit {
                self.bytes += b.capacity();
                self.free.push(b);
            }
        }
    }

    /// A buffer for a new batch: a kept one if there is one.
    fn take(&mut self) -> Vec<u8> {
        let b = self.free.pop().unwrap_or_default();
        self.bytes -= b.capacity();
        b
    }
}

/// How long a topic's partition count is trusted (Kafka's `metadata.max.age.ms` default).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

impl Accumulator {
    fn idle(&self) -> bool {
        self.topics
            .queues()
            .all(|q| q.open.is_none() && q.sealed.is_empty() && q.in_flight == 0)
    }
}

/// How many of a producer's records have settled, and how: the totals
/// behind Kafka's `record-error-total` metric.
///
/// Why: a caller that sends millions of records and only needs to know
/// that none failed (a benchmark, a bulk load) can drop the
/// [`DeliveryFuture`]s and check these once, after [`Producer::flush`],
/// instead of keeping and polling a future per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Records the broker acknowledged.
    pub acknowledged: u64,
    /// Records that failed for good (retries and `delivery.timeout.ms` spent,
    /// or an error that is not retried).
    pub failed: u64,
    /// The first failure's error, when there was one.
    pub first_error: Option<String>,
}

/// The producer's running [`DeliveryCounts`], added to once per batch.
#[derive(Debug, Default)]
struct Deliveries {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    first_error: OnceLock<String>,
}

impl Deliveries {
    fn acknowledged(&self, records: u64) {
        self.acknowledged.fetch_add(records, Ordering::Relaxed);
    }

    fn failed(&self, records: u64, e: &ClientError) {
        self.first_error.get_or_init(|| e.to_string());
        self.failed.fetch_add(records, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Inner {
    config: ProducerConfig,
    deliveries: Deliveries,
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

/// Wall-clock milliseconds since the Unix epoch: each record's timestamp.
///
/// Read straight from `clock_gettime` on Linux: `SystemTime`'s checked
/// subtraction from the epoch and 128-bit millisecond division were ≈ 50
/// instructions of the ≈ 1,500 a record costs the caller (callgrind).
fn now_ms() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always
        // exists, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
    #[cfg(not(target_os = "linux"))]
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
            deliveries: Deliveries::default(),
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

    /// How many records were acknowledged and how many failed so far; after
    /// [`Producer::flush`], every record sent before it is counted.
    pub fn delivery_counts(&self) -> DeliveryCounts {
        let d = &self.inner.deliveries;
        DeliveryCounts {
            acknowledged: d.acknowledged.load(Ordering::Relaxed),
            failed: d.failed.load(Ordering::Relaxed),
            first_error: d.first_error.get().cloned(),
        }
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
        // the partition count is known and buffer.memory has room. The
        // record is read in place, never moved: it is as large as a cache
        // line and a move per step was measurable at a million a second.
        if let Ok(f) = self.try_append(&record, now_ms())? {
            return Ok(f);
        }
        let mut deadline = None;
        loop {
            let notified = inner.progress.notified();
            let known = match self.try_append(&record, now_ms())? {
                Ok(f) => return Ok(f),
                Err(known) => known,
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
    /// otherwise says whether the count was known (so the wait is for
    /// `buffer.memory`, not for metadata).
    fn try_append(
        &self,
        record: &ProducerRecord,
        now: i64,
    ) -> Result<Result<DeliveryFuture, bool>, ClientError> {
        let inner = &self.inner;
        let mut guard = inner.acc();
        let acc = &mut *guard;
        if acc.closed {
            return Err(ClientError::Protocol("the producer is closed".into()));
        }
        if acc.transactional {
            txn::check_can_send(acc)?;
        }
        let Some(topic) = acc
            .topics
            .get_mut(&record.topic)
            .filter(|t| now < t.expires)
        else {
            return Ok(Err(false));
        };
        let size = record.size();
        if acc.buffered + size > inner.config.buffer_memory && acc.buffered > 0 {
            return Ok(Err(true));
        }
        let partitions = topic.partitions;
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
                _ => acc
                    .sticky
                    .next(&mut topic.sticky, partitions, size, inner.config.batch_size),
            },
        };
        // The partition count only comes from metadata, which made this
        // many queues; a missing one would be a bug, not bad input.
        let Some(q) = topic.queues.get_mut(partition as usize) else {
            return Err(ClientError::Protocol(format!(
                "no queue for partition {partition} of topic {}",
                record.topic
            )));
        };
        let timestamp = record.timestamp.unwrap_or(now);
        let (producer, transactional) = (acc.producer, acc.transactional);
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
                pool.take(),
                timestamp,
                inner.config.batch_size.min(1 << 20),
            ),
            done: BatchDone::new(q.name.clone(), partition),
            bytes: 0,
            created: Instant::now(),
        });
        let index = open.writer.count();
        let took = open.writer.append(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
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
        inner.acc().topics.set_partitions(topic, n, expires);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(capacity: usize) -> bytes::Bytes {
        let mut v = Vec::with_capacity(capacity);
        v.extend_from_slice(b"records");
        bytes::Bytes::from(v)
    }

    #[test]
    fn the_pool_keeps_buffers_up_to_its_limit_and_hands_them_back() {
        let mut pool = BufferPool::default();
        pool.recycle(batch(1000), 2500);
        pool.recycle(batch(1000), 2500);
        pool.recycle(batch(1000), 2500); // over the limit: dropped
        assert_eq!((pool.free.len(), pool.bytes), (2, 2000));
        let b = pool.take();
        assert!(b.capacity() >= 1000);
        assert_eq!(pool.bytes, 2000 - b.capacity());
        pool.take();
        assert_eq!((pool.free.len(), pool.bytes), (0, 0));
        assert_eq!(
            pool.take().capacity(),
            0,
            "an empty pool gives a new buffer"
        );
    }

    #[test]
    fn a_batch_still_shared_is_not_reused() {
        let mut pool = BufferPool::default();
        let shared = batch(1000);
        let _still_sending = shared.clone();
        pool.recycle(shared, 1 << 20);
        assert!(pool.free.is_empty());
    }

    /// A transactional producer finds its transaction coordinator once,
    /// not before each of AddPartitionsToTxn and EndTxn.
    #[tokio::test]
    async fn transactions_reuse_the_coordinator() {
        let dir = tempfile::tempdir().expect("dir");
        let server = crate::test_broker::start(dir.path(), &[]).await;
        let mut config = ProducerConfig::new(&server.local_addr.to_string());
        config.set("transactional.id", "tx-reuse").expect("valid");
        let producer = Producer::new(config).await.expect("producer");
        producer.init_transactions().await.expect("init");
        for i in 0..3 {
            producer.begin_transaction().await.expect("begin");
            producer
                .send(ProducerRecord::new("t").value(format!("{i}")))
                .await
                .expect("queued");
            producer.commit_transaction().await.expect("commit");
        }
        assert_eq!(producer.inner.cluster.coordinator_lookups(), 1);
        producer.close().await.expect("close");
    }

    #[test]
    fn a_settled_record_reads_its_batch_result() {
        let done = BatchDone::new("t".into(), 3);
        let f = DeliveryFuture {
            batch: done.clone(),
            index: 2,
            timestamp: 7,
        };
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut f = Box::pin(f);
        assert!(f.as_mut().poll(&mut cx).is_pending());
        done.complete(Ok((100, -1)));
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(m)) => assert_eq!((m.partition, m.offset, m.timestamp), (3, 102, 7)),
            other => panic!("expected the record's metadata, got {other:?}"),
        }
    }
}
