//! The consumer: partitions by group membership (`subscribe`: the classic
//! protocol with the `range`, `roundrobin` and `cooperative-sticky`
//! assignors, or KIP-848's broker-side assignment with
//! `group.protocol=consumer`) or by hand
//! (`assign`), positions that start from committed offsets or
//! `auto.offset.reset`, `seek`, `pause`/`resume`, auto and manual commits,
//! and pipelined fetching: while `poll` hands out buffered records, the next
//! fetch for the other partitions is already in flight.
//!
//! ```no_run
//! # async fn demo() -> Result<(), strom_client::ClientError> {
//! use std::time::Duration;
//! use strom_client::consumer::{Consumer, ConsumerConfig};
//! let mut config = ConsumerConfig::new("127.0.0.1:9092");
//! config.set("group.id", "alerts")?.set("auto.offset.reset", "earliest")?;
//! let mut consumer = Consumer::new(config)?;
//! consumer.subscribe(&["meter-readings"]).await?;
//! loop {
//!     for r in consumer.poll(Duration::from_millis(500)).await? {
//!         println!("{}-{}@{}: {:?}", r.topic, r.partition, r.offset, r.value);
//!     }
//! }
//! # }
//! ```

mod config;
mod group;
mod kip848;
mod protocol;
mod records;
mod sticky;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::mpsc;

pub use config::{ConsumerConfig, GroupProtocol, OffsetReset};
pub use protocol::{
    decode_assignment, range as range_assignor, round_robin as round_robin_assignor, Subscription,
};
pub use records::ConsumerRecord;
pub use sticky::cooperative_sticky as cooperative_sticky_assignor;

use crate::cluster::Cluster;
use crate::error::ClientError;

/// A topic partition.
pub type TopicPartition = (String, i32);

/// A change of this consumer's partitions, for the rebalance listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// These partitions are no longer this consumer's (after a final commit).
    Revoked(Vec<TopicPartition>),
    /// These partitions are now this consumer's.
    Assigned(Vec<TopicPartition>),
}

#[derive(Debug, Default)]
struct PartState {
    /// Next offset to hand to the application (what commits store).
    position: Option<i64>,
    /// Next offset to fetch (ahead of `position` while records are buffered).
    fetch_offset: Option<i64>,
    paused: bool,
    fetching: bool,
    /// Records of this partition waiting in the buffer (fetched again only at 0).
    buffered: usize,
    /// The end of what may be read (high watermark, or last stable offset
    /// under read_committed) as of the last fetch.
    readable_end: Option<i64>,
}

impl PartState {
    /// True when the broker had records past the fetch offset at the last fetch.
    fn behind(&self) -> bool {
        matches!((self.fetch_offset, self.readable_end), (Some(f), Some(e)) if f < e)
    }
}

type FetchResult = (
    i32,
    Vec<(TopicPartition, i64)>,
    Result<FetchResponse, ClientError>,
);

/// The application's rebalance callback.
type Listener = Box<dyn FnMut(RebalanceEvent) + Send>;

