//! Group membership under KIP-848 (`group.protocol=consumer`): one
//! ConsumerGroupHeartbeat loop replaces JoinGroup/SyncGroup/Heartbeat. The
//! broker computes assignments; the member reports the partitions it owns,
//! and gives up revoked ones before the broker hands them to someone else.
//!
//! The loop runs as a task and shares its view with the consumer: the
//! consumer takes each new assignment during `poll`, reconciles it (commit
//! and revoke, then assign) and reports back what it owns, which the next
//! heartbeat (sent at once) tells the broker.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use uuid::Uuid;

use super::config::ConsumerConfig;
use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::mux::Mux;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// What the heartbeat loop and the consumer share.
#[derive(Debug, Default)]
struct Shared {
    member_id: String,
    epoch: i32,
    subscription: Vec<String>,
    /// Partitions this member owns, as the broker knows topics (by id).
    owned: Vec<(Uuid, i32)>,
    /// The newest assignment not yet taken by the consumer.
    target: Option<Vec<(Uuid, i32)>>,
    /// Fenced: the partitions are someone else's now (rejoin at epoch 0).
    lost: bool,
    /// A fatal error for the next `poll`.
    error: Option<ClientError>,
    /// True once a heartbeat succeeded (joined).
    joined: bool,
    /// The group coordinator the heartbeats go to, found once and kept
    /// until it moves: commits use it too, so a commit is one round trip,
    /// not a FindCoordinator and then the commit.
    coordinator: Option<Arc<Mux>>,
}

/// This consumer's membership of a KIP-848 group.
#[derive(Debug)]
pub(super) struct Member {
    pub group_id: String,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    /// Signalled when there is a change for the consumer to take.
    pub changed: Arc<Notify>,
    cluster: Arc<Cluster>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `poll` has to do for the group.
#[derive(Debug)]
pub(super) enum Change {
    /// Nothing new.
    None,
    /// Move to this assignment (topic names resolved).
    Assign(Vec<(String, i32)>),
    /// Fenced: drop every partition without committing.
    Lost,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Fields are plain values updated whole; a panic elsewhere leaves them consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Member {
    /// Starts the heartbeat loop: the first heartbeat (epoch 0) joins.
    pub fn join(
        cluster: Arc<Cluster>,
        config: &ConsumerConfig,
        group_id: &str,
        topics: &[String],
    ) -> Member {
        let shared = Arc::new(Mutex::new(Shared {
            member_id: Uuid::new_v4().to_string(),
            subscription: topics.to_vec(),
            ..Default::default()
        }));
        let wake = Arc::new(Notify::new());
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(heartbeat_loop(
            cluster.clone(),
            config.clone(),
            group_id.to_string(),
            shared.clone(),
            (wake.clone(), changed.clone()),
        ));
        Member {
            group_id: group_id.to_string(),
            shared,
            wake,
            changed,
            cluster,
            task,
        }
    }

    /// The member id and epoch that commits carry.
    pub fn identity(&self) -> (String, i32) {
        let st = lock(&self.shared);
        (st.member_id.clone(), st.epoch)
    }

    /// The group coordinator the heartbeats use, while its connection is open.
    pub fn coordinator(&self) -> Option<Arc<Mux>> {
        lock(&self.shared)
            .coordinator
            .clone()
            .filter(|c| !c.is_closed())
    }

    /// Drops the known coordinator (it answered that it no longer is one):
    /// the next heartbeat or commit finds it again.
    pub fn forget_coordinator(&self) {
        lock(&self.shared).coordinator = None;
    }

    /// True once the broker accepted the member.
    pub fn joined(&self) -> bool {
        lock(&self.shared).joined
    }

    /// Takes the next change for the consumer (or a fatal error).
    pub async fn next_change(&self) -> Result<Change, ClientError> {
        let target = {
            let mut st = lock(&self.shared);
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            if std::mem::take(&mut st.lost) {
                st.target = None;
                return Ok(Change::Lost);
            }
            match st.target.take() {
                Some(t) => t,
                None => return Ok(Change::None),
            }
        };
        let mut out = Vec::with_capacity(target.len());
        for (id, p) in &target {
            let mut name = self.cluster.topic_name(*id).await;
            if name.is_none() {
                let subs = lock(&self.shared).subscription.clone();
                let _ = self.cluster.refresh(&subs, false).await;
                name = self.cluster.topic_name(*id).await;
            }
            match name {
                Some(n) => out.push((n, *p)),
                None => {
                    // Metadata does not know the topic yet: try again next poll.
                    let mut st = lock(&self.shared);
                    st.target.get_or_insert(target);
                    return Ok(Change::None);
                }
            }
        }
        Ok(Change::Assign(out))
    }

    /// Records what the consumer owns now and tells the broker at once.
    pub async fn report_owned(&self, partitions: &[(String, i32)]) {
        let mut owned = Vec::with_capacity(partitions.len());
        for (t, p) in partitions {
            if let Ok(info) = self.cluster.topic(t, false).await {
                owned.push((info.id, *p));
            }
        }
        lock(&self.shared).owned = owned;
        self.wake.notify_one();
    }

    /// Leaves the group (epoch -1, or -2 for a static member that will come back).
    pub async fn leave(&self, config: &ConsumerConfig) {
        self.task.abort();
        let (member_id, epoch) = self.identity();
        if epoch <= 0 && !self.joined() {
            return;
        }
        let leave_epoch = if config.group_instance_id.is_some() {
            -2
        } else {
            -1
        };
        let coordinator = match self.coordinator() {
            Some(c) => c,
            None => match self.cluster.coordinator(&self.group_id, 0).await {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group_id)))
            .with_member_id(s(&member_id))
            .with_member_epoch(leave_epoch)
            .with_instance_id(config.group_instance_id.as_deref().map(s));
        let _ = coordinator
            .call::<_, ConsumerGroupHeartbeatResponse>(ApiKey::ConsumerGroupHeartbeat, &req)
            .await;
    }
}

/// Whether an error means "find the coordinator again and retry".
pub(super) fn coordinator_moved(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
    )
}

