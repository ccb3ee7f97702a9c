//! The transaction coordinator: producer ids and epochs for transactional
//! ids, the partitions of each open transaction, commit and abort, timeouts
//! and fencing.
//!
//! Every change is written to `__transaction_state` before it is answered.
//! Ending a transaction writes `PrepareCommit`/`PrepareAbort`, then a
//! marker to each partition (all local on a single node, so no
//! WriteTxnMarkers round trip is needed), then `CompleteCommit`/`CompleteAbort`.
//! After a crash, replay finds transactions left in a prepare state and
//! finishes them; open ones are aborted when their timeout passes.

use crate::net::log::Escaped;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use strom_record::{BatchBuilder, OwnedRecord};

use super::log::{self, TxnRecord, TxnState, TXN_TOPIC};
use super::producer_ids::ProducerIds;
use super::producer_state::Marker;
use crate::group::store::{partition_for, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::metadata::NodeId;
use crate::replication::coordinator_write::Written;
use crate::topics::{Partition, TopicError, Topics};

/// Coordinator settings (Kafka's names in the comments).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.state.log.num.partitions`.
    pub state_partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_segment_bytes: i64,
    /// `transaction.state.log.replication.factor` (1 on a single-node server).
    pub state_replication_factor: i32,
    /// `transaction.state.log.min.isr`: the topic's `min.insync.replicas`.
    pub state_min_isr: i64,
    /// How long a write to `__transaction_state` or a marker waits for the
    /// in-sync replicas (`request.timeout.ms`, as Kafka's coordinator).
    pub write_timeout: std::time::Duration,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
}

/// A partition and the error code of an operation on it (0: none).
pub type PartitionCode = ((String, i32), i16);

/// One transactional id.
#[derive(Debug, Clone)]
pub(super) struct TxnMeta {
    pub(super) id: String,
    pub(super) rec: TxnRecord,
}

#[derive(Debug, Default)]
pub(super) struct Txns {
    pub(super) by_id: HashMap<String, Arc<Mutex<TxnMeta>>>,
    pub(super) by_producer: HashMap<i64, String>,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    /// State name.
    pub state: &'static str,
    /// Timeout.
    pub timeout_ms: i32,
    /// Start time, or -1.
    pub start_ms: i64,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Partitions by topic.
    pub topics: BTreeMap<String, Vec<i32>>,
}

/// The transaction coordinator of this node (it coordinates every id).
#[derive(Debug)]
pub struct TxnCoordinator {
    pub(super) topics: Arc<Topics>,
    ids: ProducerIds,
    config: TxnConfig,
    pub(super) txns: Mutex<Txns>,
    /// The `__transaction_state` partitions loaded, and the leader epoch
    /// they were loaded at.
    pub(super) loaded: Mutex<HashMap<i32, crate::metadata::LeaderEpoch>>,
    create: Mutex<()>,
    /// Other brokers coordinate some transactions.
    clustered: bool,
}