/// A Kafka consumer.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    subscription: Vec<String>,
    parts: BTreeMap<TopicPartition, PartState>,
    buffered: VecDeque<ConsumerRecord>,
    results_tx: mpsc::UnboundedSender<FetchResult>,
    results_rx: mpsc::UnboundedReceiver<FetchResult>,
    nodes_fetching: HashSet<i32>,
    membership: Option<group::Membership>,
    member848: Option<kip848::Member>,
    last_commit: Instant,
    last_metadata_check: Instant,
    /// In a mutex only so that `Consumer` is `Sync` (a `&Consumer` may be
    /// held across an await in a spawned task); it is only called through `&mut self`.
    listener: Option<std::sync::Mutex<Listener>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("subscription", &self.subscription)
            .field("assignment", &self.parts.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Consumer {
    /// A consumer; it connects on first use.
    pub fn new(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let cluster = Arc::new(
            Cluster::new(
                &config.bootstrap_servers,
                &config.client_id,
                config.request_timeout,
            )?
            .with_reconnect_backoff(config.reconnect_backoff, config.reconnect_backoff_max),
        );
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        Ok(Consumer {
            config,
            cluster,
            subscription: Vec::new(),
            parts: BTreeMap::new(),
            buffered: VecDeque::new(),
            results_tx,
            results_rx,
            nodes_fetching: HashSet::new(),
            membership: None,
            member848: None,
            last_commit: Instant::now(),
            last_metadata_check: Instant::now(),
            listener: None,
        })
    }

    /// Called with every revocation and assignment of a group rebalance.
    pub fn set_rebalance_listener(&mut self, f: impl FnMut(RebalanceEvent) + Send + 'static) {
        self.listener = Some(std::sync::Mutex::new(Box::new(f)));
    }

    /// Joins the group (`group.id`) for these topics; partitions come with
    /// the next `poll`.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<(), ClientError> {
        if self.config.group_id.is_none() {
            return Err(ClientError::Config("subscribe needs group.id".into()));
        }
        self.subscription = topics.iter().map(|t| t.to_string()).collect();
        self.revoke_all().await;
        self.leave_group().await;
        Ok(())
    }

    /// Takes these partitions by hand (no group membership).
    pub async fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        self.subscription.clear();
        self.leave_group().await;
        self.set_partitions(partitions);
        Ok(())
    }

    fn set_partitions(&mut self, partitions: Vec<TopicPartition>) {
        let keep: HashSet<TopicPartition> = partitions.iter().cloned().collect();
        self.parts.retain(|tp, _| keep.contains(tp));
        for tp in partitions {
            self.parts.entry(tp).or_default();
        }
        self.buffered
            .retain(|r| keep.contains(&(r.topic.to_string(), r.partition)));
        self.recount_buffered();
    }

    /// Counts each partition's buffered records again (after the buffer
    /// was filtered; rare, so a full pass is fine).
    fn recount_buffered(&mut self) {
        for st in self.parts.values_mut() {
            st.buffered = 0;
        }
        for_each_run(&self.buffered, |tp, n, _| {
            if let Some(st) = self.parts.get_mut(&tp) {
                st.buffered += n;
            }
        });
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// Next offset to be returned for a partition, once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(topic.to_string(), partition))
            .and_then(|p| p.position)
    }

    /// Moves a partition's position (the next poll returns records from `offset`).
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), ClientError> {
        let tp = (topic.to_string(), partition);
        let st = self
            .parts
            .get_mut(&tp)
            .ok_or_else(|| ClientError::Config(format!("{topic}-{partition} is not assigned")))?;
        st.position = Some(offset);
        st.fetch_offset = Some(offset);
        self.buffered
            .retain(|r| !(&*r.topic == topic && r.partition == partition));
        self.recount_buffered();
        Ok(())
    }

    /// Moves partitions to the first offset whose timestamp is at or after `ts` (ms).
    pub async fn seek_to_timestamp(&mut self, ts: i64) -> Result<(), ClientError> {
        let tps: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        for tp in tps {
            let offset = self.list_offset(&tp, ts).await?;
            let end = self.list_offset(&tp, -1).await?;
            self.seek(&tp.0, tp.1, if offset < 0 { end } else { offset })?;
        }
        Ok(())
    }

    /// Stops fetching these partitions until [`Consumer::resume`].
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(p) = self.parts.get_mut(tp) {
                p.paused = true;
                // Buffered records are dropped: fetch them again on resume.
                p.fetch_offset = p.position;
            }
        }
        self.buffered
            .retain(|r| !partitions.contains(&(r.topic.to_string(), r.partition)));
        self.recount_buffered();
    }

    /// Fetches these partitions again.
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(p) = self.parts.get_mut(tp) {
                p.paused = false;
            }
        }
    }

    /// Waits up to `timeout` for records; returns at most `max.poll.records`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.maintain_group().await?;
            self.resolve_positions().await?;
            while let Ok(r) = self.results_rx.try_recv() {
                self.absorb(r).await;
            }
            if !self.buffered.is_empty() {
                self.start_fetches().await;
                let n = self.buffered.len().min(self.config.max_poll_records);
                let out: Vec<ConsumerRecord> = self.buffered.drain(..n).collect();
                self.advance_positions(&out);
                self.maybe_auto_commit().await;
                return Ok(out);
            }
            self.start_fetches().await;
            let now = Instant::now();
            if now >= deadline {
                self.maybe_auto_commit().await;
                return Ok(Vec::new());
            }
            // Rejoin checks need a turn of the loop at least every heartbeat
            // interval; a KIP-848 assignment wakes the loop at once.
            let wait = (deadline - now).min(self.config.heartbeat_interval);
            let changed = self.member848.as_ref().map(|m| m.changed.clone());
            let group_change = async {
                match &changed {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::time::timeout(wait, self.results_rx.recv()) => {
                    if let Ok(Some(r)) = r {
                        self.absorb(r).await;
                    }
                }
                _ = group_change => {}
            }
        }
    }

    /// Moves positions past the records handed out; a partition with nothing
    /// left in the buffer moves to its fetch offset (past control batches).
    fn advance_positions(&mut self, handed: &[ConsumerRecord]) {
        for_each_run(handed, |tp, n, last| {
            if let Some(st) = self.parts.get_mut(&tp) {
                st.position = Some(last + 1);
                st.buffered = st.buffered.saturating_sub(n);
            }
        });
        for st in self.parts.values_mut() {
            if st.buffered == 0 && st.fetch_offset.is_some() {
                st.position = st.fetch_offset;
            }
        }
    }

    /// Commits the current positions (synchronously).
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let offsets: Vec<(TopicPartition, i64)> = self
            .parts
            .iter()
            .filter_map(|(tp, st)| st.position.map(|p| (tp.clone(), p)))
            .collect();
        self.commit_offsets(&offsets).await
    }

    /// Commits the given next-offsets to consume.
    pub async fn commit_offsets(
        &mut self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), ClientError> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| ClientError::Config("commits need group.id".into()))?;
        if offsets.is_empty() {
            return Ok(());
        }
        self.last_commit = Instant::now();
        if let Some(m) = &self.member848 {
            let coordinator = match m.coordinator() {
                Some(c) => c,
                None => self.cluster.coordinator(&group, 0).await?,
            };
            let instance = self.config.group_instance_id.as_deref();
            // The epoch moves as the member reconciles: retry a stale one.
            let mut attempt = 0;
            return loop {
                let (id, epoch) = m.identity();
                match group::commit(&coordinator, &group, epoch, &id, instance, offsets).await {
                    Err(ClientError::Kafka {
                        error: ResponseError::StaleMemberEpoch,
                        ..
                    }) if attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e @ ClientError::Kafka { error, .. })
                        if kip848::coordinator_moved(error) =>
                    {
                        m.forget_coordinator();
                        break Err(e);
                    }
                    r => break r,
                }
            };
        }
        match &self.membership {
            Some(m) => {
                m.commit(offsets, self.config.group_instance_id.as_deref())
                    .await
            }
            None => {
                // Not a member: the coordinator is found for the first
                // commit and kept until it moves.
                let coordinator = self.cluster.known_coordinator(&group, 0).await?;
                let r = group::commit(&coordinator, &group, -1, "", None, offsets).await;
                if let Err(ClientError::Kafka { error, .. }) = &r {
                    if kip848::coordinator_moved(*error) {
                        self.cluster.forget_coordinators().await;
                    }
                }
                r
            }
        }
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let group = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| ClientError::Config("committed offsets need group.id".into()))?;
        group::committed(&self.cluster, group, partitions).await
    }

    /// The group's generation and member id, for `send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> Option<crate::producer::ConsumerGroupMetadata> {
        let group = self.config.group_id.clone()?;
        if let Some(m) = &self.member848 {
            let (member_id, epoch) = m.identity();
            return Some(crate::producer::ConsumerGroupMetadata {
                group_id: group,
                generation_id: epoch,
                member_id,
                group_instance_id: self.config.group_instance_id.clone(),
            });
        }
        Some(match &self.membership {
            Some(m) => crate::producer::ConsumerGroupMetadata {
                group_id: group,
                generation_id: m.generation,
                member_id: m.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
            },
            None => crate::producer::ConsumerGroupMetadata::new(group),
        })
    }

    /// Commits (with auto commit on) and leaves the group.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let r = if self.config.enable_auto_commit && self.config.group_id.is_some() {
            self.commit().await
        } else {
            Ok(())
        };
        self.leave_group().await;
        r
    }

    async fn leave_group(&mut self) {
        if let Some(m) = self.membership.take() {
            m.leave(self.config.group_instance_id.as_deref()).await;
        }
        if let Some(m) = self.member848.take() {
            m.leave(&self.config).await;
        }
    }

    async fn maybe_auto_commit(&mut self) {
        if self.config.enable_auto_commit
            && self.config.group_id.is_some()
            && self.last_commit.elapsed() >= self.config.auto_commit_interval
        {
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "auto commit failed");
            }
        }
    }

    async fn revoke_all(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        if self.config.enable_auto_commit && self.membership.is_some() {
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "commit before revocation failed");
            }
        }
        let revoked: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        self.parts.clear();
        self.buffered.clear();
        if let Some(l) = self.listener.as_mut() {
            (l.get_mut().unwrap_or_else(|e| e.into_inner()))(RebalanceEvent::Revoked(revoked));
        }
    }

    /// Joins or rejoins the group when subscribed and needed.
    async fn maintain_group(&mut self) -> Result<(), ClientError> {
        if self.subscription.is_empty() {
            return Ok(());
        }
        if self.config.group_protocol == GroupProtocol::Consumer {
            return self.maintain_848().await;
        }
        self.watch_partition_counts().await;
        let needed = self
            .membership
            .as_ref()
            .is_none_or(|m| m.rejoin.load(Ordering::Acquire));
        if !needed {
            return Ok(());
        }
        let cooperative = self.config.cooperative();
        if !cooperative {
            self.revoke_all().await;
        }
        let (previous, generation) = self
            .membership
            .take()
            .map(|m| (m.member_id.clone(), m.generation))
            .unwrap_or_else(|| (String::new(), -1));
        let owned: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        let group = self.config.group_id.clone().unwrap_or_default();
        let owned_now = group::Owned {
            partitions: &owned,
            generation,
        };
        let (m, partitions) = group::join(
            &self.cluster,
            &self.config,
            &group,
            &self.subscription,
            &previous,
            &owned_now,
        )
        .await?;
        tracing::debug!(group = %group, generation = m.generation, partitions = partitions.len(), "joined group");
        self.membership = Some(m);
        let revoked = self.reconcile(partitions).await;
        // Cooperative: partitions given up are free for others after one more round.
        if cooperative && !revoked.is_empty() {
            if let Some(m) = &self.membership {
                m.rejoin.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// KIP-848: joins through the heartbeat loop, then takes each
    /// assignment the broker sends and reports what this member owns.
    async fn maintain_848(&mut self) -> Result<(), ClientError> {
        if self.member848.is_none() {
            let group = self.config.group_id.clone().unwrap_or_default();
            self.member848 = Some(kip848::Member::join(
                self.cluster.clone(),
                &self.config,
                &group,
                &self.subscription,
            ));
        }
        let Some(m) = self.member848.as_ref() else {
            return Ok(());
        };
        match m.next_change().await? {
            kip848::Change::None => {}
            kip848::Change::Lost => {
                // Fenced: others may own these now, so no commit.
                let lost: Vec<TopicPartition> = self.parts.keys().cloned().collect();
                self.parts.clear();
                self.buffered.clear();
                if let Some(l) = self.listener.as_mut() {
                    (l.get_mut().unwrap_or_else(|e| e.into_inner()))(RebalanceEvent::Revoked(lost));
                }
                if let Some(m) = self.member848.as_ref() {
                    m.report_owned(&[]).await;
                }
            }
            kip848::Change::Assign(partitions) => {
                tracing::debug!(partitions = partitions.len(), "new assignment (KIP-848)");
                self.reconcile(partitions).await;
                let owned = self.assignment();
                if let Some(m) = self.member848.as_ref() {
                    m.report_owned(&owned).await;
                }
            }
        }
        Ok(())
    }

    /// Moves to a new assignment: partitions no longer ours are committed
    /// (with auto commit on) and revoked, new ones assigned; the listener
    /// hears both. Returns the revoked partitions.
    async fn reconcile(&mut self, partitions: Vec<TopicPartition>) -> Vec<TopicPartition> {
        let assigned: HashSet<&TopicPartition> = partitions.iter().collect();
        let revoked: Vec<TopicPartition> = self
            .parts
            .keys()
            .filter(|tp| !assigned.contains(tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let offsets: Vec<(TopicPartition, i64)> = revoked
                    .iter()
                    .filter_map(|tp| {
                        let pos = self.parts.get(tp)?.position?;
                        Some((tp.clone(), pos))
                    })
                    .collect();
                if let Err(e) = self.commit_offsets(&offsets).await {
                    tracing::warn!(error = %e, "commit before revocation failed");
                }
            }
            if let Some(l) = self.listener.as_mut() {
                (l.get_mut().unwrap_or_else(|e| e.into_inner()))(RebalanceEvent::Revoked(
                    revoked.clone(),
                ));
            }
        }
        let added: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| !self.parts.contains_key(*tp))
            .cloned()
            .collect();
        self.set_partitions(partitions);
        if let Some(l) = self.listener.as_mut() {
            (l.get_mut().unwrap_or_else(|e| e.into_inner()))(RebalanceEvent::Assigned(added));
        }
        revoked
    }

    /// The group leader rebalances when a subscribed topic appears or gains
    /// partitions (checked every `metadata.max.age.ms`, every second while a
    /// subscribed topic is missing).
    async fn watch_partition_counts(&mut self) {
        let Some(m) = self.membership.as_ref().filter(|m| m.leader) else {
            return;
        };
        let missing = self.subscription.iter().any(|t| !m.counts.contains_key(t));
        let every = if missing {
            Duration::from_secs(1)
        } else {
            self.config.metadata_max_age
        };
        if self.last_metadata_check.elapsed() < every {
            return;
        }
        self.last_metadata_check = Instant::now();
        if self
            .cluster
            .refresh(&self.subscription, false)
            .await
            .is_err()
        {
            return;
        }
        let mut changed = false;
        for t in &self.subscription {
            let now = self
                .cluster
                .topic(t, false)
                .await
                .ok()
                .map(|i| i.leaders.len() as i32);
            if now != m.counts.get(t).copied() {
                changed = true;
            }
        }
        if changed {
            tracing::debug!("subscribed topics changed; rebalancing");
            m.rejoin.store(true, Ordering::Release);
        }
    }

    /// Gives partitions without a position one: committed offset, else `auto.offset.reset`.
    async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        let missing: Vec<TopicPartition> = self
            .parts
            .iter()
            .filter(|(_, st)| st.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = match &self.config.group_id {
            Some(g) => group::committed(&self.cluster, g, &missing).await?,
            None => BTreeMap::new(),
        };
        for tp in missing {
            let pos = match committed.get(&tp) {
                Some(o) => *o,
                None => self.reset_offset(&tp).await?,
            };
            if let Some(st) = self.parts.get_mut(&tp) {
                st.position = Some(pos);
                st.fetch_offset = Some(pos);
            }
        }
        Ok(())
    }

    async fn reset_offset(&self, tp: &TopicPartition) -> Result<i64, ClientError> {
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => self.list_offset(tp, -2).await,
            OffsetReset::Latest => self.list_offset(tp, -1).await,
            OffsetReset::None => Err(ClientError::Config(format!(
                "no committed offset for {}-{} and auto.offset.reset=none",
                tp.0, tp.1
            ))),
        }
    }

    /// ListOffsets for one partition: -2 earliest, -1 latest, else by timestamp (-1 if none).
    async fn list_offset(&self, tp: &TopicPartition, ts: i64) -> Result<i64, ClientError> {
        let info = self.cluster.topic(&tp.0, false).await?;
        let leader = info.leaders.get(tp.1 as usize).copied().unwrap_or(-1);
        let conn = self.cluster.node(leader).await?;
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(i8::from(self.config.read_committed))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s(&tp.0)))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(tp.1)
                        .with_timestamp(ts),
                ])]);
        let (_, r): (i16, ListOffsetsResponse) = conn.call(ApiKey::ListOffsets, &req).await?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty ListOffsets response".into()))?;
        ClientError::check(p.error_code, format!("offsets of {}-{}", tp.0, tp.1))?;
        Ok(p.offset)
    }

    /// Sends a fetch to every leader with fetchable partitions and none in flight.
    async fn start_fetches(&mut self) {
        let mut by_node: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let candidates: Vec<(TopicPartition, i64)> = self
            .parts
            .iter()
            .filter(|(_, st)| !st.paused && !st.fetching && st.buffered == 0)
            .filter_map(|(tp, st)| st.fetch_offset.map(|p| (tp.clone(), p)))
            .collect();
        for (tp, pos) in candidates {
            let Ok(info) = self.cluster.topic(&tp.0, false).await else {
                continue;
            };
            let Some(&leader) = info.leaders.get(tp.1 as usize) else {
                continue;
            };
            if leader >= 0 && !self.nodes_fetching.contains(&leader) {
                by_node.entry(leader).or_default().push((tp, pos));
            }
        }
        // A fetch of only caught-up partitions long-polls (fetch.max.wait.ms)
        // and holds the node's next fetch back; while a buffered partition of
        // that node still has records on the broker, wait for it to drain and
        // fetch it together with them (that fetch returns at once).
        let mut lagging: HashSet<i32> = HashSet::new();
        for (tp, st) in &self.parts {
            if st.buffered > 0 && st.behind() {
                if let Ok(info) = self.cluster.topic(&tp.0, false).await {
                    if let Some(&leader) = info.leaders.get(tp.1 as usize) {
                        lagging.insert(leader);
                    }
                }
            }
        }
        by_node.retain(|node, list| {
            !lagging.contains(node)
                || list
                    .iter()
                    .any(|(tp, _)| self.parts.get(tp).is_some_and(PartState::behind))
        });
        for (node, list) in by_node {
            let conn = match self.cluster.node(node).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(node, error = %e, "cannot reach leader");
                    self.cluster.invalidate_all().await;
                    continue;
                }
            };
            let version = conn.version(ApiKey::Fetch).map(|v| v.min(12)).unwrap_or(4);
            let mut topics: BTreeMap<&str, Vec<fetch_request::FetchPartition>> = BTreeMap::new();
            for ((t, p), pos) in &list {
                topics.entry(t).or_default().push(
                    fetch_request::FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(*pos)
                        .with_partition_max_bytes(self.config.max_partition_fetch_bytes),
                );
            }
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.config.fetch_max_wait.as_millis() as i32)
                .with_min_bytes(self.config.fetch_min_bytes)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_isolation_level(i8::from(self.config.read_committed))
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            fetch_request::FetchTopic::default()
                                .with_topic(TopicName(s(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            for (tp, _) in &list {
                if let Some(st) = self.parts.get_mut(tp) {
                    st.fetching = true;
                }
            }
            self.nodes_fetching.insert(node);
            let tx = self.results_tx.clone();
            tokio::spawn(async move {
                let r = match conn.send(ApiKey::Fetch, version, &req).await {
                    Ok(p) => conn.wait::<FetchResponse>(p).await,
                    Err(e) => Err(e),
                };
                let _ = tx.send((node, list, r));
            });
        }
    }

    /// Takes a fetch response in: records of partitions still at the
    /// fetched position go to the buffer; errors reset or refresh.
    async fn absorb(&mut self, (node, list, result): FetchResult) {
        self.nodes_fetching.remove(&node);
        let wanted: HashMap<TopicPartition, i64> = list.into_iter().collect();
        for tp in wanted.keys() {
            if let Some(st) = self.parts.get_mut(tp) {
                st.fetching = false;
            }
        }
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(node, error = %e, "fetch failed");
                self.cluster.invalidate_all().await;
                return;
            }
        };
        for t in r.responses {
            let topic = t.topic.0.to_string();
            let shared: Arc<str> = Arc::from(topic.as_str());
            for p in t.partitions {
                let tp = (topic.clone(), p.partition_index);
                let Some(&from) = wanted.get(&tp) else {
                    continue;
                };
                let current = self.parts.get(&tp).and_then(|st| st.fetch_offset);
                if current != Some(from) {
                    continue; // sought or revoked meanwhile
                }
                match ResponseError::try_from_code(p.error_code) {
                    None => {}
                    Some(ResponseError::OffsetOutOfRange) => {
                        match self.reset_offset(&tp).await {
                            Ok(o) => {
                                if let Some(st) = self.parts.get_mut(&tp) {
                                    st.position = Some(o);
                                    st.fetch_offset = Some(o);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "offset out of range")
                            }
                        }
                        continue;
                    }
                    Some(e) => {
                        tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "fetch error; refreshing metadata");
                        self.cluster.invalidate(&tp.0).await;
                        continue;
                    }
                }
                let end = if self.config.read_committed && p.last_stable_offset >= 0 {
                    p.last_stable_offset
                } else {
                    p.high_watermark
                };
                if let Some(st) = self.parts.get_mut(&tp) {
                    st.readable_end = Some(end);
                }
                let Some(data) = p.records.filter(|d| !d.is_empty()) else {
                    continue;
                };
                let aborted: Option<Vec<(i64, i64)>> = self.config.read_committed.then(|| {
                    p.aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect()
                });
                match records::decode(&shared, tp.1, &data, from, aborted.as_deref()) {
                    Ok((recs, next)) => {
                        if let Some(st) = self.parts.get_mut(&tp) {
                            st.fetch_offset = Some(next.max(from));
                            if recs.is_empty() {
                                // Only control or aborted batches: nothing to hand out, move on.
                                st.position = st.fetch_offset;
                            }
                            st.buffered += recs.len();
                        }
                        self.buffered.extend(recs);
                    }
                    Err(e) => {
                        tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "undecodable records")
                    }
                }
            }
        }
    }
}

