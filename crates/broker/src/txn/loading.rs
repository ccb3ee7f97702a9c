//! The transactional ids of each `__transaction_state` partition: read from
//! its log when the coordinator opens or leadership of the partition
//! arrives, finished if a transaction was left between prepare and
//! complete, and dropped when leadership leaves.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use super::coordinator::{TxnCoordinator, TxnMeta};
use super::log::{self, TxnRecord, TxnState, TXN_TOPIC};
use crate::group::store::partition_for;
use crate::group::GroupCoordinator;
use crate::metadata::{LeaderEpoch, TopicPartition};
use crate::net::log::Escaped;
use crate::topics::Partition;

impl TxnCoordinator {
    /// Loads every `__transaction_state` partition this node leads (at
    /// open); returns the largest producer id any of its records names.
    pub(super) fn replay(&self) -> Option<i64> {
        let t = self.topics.get(TXN_TOPIC)?;
        let (mut highest, mut ids) = (None, 0);
        for p in t.hosted().iter().filter(|p| p.is_leading()) {
            let (h, n) = self.load(p, p.replication_epoch());
            highest = highest.max(h);
            ids += n;
        }
        tracing::info!(
            transactional_ids = ids,
            "rebuilt transactions from {TXN_TOPIC}"
        );
        highest
    }

    /// Leadership of `__transaction_state` partition `index` arrived at
    /// `epoch`: reads its transactional ids and completes the transactions
    /// its former leader left between prepare and complete. A partition
    /// already loaded at `epoch` is left as it is.
    pub fn load_partition(&self, groups: &GroupCoordinator, index: i32, epoch: LeaderEpoch) {
        if self.loaded.lock().get(&index) == Some(&epoch) {
            return;
        }
        let Some(p) = self.topics.get(TXN_TOPIC).and_then(|t| t.partition(index)) else {
            return;
        };
        let (_, ids) = self.load(&p, epoch);
        tracing::info!(
            partition = index,
            leader_epoch = epoch.0,
            transactional_ids = ids,
            "loaded transactions from {TXN_TOPIC}: leadership arrived"
        );
        let n = self.state_partitions();
        self.recover_where(groups, |id| partition_for(id, n) == index);
    }

    /// Leadership of `__transaction_state` partition `index` left this
    /// node: its transactional ids are dropped (their requests now get
    /// NOT_COORDINATOR and the clients find the new coordinator).
    pub fn unload_partition(&self, index: i32) {
        self.loaded.lock().remove(&index);
        let n = self.state_partitions();
        let mut txns = self.txns.lock();
        let before = txns.by_id.len();
        txns.by_id.retain(|id, _| partition_for(id, n) != index);
        txns.by_producer
            .retain(|_, id| partition_for(id, n) != index);
        let dropped = before - txns.by_id.len();
        drop(txns);
        tracing::info!(
            partition = index,
            transactional_ids = dropped,
            "unloaded transactions: leadership of {TXN_TOPIC} moved"
        );
    }

    /// Finishes transactions a crash left between prepare and complete.
    pub fn recover(&self, groups: &GroupCoordinator) {
        self.recover_where(groups, |_| true);
    }

    /// NOT_COORDINATOR unless this node leads the partition of `id`, and
    /// COORDINATOR_LOAD_IN_PROGRESS until it has loaded it. With no
    /// `__transaction_state` yet, the first request creates it here.
    pub(super) fn check_coordinator(&self, id: &str) -> Result<(), ResponseError> {
        let Some(t) = self.topics.get(TXN_TOPIC) else {
            return Ok(());
        };
        let index = partition_for(id, t.partition_count() as i32);
        match t.partition(index) {
            Some(p) if p.is_leading() => {}
            _ => return Err(ResponseError::NotCoordinator),
        }
        let tp = TopicPartition {
            topic: TXN_TOPIC.into(),
            partition: index,
        };
        if self.topics.coordinator_moves().is_pending(&tp) {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    fn state_partitions(&self) -> i32 {
        self.topics
            .get(TXN_TOPIC)
            .map_or(1, |t| t.partition_count() as i32)
    }

    /// Reads one partition's ids into the coordinator, replacing what it
    /// held for that partition; returns the largest producer id named and
    /// how many ids it holds.
    fn load(&self, p: &Partition, epoch: LeaderEpoch) -> (Option<i64>, usize) {
        let mut latest: HashMap<String, Option<TxnRecord>> = HashMap::new();
        let mut highest: Option<i64> = None;
        let res = crate::partition::scan_batches(&p.log, 0, |_, bytes| {
            let _ = strom_record::for_each_record(bytes, |rec| {
                if let Some((id, value)) = rec.key.and_then(|k| log::decode(k, rec.value)) {
                    if let Some(v) = &value {
                        highest = Some(highest.map_or(v.producer_id, |h| h.max(v.producer_id)));
                    }
                    latest.insert(id, value);
                }
            });
        });
        if let Err(e) = res {
            tracing::error!(partition = p.index, error = %e, "cannot read {TXN_TOPIC}");
        }
        let n = self.state_partitions();
        let mut txns = self.txns.lock();
        txns.by_id.retain(|id, _| partition_for(id, n) != p.index);
        txns.by_producer
            .retain(|_, id| partition_for(id, n) != p.index);
        let mut count = 0usize;
        for (id, rec) in latest {
            if let Some(rec) = rec {
                count += 1;
                txns.by_producer.insert(rec.producer_id, id.clone());
                txns.by_id
                    .insert(id.clone(), Arc::new(Mutex::new(TxnMeta { id, rec })));
            }
        }
        drop(txns);
        self.loaded.lock().insert(p.index, epoch);
        (highest, count)
    }

    fn recover_where(&self, groups: &GroupCoordinator, wanted: impl Fn(&str) -> bool) {
        let metas: Vec<_> = self
            .txns
            .lock()
            .by_id
            .iter()
            .filter(|(id, _)| wanted(id))
            .map(|(_, m)| m.clone())
            .collect();
        for m in metas {
            let mut m = m.lock();
            if matches!(
                m.rec.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            ) {
                let commit = m.rec.state == TxnState::PrepareCommit;
                tracing::info!(transactional_id = %Escaped(&m.id), commit, "completing a transaction left in prepare state");
                if let Err(e) = self.finish(groups, &mut m, commit) {
                    tracing::error!(transactional_id = %Escaped(&m.id), error = ?e, "cannot complete transaction");
                }
            }
        }
    }
}