async fn heartbeat_loop(
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    group_id: String,
    shared: Arc<Mutex<Shared>>,
    (wake, changed): (Arc<Notify>, Arc<Notify>),
) {
    let mut interval = config.heartbeat_interval;
    let retry = Duration::from_millis(200);
    loop {
        let known = lock(&shared).coordinator.clone().filter(|c| !c.is_closed());
        let coordinator = match known {
            Some(c) => c,
            None => match cluster.coordinator(&group_id, 0).await {
                Ok(c) => {
                    lock(&shared).coordinator = Some(c.clone());
                    c
                }
                Err(e) => {
                    tracing::debug!(group = %group_id, error = %e, "no group coordinator yet");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            },
        };
        let req = {
            let st = lock(&shared);
            let mut by_topic: std::collections::BTreeMap<Uuid, Vec<i32>> = Default::default();
            for (id, p) in &st.owned {
                by_topic.entry(*id).or_default().push(*p);
            }
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s(&group_id)))
                .with_member_id(s(&st.member_id))
                .with_member_epoch(st.epoch)
                .with_instance_id(config.group_instance_id.as_deref().map(s))
                .with_rebalance_timeout_ms(
                    config.max_poll_interval.as_millis().min(i32::MAX as u128) as i32,
                )
                .with_subscribed_topic_names(Some(
                    st.subscription.iter().map(|t| TopicName(s(t))).collect(),
                ))
                .with_server_assignor(config.group_remote_assignor.as_deref().map(s))
                .with_topic_partitions(Some(
                    by_topic
                        .into_iter()
                        .map(|(id, ps)| {
                            consumer_group_heartbeat_request::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                ))
        };
        let wait = match coordinator
            .call::<_, ConsumerGroupHeartbeatResponse>(ApiKey::ConsumerGroupHeartbeat, &req)
            .await
        {
            Err(e) => {
                tracing::debug!(group = %group_id, error = %e, "heartbeat failed; retrying");
                lock(&shared).coordinator = None;
                retry
            }
            Ok((_, r)) => match ResponseError::try_from_code(r.error_code) {
                None => {
                    let mut st = lock(&shared);
                    if let Some(id) = r.member_id.as_ref().filter(|m| !m.is_empty()) {
                        st.member_id = id.to_string();
                    }
                    st.epoch = r.member_epoch;
                    st.joined = true;
                    if let Some(a) = r.assignment {
                        st.target = Some(
                            a.topic_partitions
                                .iter()
                                .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
                                .collect(),
                        );
                    }
                    if st.target.is_some() {
                        changed.notify_one();
                    }
                    if r.heartbeat_interval_ms > 0 {
                        interval = Duration::from_millis(r.heartbeat_interval_ms as u64);
                    }
                    interval
                }
                Some(ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId) => {
                    tracing::info!(group = %group_id, code = r.error_code, "fenced from the group; rejoining");
                    let mut st = lock(&shared);
                    st.epoch = 0;
                    st.owned.clear();
                    st.target = None;
                    st.lost = true;
                    changed.notify_one();
                    Duration::ZERO
                }
                Some(e) if coordinator_moved(e) => {
                    lock(&shared).coordinator = None;
                    retry
                }
                Some(e) => {
                    lock(&shared).error = Some(ClientError::Kafka {
                        context: format!(
                            "group {group_id} (KIP-848){}",
                            r.error_message
                                .as_ref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                        error: e,
                    });
                    changed.notify_one();
                    return;
                }
            },
        };
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
}