/// Calls `f` with (partition, count, last offset) for each run of
/// consecutive records of one partition (fetches add a partition's records
/// together, so runs are long and lookups few).
fn for_each_run<'a>(
    records: impl IntoIterator<Item = &'a ConsumerRecord>,
    mut f: impl FnMut(TopicPartition, usize, i64),
) {
    let mut run: Option<(&'a ConsumerRecord, usize, i64)> = None;
    for r in records {
        match &mut run {
            Some((first, n, last)) if first.partition == r.partition && first.topic == r.topic => {
                *n += 1;
                *last = r.offset;
            }
            _ => {
                if let Some((first, n, last)) = run.take() {
                    f((first.topic.to_string(), first.partition), n, last);
                }
                run = Some((r, 1, r.offset));
            }
        }
    }
    if let Some((first, n, last)) = run {
        f((first.topic.to_string(), first.partition), n, last);
    }
}

#[cfg(test)]
mod commit_tests {
    use super::*;

    /// A broker with a 2-partition topic "t"; keep the directory and the
    /// handle alive for the test's length.
    async fn broker() -> (tempfile::TempDir, strom_broker::ServerHandle, String) {
        let dir = tempfile::tempdir().expect("dir");
        let server =
            crate::test_broker::start(dir.path(), &[("group.initial.rebalance.delay.ms", "0")])
                .await;
        let addr = server.local_addr.to_string();
        topic(&addr).await;
        (dir, server, addr)
    }

    /// Commits five offsets of t-0 (1 to 5); returns the FindCoordinator
    /// requests the commits made.
    async fn commit_five(c: &mut Consumer) -> u64 {
        let before = c.cluster.coordinator_lookups();
        for i in 1..=5 {
            c.commit_offsets(&[(("t".to_string(), 0), i)])
                .await
                .expect("commit");
        }
        c.cluster.coordinator_lookups() - before
    }

    async fn topic(addr: &str) {
        let mut admin = crate::Admin::connect(addr, Duration::from_secs(5))
            .await
            .expect("admin");
        admin
            .create_topic("t", 2, -1, &Default::default())
            .await
            .expect("topic");
    }

    fn config(addr: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
        let mut c = ConsumerConfig::new(addr);
        for (k, v) in [("group.id", "commits"), ("heartbeat.interval.ms", "100")]
            .iter()
            .chain(extra)
        {
            c.set(k, v).expect("valid");
        }
        c
    }

    /// A KIP-848 member commits through the coordinator its heartbeats
    /// found: no FindCoordinator per commit.
    #[tokio::test]
    async fn a_kip848_member_commits_without_finding_the_coordinator_again() {
        let (_dir, _server, addr) = broker().await;
        let mut c =
            Consumer::new(config(&addr, &[("group.protocol", "consumer")])).expect("consumer");
        c.subscribe(&["t"]).await.expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.assignment().len() < 2 {
            assert!(Instant::now() < deadline, "never assigned");
            c.poll(Duration::from_millis(50)).await.expect("poll");
        }
        assert_eq!(commit_five(&mut c).await, 0);
        let committed = c
            .committed(&[("t".to_string(), 0)])
            .await
            .expect("committed");
        assert_eq!(committed.get(&("t".to_string(), 0)), Some(&5));
    }

    /// A consumer with assigned partitions (no membership) finds the
    /// coordinator for its first commit and keeps it.
    #[tokio::test]
    async fn an_assigned_consumer_finds_the_coordinator_once() {
        let (_dir, _server, addr) = broker().await;
        let mut c = Consumer::new(config(&addr, &[])).expect("consumer");
        c.assign(vec![("t".to_string(), 0)]).await.expect("assign");
        assert_eq!(commit_five(&mut c).await, 1);
    }
}