fn fenced(version_has_fenced: bool) -> ResponseError {
    if version_has_fenced {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

impl TxnCoordinator {
    /// Opens the coordinator: producer ids from `dir`, transactions replayed
    /// from `__transaction_state` if it exists.
    ///
    /// Producer ids continue above every id the logs remember (see
    /// [`ProducerIds::raise_floor`]), so a lost `producer-id-block` never
    /// hands out an id an idempotent producer already used.
    pub fn open(
        topics: Arc<Topics>,
        dir: &std::path::Path,
        config: TxnConfig,
    ) -> Result<Self, TopicError> {
        let ids = ProducerIds::open(dir)?;
        Self::open_with(topics, dir, config, ids, false)
    }

    /// [`TxnCoordinator::open`] with producer ids from `ids`; `clustered`
    /// when other brokers coordinate some transactions (a transactional
    /// produce from a producer this one does not know is then accepted:
    /// its coordinator is elsewhere).
    pub fn open_with(
        topics: Arc<Topics>,
        dir: &std::path::Path,
        config: TxnConfig,
        ids: ProducerIds,
        clustered: bool,
    ) -> Result<Self, TopicError> {
        let c = TxnCoordinator {
            ids,
            topics,
            config,
            clustered,
            txns: Mutex::new(Txns::default()),
            loaded: Mutex::new(HashMap::new()),
            create: Mutex::new(()),
        };
        let highest_in_txn_log = c.replay();
        let highest = c
            .topics
            .all_partitions()
            .iter()
            .filter_map(|p| p.producers.lock().highest_producer_id())
            .chain(highest_in_txn_log)
            .max();
        if let Some(h) = highest {
            let next = c.ids.raise_floor(h);
            if !c.ids.found_file() {
                tracing::warn!(
                    file = %dir.join(super::producer_ids::FILE).display(),
                    highest_producer_id_in_logs = h,
                    next_producer_id = next,
                    "producer-id-block is missing from a data directory that has been used; producer ids continue above the highest one the logs remember"
                );
            }
        }
        Ok(c)
    }

    /// How long a coordinator write waits for the in-sync replicas.
    pub fn write_timeout(&self) -> std::time::Duration {
        self.config.write_timeout
    }

    /// A fresh producer id for an idempotent (non-transactional) producer.
    pub fn new_producer_id(&self) -> Result<i64, ResponseError> {
        self.ids.next().map_err(|e| {
            tracing::error!(error = %e, "cannot reserve producer ids");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// Creates `__transaction_state` if it does not exist yet. Blocking.
    pub fn ensure_state_topic(&self) -> Result<(), ResponseError> {
        if self.topics.get(TXN_TOPIC).is_some() {
            return Ok(());
        }
        let _g = self.create.lock();
        if self.topics.get(TXN_TOPIC).is_some() {
            return Ok(());
        }
        let mut cfg = BTreeMap::new();
        cfg.insert("cleanup.policy".to_string(), "compact".to_string());
        cfg.insert(
            "segment.bytes".to_string(),
            self.config.state_segment_bytes.to_string(),
        );
        cfg.insert(
            "min.insync.replicas".to_string(),
            self.config.state_min_isr.to_string(),
        );
        match self.topics.create_replicated(
            TXN_TOPIC,
            self.config.state_partitions,
            self.config.state_replication_factor,
            cfg,
        ) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "cannot create {TXN_TOPIC}");
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    fn state_partition(&self, id: &str) -> Result<Arc<Partition>, ResponseError> {
        self.ensure_state_topic()?;
        let t = self
            .topics
            .get(TXN_TOPIC)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let n = t.partition_count() as i32;
        t.partition(partition_for(id, n))
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// Writes the id's state (or its tombstone) and waits until it is
    /// durable and on every in-sync replica. With fewer in-sync replicas
    /// than `transaction.state.log.min.isr` nothing is written
    /// (COORDINATOR_NOT_AVAILABLE, Kafka's answer for NOT_ENOUGH_REPLICAS).
    fn persist(&self, id: &str, rec: Option<&TxnRecord>) -> Result<(), ResponseError> {
        let p = self.state_partition(id)?;
        if (p.isr_size() as i64) < self.config.state_min_isr {
            tracing::warn!(transactional_id = %Escaped(id), isr = p.isr_size(), min_isr = self.config.state_min_isr, "too few in-sync replicas of {TXN_TOPIC} to change a transaction");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let now = self.topics.clock().wall_ms();
        let buf = BatchBuilder::new(now)
            .push(OwnedRecord {
                key: Some(log::encode_key(id)),
                value: rec.map(log::encode_value),
                headers: Vec::new(),
                timestamp: now,
            })
            .build();
        p.append(&buf)
            .map_err(|e| e.to_string())
            .and_then(|_| p.log.flush().map_err(|e| e.to_string()))
            .map_err(|e| {
                tracing::error!(transactional_id = %Escaped(id), error = %e, "cannot write {TXN_TOPIC}");
                ResponseError::CoordinatorNotAvailable
            })?;
        Written::now(p).replicated_blocking(self.config.write_timeout)
    }

    fn meta(&self, id: &str) -> Option<Arc<Mutex<TxnMeta>>> {
        self.txns.lock().by_id.get(id).cloned()
    }

    /// InitProducerId. `txn_id` `None`: a new idempotent producer. Otherwise
    /// fences earlier producers of the id (aborting their open transaction)
    /// and returns the id's producer id with a bumped epoch.
    pub fn init_producer_id(
        &self,
        groups: &GroupCoordinator,
        txn_id: Option<&str>,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Result<(i64, i16), ResponseError> {
        let Some(id) = txn_id else {
            return Ok((self.new_producer_id()?, 0));
        };
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        self.check_coordinator(id)?;
        let now = self.topics.clock().wall_ms();
        let meta = {
            let mut txns = self.txns.lock();
            match txns.by_id.get(id) {
                Some(m) => m.clone(),
                None => {
                    let pid = self.new_producer_id()?;
                    let m = Arc::new(Mutex::new(TxnMeta {
                        id: id.to_string(),
                        rec: TxnRecord {
                            producer_id: pid,
                            epoch: -1,
                            timeout_ms,
                            state: TxnState::Empty,
                            partitions: BTreeSet::new(),
                            last_update_ms: now,
                            start_ms: -1,
                        },
                    }));
                    txns.by_id.insert(id.to_string(), m.clone());
                    txns.by_producer.insert(pid, id.to_string());
                    m
                }
            }
        };
        let mut m = meta.lock();
        if let Some((pid, epoch)) = expected {
            // KIP-360: a producer re-initialising itself must still be the current one.
            if pid != m.rec.producer_id || epoch != m.rec.epoch {
                return Err(fenced(version >= 4));
            }
        }
        match m.rec.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                let commit = m.rec.state == TxnState::PrepareCommit;
                self.finish(groups, &mut m, commit)
                    .map_err(|_| ResponseError::ConcurrentTransactions)?;
            }
            TxnState::Ongoing => {
                // Fence the old producer: abort its transaction under a new epoch.
                self.bump_epoch(&mut m)?;
                m.rec.state = TxnState::PrepareAbort;
                self.persist(&m.id, Some(&m.rec))?;
                self.finish(groups, &mut m, false)
                    .map_err(|_| ResponseError::ConcurrentTransactions)?;
            }
            _ => {}
        }
        self.bump_epoch(&mut m)?;
        m.rec.timeout_ms = timeout_ms;
        m.rec.state = TxnState::Empty;
        m.rec.partitions.clear();
        m.rec.start_ms = -1;
        m.rec.last_update_ms = now;
        self.persist(&m.id, Some(&m.rec))?;
        Ok((m.rec.producer_id, m.rec.epoch))
    }

    /// Next epoch, or a new producer id when the epoch is exhausted.
    fn bump_epoch(&self, m: &mut TxnMeta) -> Result<(), ResponseError> {
        if m.rec.epoch >= i16::MAX - 1 {
            let old = m.rec.producer_id;
            m.rec.producer_id = self.new_producer_id()?;
            m.rec.epoch = 0;
            let mut txns = self.txns.lock();
            txns.by_producer.remove(&old);
            txns.by_producer.insert(m.rec.producer_id, m.id.clone());
        } else {
            m.rec.epoch += 1;
        }
        Ok(())
    }

    /// Checks that `(pid, epoch)` is the current producer of `id` and the
    /// transaction can take new partitions.
    fn check_producer(
        m: &TxnMeta,
        pid: i64,
        epoch: i16,
        version_has_fenced: bool,
    ) -> Result<(), ResponseError> {
        if pid != m.rec.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != m.rec.epoch {
            return Err(fenced(version_has_fenced));
        }
        if matches!(
            m.rec.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        ) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// AddPartitionsToTxn: per-partition error codes, or one error for all.
    pub fn add_partitions(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
        version: i16,
    ) -> Result<Vec<PartitionCode>, ResponseError> {
        self.check_coordinator(id)?;
        let meta = self
            .meta(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = meta.lock();
        Self::check_producer(&m, pid, epoch, version >= 2)?;
        let unknown: Vec<bool> = partitions
            .iter()
            .map(|(t, p)| !self.topics.partition_exists(t, *p))
            .collect();
        if unknown.iter().any(|u| *u) {
            return Ok(partitions
                .into_iter()
                .zip(unknown)
                .map(|(tp, u)| {
                    let e = if u {
                        ResponseError::UnknownTopicOrPartition
                    } else {
                        ResponseError::OperationNotAttempted
                    };
                    (tp, e.code())
                })
                .collect());
        }
        self.add(&mut m, partitions.iter().cloned())?;
        Ok(partitions.into_iter().map(|tp| (tp, 0)).collect())
    }

    fn add(
        &self,
        m: &mut TxnMeta,
        partitions: impl Iterator<Item = (String, i32)>,
    ) -> Result<(), ResponseError> {
        let now = self.topics.clock().wall_ms();
        let mut rec = m.rec.clone();
        if rec.state != TxnState::Ongoing {
            rec.partitions.clear();
            rec.start_ms = now;
        }
        let before = rec.partitions.len();
        rec.partitions.extend(partitions);
        if rec.state == TxnState::Ongoing && rec.partitions.len() == before {
            return Ok(()); // nothing new: no write
        }
        rec.state = TxnState::Ongoing;
        rec.last_update_ms = now;
        self.persist(&m.id, Some(&rec))?;
        m.rec = rec;
        Ok(())
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition.
    pub fn add_offsets(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        group: &str,
        offsets_partitions: i32,
        version: i16,
    ) -> Result<(), ResponseError> {
        self.check_coordinator(id)?;
        let meta = self
            .meta(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = meta.lock();
        Self::check_producer(&m, pid, epoch, version >= 2)?;
        let p = partition_for(group, offsets_partitions);
        self.add(&mut m, std::iter::once((OFFSETS_TOPIC.to_string(), p)))
    }

    /// EndTxn: commits or aborts the open transaction.
    pub fn end_txn(
        &self,
        groups: &GroupCoordinator,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
        version: i16,
    ) -> Result<(), ResponseError> {
        self.check_coordinator(id)?;
        let meta = self
            .meta(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = meta.lock();
        if pid != m.rec.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != m.rec.epoch {
            return Err(fenced(version >= 2));
        }
        match (m.rec.state, commit) {
            (TxnState::Ongoing, _) => {
                m.rec.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                m.rec.last_update_ms = self.topics.clock().wall_ms();
                if let Err(e) = self.persist(&m.id, Some(&m.rec)) {
                    m.rec.state = TxnState::Ongoing;
                    return Err(e);
                }
                self.finish(groups, &mut m, commit)
            }
            // A retry of the call that already finished it.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                self.finish(groups, &mut m, commit)
            }
            (TxnState::Empty, false) => Ok(()), // nothing was added: nothing to abort
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Writes the markers of a prepared transaction and completes it.
    pub(super) fn finish(
        &self,
        groups: &GroupCoordinator,
        m: &mut TxnMeta,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let marker = if commit {
            Marker::Commit
        } else {
            Marker::Abort
        };
        let (pid, epoch) = (m.rec.producer_id, m.rec.epoch);
        let image = self.topics.image();
        let mut remote: BTreeMap<NodeId, Vec<(String, i32)>> = BTreeMap::new();
        let mut local = Vec::new();
        for (topic, index) in &m.rec.partitions {
            if let Some(p) = self
                .topics
                .get(topic)
                .and_then(|t| t.partition(*index))
                .filter(|p| p.is_leading())
            {
                write_marker(groups, &p, pid, epoch, marker).map_err(|e| {
                    tracing::error!(transactional_id = %Escaped(&m.id), topic, partition = index, error = %e, "cannot write transaction marker");
                    ResponseError::CoordinatorNotAvailable
                })?;
                local.push(Written::now(p));
                continue;
            }
            match image.topic(topic).and_then(|t| t.partition(*index)) {
                None => {
                    tracing::warn!(transactional_id = %m.id, topic, partition = index, "partition of a transaction is gone; no marker")
                }
                // Offline: the transaction completes once its leader is back.
                Some(placed) if placed.leader == NodeId::NONE => {
                    return Err(ResponseError::CoordinatorNotAvailable)
                }
                Some(placed) => remote
                    .entry(placed.leader)
                    .or_default()
                    .push((topic.clone(), *index)),
            }
        }
        for (leader, partitions) in remote {
            let endpoint = image
                .broker(leader)
                .and_then(|b| self.topics.peer_endpoint(b).cloned())
                .ok_or(ResponseError::CoordinatorNotAvailable)?;
            let sent = super::remote_markers::send(
                &endpoint.host,
                i32::from(endpoint.port),
                pid,
                epoch,
                commit,
                0,
                &partitions,
            );
            sent.map_err(|e| {
                tracing::error!(transactional_id = %Escaped(&m.id), broker = %leader, error = %e, "cannot write transaction markers on another broker");
                ResponseError::CoordinatorNotAvailable
            })?;
        }
        // Complete only once no marker can be lost with this broker; the
        // waits overlap, as every marker was written before the first.
        for w in local {
            w.replicated_blocking(self.config.write_timeout)?;
        }
        let mut rec = m.rec.clone();
        rec.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        rec.partitions.clear();
        rec.last_update_ms = self.topics.clock().wall_ms();
        self.persist(&m.id, Some(&rec))?;
        m.rec = rec;
        Ok(())
    }

    /// KIP-890 style check for a transactional produce: the partition must
    /// be in the producer's open transaction.
    pub fn verify_produce(
        &self,
        pid: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let meta = {
            let txns = self.txns.lock();
            let Some(id) = txns.by_producer.get(&pid) else {
                if self.clustered {
                    // Another broker coordinates it (Kafka's check without KIP-890).
                    return Ok(());
                }
                return Err(ResponseError::InvalidProducerIdMapping);
            };
            txns.by_id.get(id).cloned()
        };
        let Some(meta) = meta else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let m = meta.lock();
        if epoch < m.rec.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        let key = (topic.to_string(), partition);
        if epoch != m.rec.epoch
            || m.rec.state != TxnState::Ongoing
            || !m.rec.partitions.contains(&key)
        {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// Checks a TxnOffsetCommit against the transaction: current producer,
    /// open transaction that includes the group's offsets partition.
    pub fn verify_offset_commit(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        group: &str,
        offsets_partitions: i32,
    ) -> Result<(), ResponseError> {
        let Some(meta) = self.meta(id) else {
            // Another broker coordinates the transaction (Kafka does not check here either).
            return if self.clustered {
                Ok(())
            } else {
                Err(ResponseError::InvalidProducerIdMapping)
            };
        };
        let m = meta.lock();
        if pid != m.rec.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != m.rec.epoch {
            return Err(ResponseError::ProducerFenced);
        }
        let key = (
            OFFSETS_TOPIC.to_string(),
            partition_for(group, offsets_partitions),
        );
        if m.rec.state != TxnState::Ongoing || !m.rec.partitions.contains(&key) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// DescribeTransactions for one id.
    pub fn describe(&self, id: &str) -> Option<TxnDescription> {
        let meta = self.meta(id)?;
        let m = meta.lock();
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in &m.rec.partitions {
            topics.entry(t.clone()).or_default().push(*p);
        }
        Some(TxnDescription {
            state: m.rec.state.name(),
            timeout_ms: m.rec.timeout_ms,
            start_ms: m.rec.start_ms,
            producer_id: m.rec.producer_id,
            epoch: m.rec.epoch,
            topics,
        })
    }

    /// ListTransactions: (id, producer id, state), filtered by state names,
    /// producer ids and a minimum running time (ms, -1 for any).
    pub fn list(
        &self,
        states: &[String],
        producers: &[i64],
        min_duration_ms: i64,
    ) -> Vec<(String, i64, &'static str)> {
        let metas: Vec<_> = self.txns.lock().by_id.values().cloned().collect();
        let now = self.topics.clock().wall_ms();
        let mut out: Vec<_> = metas
            .iter()
            .filter_map(|m| {
                let m = m.lock();
                let name = m.rec.state.name();
                let keep = (states.is_empty() || states.iter().any(|s| s == name))
                    && (producers.is_empty() || producers.contains(&m.rec.producer_id))
                    && (min_duration_ms < 0
                        || (m.rec.state == TxnState::Ongoing
                            && now - m.rec.start_ms >= min_duration_ms));
                keep.then(|| (m.id.clone(), m.rec.producer_id, name))
            })
            .collect();
        out.sort();
        out
    }

    /// Periodic work: abort transactions past their timeout (bumping the
    /// epoch so the producer is fenced), retry unfinished ones, expire idle
    /// transactional ids.
    pub fn tick(&self, groups: &GroupCoordinator) {
        let now = self.topics.clock().wall_ms();
        let metas: Vec<_> = self.txns.lock().by_id.values().cloned().collect();
        let mut expired = Vec::new();
        for meta in metas {
            let mut m = meta.lock();
            match m.rec.state {
                TxnState::Ongoing if now - m.rec.start_ms > m.rec.timeout_ms as i64 => {
                    tracing::info!(transactional_id = %m.id, timeout_ms = m.rec.timeout_ms, "transaction timed out; aborting");
                    let saved = m.rec.clone();
                    if self.bump_epoch(&mut m).is_err() {
                        continue;
                    }
                    m.rec.state = TxnState::PrepareAbort;
                    m.rec.last_update_ms = now;
                    if self.persist(&m.id, Some(&m.rec)).is_err() {
                        m.rec = saved;
                        continue;
                    }
                    let _ = self.finish(groups, &mut m, false);
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    let commit = m.rec.state == TxnState::PrepareCommit;
                    let _ = self.finish(groups, &mut m, commit);
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    if now - m.rec.last_update_ms > self.config.id_expiration_ms
                        && self.persist(&m.id, None).is_ok() =>
                {
                    expired.push((m.id.clone(), m.rec.producer_id));
                }
                _ => {}
            }
        }
        if !expired.is_empty() {
            let mut txns = self.txns.lock();
            for (id, pid) in expired {
                tracing::info!(transactional_id = %Escaped(&id), "transactional id expired");
                txns.by_id.remove(&id);
                txns.by_producer.remove(&pid);
            }
        }
        for p in self.topics.all_partitions() {
            p.expire_producers(now, self.config.producer_id_expiration_ms);
        }
    }
}

/// Writes one marker and, for `__consumer_offsets`, makes the group
/// coordinator apply or drop the transaction's offsets.
pub fn write_marker(
    groups: &GroupCoordinator,
    p: &Partition,
    pid: i64,
    epoch: i16,
    marker: Marker,
) -> Result<i64, strom_storage::StorageError> {
    let offset = p.append_marker(pid, epoch, marker, 0)?;
    if p.topic == OFFSETS_TOPIC {
        groups.complete_txn(p.index, pid, marker == Marker::Commit);
    }
    Ok(offset)
}
