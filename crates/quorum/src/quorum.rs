//! [`Quorum`]: one running node of the metadata quorum.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::QuorumConfig;
use crate::log_store::{LogStore, Progress};
use crate::rpc::{self, Network, Request, Response, TimesMap};
use crate::service::{ForwardRefused, LeaderService, ServiceSlot};
use crate::state_machine::{SmStore, StateMachine};
use crate::types::{Node, Payload, Raft};
use crate::{DiskError, MAX_ENTRY_BYTES};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The configuration is inconsistent.
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    /// A file in the quorum directory could not be read or written, or is damaged.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The broker's state machine rejected the stored snapshot.
    #[error("restoring the metadata snapshot failed: {0}")]
    Restore(String),
    /// The RPC listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a proposal (or membership change) was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader; `leader` is the one it knows of, if any (Kafka's
    /// `NOT_LEADER_OR_FOLLOWER` with the current leader hint).
    #[error("not the quorum leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's node id, if known.
        leader: Option<u64>,
    },
    /// The entry is larger than [`MAX_ENTRY_BYTES`].
    #[error("entry of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The entry's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The node is shutting down or has stopped after a fatal error.
    #[error("the quorum node has stopped: {0}")]
    Stopped(String),
    /// Anything else openraft reported.
    #[error("quorum: {0}")]
    Other(String),
}

/// One replica's replication state, as Kafka's `DescribeQuorum` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDescription {
    /// The node id.
    pub node_id: u64,
    /// One past the index of the last entry known to be on that replica; `None` if this node
    /// does not know (it is not the leader, or has not heard from the replica).
    pub log_end_offset: Option<u64>,
    /// When the leader last got a successful append (or heartbeat) answer, ms since the epoch.
    pub last_fetch_timestamp_ms: Option<u64>,
    /// When the replica last had everything the leader had, ms since the epoch.
    pub last_caught_up_timestamp_ms: Option<u64>,
}

/// The state of the quorum as this node sees it (Kafka's `DescribeQuorum` response). Complete
/// only on the leader; other nodes know the leader, the epoch and their own log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    /// The current leader, if known.
    pub leader_id: Option<u64>,
    /// The current term (Kafka's leader epoch).
    pub leader_epoch: u64,
    /// One past the last committed index; 0 when nothing is committed.
    pub high_watermark: u64,
    /// The voters, by id.
    pub voters: Vec<ReplicaDescription>,
    /// The observers (learners), by id.
    pub observers: Vec<ReplicaDescription>,
}

/// Refusal of a [`Request::Join`] (also the result of [`Quorum::add_observer`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum JoinRefused {
    NotLeader(Option<u64>),
    Failed(String),
}

/// A running quorum node. Call [`Quorum::shutdown`] to stop it.
pub struct Quorum {
    raft: Raft,
    node_id: u64,
    leader_rx: watch::Receiver<Option<u64>>,
    progress: Arc<Progress>,
    times: TimesMap,
    service: ServiceSlot,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QuorumError> + Send + 'static,
) -> Result<T, QuorumError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?
}

impl Quorum {
    /// Opens the files in `cfg.dir`, restores `sm` from the snapshot, binds `cfg.listen` and
    /// starts the node. A voter whose directory is empty initialises the cluster with
    /// `cfg.voters` (every voter may do this: they all propose the same first entry); a node not
    /// among the voters asks the voters' leader to add it as an observer.
    ///
    /// Returns once the entries this node already knew committed are applied to `sm`; a single
    /// voter also waits (up to a few election timeouts) until it leads, so it can take proposals.
    pub async fn start(cfg: QuorumConfig, sm: impl StateMachine) -> Result<Quorum, QuorumError> {
        let raft_cfg = Arc::new(cfg.raft_config()?);
        let progress = Arc::new(Progress::default());
        let (dir, p) = (cfg.dir.clone(), progress.clone());
        let log = blocking(move || Ok(LogStore::open(&dir, p)?)).await?;
        let dir = cfg.dir.clone();
        let sm_store = blocking(move || SmStore::open(&dir, Box::new(sm))).await?;
        let pristine = log.is_pristine();
        let committed_at_open = progress.committed();
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| QuorumError::Bind {
                addr: cfg.listen,
                source,
            })?;
        // Port 0 binds any free port; observers give the leader the port they got.
        let mut cfg = cfg;
        if let Ok(local) = listener.local_addr() {
            cfg.listen = local;
        }
        let times = TimesMap::default();
        let network = Network {
            times: times.clone(),
            progress: progress.clone(),
        };
        let raft = Raft::new(cfg.node_id, raft_cfg, network, log, sm_store)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let service = ServiceSlot::default();
        let mut tasks = vec![tokio::spawn(rpc::serve(
            listener,
            raft.clone(),
            cfg.node_id,
            service.clone(),
        ))];
        tracing::info!(node_id = cfg.node_id, listen = %cfg.listen, voter = cfg.is_voter(), "quorum node started");

        if cfg.is_voter() && pristine {
            let members: BTreeMap<u64, Node> = cfg
                .voters
                .iter()
                .map(|(id, a)| {
                    (
                        *id,
                        Node {
                            addr: a.to_string(),
                        },
                    )
                })
                .collect();
            match raft.initialize(members).await {
                Ok(()) => {
                    tracing::info!(voters = ?cfg.voters.keys().collect::<Vec<_>>(), "initialised the metadata quorum")
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(QuorumError::Raft(e.to_string())),
            }
        }
        if !pristine {
            warn_if_voters_changed(&raft, &cfg);
        }
        if !cfg.is_voter() {
            tasks.push(tokio::spawn(join_as_observer(raft.clone(), cfg.clone())));
        }

        let (leader_tx, leader_rx) = watch::channel(None);
        let mut metrics = raft.metrics();
        tasks.push(tokio::spawn(async move {
            loop {
                let leader = metrics.borrow_and_update().current_leader;
                leader_tx.send_if_modified(|l| std::mem::replace(l, leader) != leader);
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        }));

        let quorum = Quorum {
            raft,
            node_id: cfg.node_id,
            leader_rx,
            progress,
            times,
            service,
            tasks,
        };
        let wait = Duration::from_millis(cfg.election_timeout_ms.1 * 5);
        if let Some(c) = committed_at_open {
            quorum.wait_applied(c, wait).await;
        }
        if cfg.voters.len() == 1 && cfg.is_voter() {
            let id = cfg.node_id;
            if let Err(e) = quorum
                .raft
                .wait(Some(wait))
                .metrics(|m| m.current_leader == Some(id), "self leader")
                .await
            {
                tracing::warn!(error = %e, "single voter did not become leader in time");
            }
        }
        Ok(quorum)
    }

    async fn wait_applied(&self, index: u64, timeout: Duration) {
        let res = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.last_applied.is_some_and(|l| l.index >= index),
                "applied committed",
            )
            .await;
        if let Err(e) = res {
            tracing::warn!(index, error = %e, "committed entries not yet re-applied");
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Appends `entry` to the log and waits until it is committed and applied to this node's
    /// state machine; returns its index. Only the leader accepts proposals.
    pub async fn propose(&self, entry: Vec<u8>) -> Result<u64, ProposeError> {
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(ProposeError::TooLarge {
                size: entry.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        match self.raft.client_write(Payload(entry)).await {
            Ok(resp) => Ok(resp.log_id.index),
            Err(e) => Err(write_error(e)),
        }
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// A receiver that sees every leader change.
    pub fn subscribe_leader(&self) -> watch::Receiver<Option<u64>> {
        self.leader_rx.clone()
    }

    /// The quorum's state as Kafka's `DescribeQuorum` reports it.
    pub fn describe(&self) -> QuorumDescription {
        let m = self.raft.metrics().borrow().clone();
        let times = self.times.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let is_leader = m.current_leader == Some(self.node_id);
        let now = rpc::now_ms();
        let replica = |id: u64| {
            if id == self.node_id {
                return ReplicaDescription {
                    node_id: id,
                    log_end_offset: Some(self.progress.last_index().map_or(0, |i| i + 1)),
                    last_fetch_timestamp_ms: is_leader.then_some(now),
                    last_caught_up_timestamp_ms: is_leader.then_some(now),
                };
            }
            let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned());
            let t = if is_leader {
                times.get(&id).copied().unwrap_or_default()
            } else {
                Default::default()
            };
            ReplicaDescription {
                node_id: id,
                log_end_offset: matched.map(|l| l.map_or(0, |l| l.index + 1)),
                last_fetch_timestamp_ms: t.last_fetch_ms,
                last_caught_up_timestamp_ms: t.last_caught_up_ms,
            }
        };
        let membership = m.membership_config.membership();
        QuorumDescription {
            leader_id: m.current_leader,
            leader_epoch: m.current_term,
            high_watermark: self.progress.committed().map_or(0, |c| c + 1),
            voters: membership.voter_ids().map(replica).collect(),
            observers: membership.learner_ids().map(replica).collect(),
        }
    }

    /// Adds a broker-only node that receives the log without voting (a Raft learner). Only the
    /// leader can do this; an observer started with [`Quorum::start`] asks for it by itself.
    pub async fn add_observer(&self, node_id: u64, addr: SocketAddr) -> Result<(), ProposeError> {
        match join(&self.raft, node_id, addr.to_string()).await {
            Ok(()) => Ok(()),
            Err(JoinRefused::NotLeader(leader)) => Err(ProposeError::NotLeader { leader }),
            Err(JoinRefused::Failed(e)) => Err(ProposeError::Other(e)),
        }
    }

    /// Sets the service this node runs requests on while it leads (see [`Quorum::call_leader`]).
    pub fn set_leader_service(&self, service: LeaderService) {
        self.service.set(service);
    }

    /// Runs `request` on the leader's service and returns its reply: here when this node
    /// leads, else over RPC to the leader, retried across elections and leader changes until
    /// `timeout`. Fails with [`ProposeError::NotLeader`] when no leader answered in time. A
    /// request may run twice when a reply is lost, so services should make requests safe to
    /// repeat.
    pub async fn call_leader(
        &self,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProposeError> {
        if request.len() > MAX_ENTRY_BYTES {
            return Err(ProposeError::TooLarge {
                size: request.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let req = Request::Forward(request);
        let mut conn: Option<(u64, TcpStream)> = None;
        let mut leader = None;
        while tokio::time::Instant::now() < deadline {
            let m = self.raft.metrics().borrow().clone();
            leader = m.current_leader;
            match leader {
                Some(id) if id == self.node_id => {
                    if let (Some(f), Request::Forward(bytes)) = (self.service.get(), &req) {
                        // A leader cut off from its quorum never commits: give up in time.
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        return tokio::time::timeout(left, f(bytes.clone()))
                            .await
                            .map_err(|_| ProposeError::NotLeader { leader });
                    }
                }
                Some(id) => {
                    let addr = m
                        .membership_config
                        .membership()
                        .get_node(&id)
                        .map(|n| n.addr.clone());
                    if let Some(addr) = addr {
                        let mut stream = match conn.take() {
                            Some((to, s)) if to == id => Some(s),
                            _ => None,
                        };
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        match rpc::call_once(&mut stream, &addr, &req, left).await {
                            Ok(Response::Forward(Ok(reply))) => return Ok(reply),
                            Ok(Response::Forward(Err(ForwardRefused::NotLeader(_))))
                            | Ok(Response::Forward(Err(ForwardRefused::NoService))) => {}
                            Ok(_) | Err(_) => {
                                tracing::debug!(leader = id, %addr, "leader unreachable for a forwarded request")
                            }
                        }
                        conn = stream.map(|s| (id, s));
                    }
                }
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ProposeError::NotLeader { leader })
    }

    /// Stops the node: no more votes, replication or applies. The files stay for a restart.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "quorum shutdown");
        }
        tracing::info!(node_id = self.node_id, "quorum node stopped");
    }
}

impl Drop for Quorum {
    /// Dropping without [`Quorum::shutdown`] stops the listener and the helper tasks; openraft's
    /// own task ends once its last handle is gone.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, Node>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            ProposeError::Other(c.to_string())
        }
        RaftError::Fatal(f) => ProposeError::Stopped(f.to_string()),
    }
}

/// The stored membership wins over `controller.quorum.voters` once the quorum exists; say so
/// when they differ.
fn warn_if_voters_changed(raft: &Raft, cfg: &QuorumConfig) {
    let stored: Vec<u64> = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let configured: Vec<u64> = cfg.voters.keys().copied().collect();
    if !stored.is_empty() && stored != configured {
        tracing::warn!(
            ?stored,
            ?configured,
            "controller.quorum.voters differs from the stored quorum membership; the stored one is used"
        );
    }
}

/// Adds `node_id` as a learner if this node leads.
pub(crate) async fn join(raft: &Raft, node_id: u64, addr: String) -> Result<(), JoinRefused> {
    let m = raft.metrics().borrow().clone();
    let known = m.membership_config.membership().get_node(&node_id).cloned();
    if known.as_ref().is_some_and(|n| n.addr == addr) {
        return Ok(());
    }
    let node = Node { addr: addr.clone() };
    let added = if known.is_some() {
        // Restarted on another port: the leader replicates to the new
        // address (adding a known node would keep the old one).
        raft.change_membership(
            ChangeMembers::SetNodes(BTreeMap::from([(node_id, node)])),
            true,
        )
        .await
    } else {
        raft.add_learner(node_id, node, false).await
    };
    match added {
        Ok(_) => {
            tracing::info!(node_id, %addr, "added a quorum observer");
            Ok(())
        }
        Err(e) => match write_error(e) {
            ProposeError::NotLeader { leader } => Err(JoinRefused::NotLeader(leader)),
            other => Err(JoinRefused::Failed(other.to_string())),
        },
    }
}

/// Until the membership lists this node, asks the voters (the leader first, when known) to add
/// it as an observer.
async fn join_as_observer(raft: Raft, cfg: QuorumConfig) {
    let me = Request::Join {
        node_id: cfg.node_id,
        addr: cfg.listen.to_string(),
    };
    let mut hint: Option<u64> = None;
    loop {
        // Known at this address: a restart may have bound another port.
        let known = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&cfg.node_id)
            .is_some_and(|n| n.addr == cfg.listen.to_string());
        if known {
            tracing::info!(node_id = cfg.node_id, "this node is a quorum observer");
            return;
        }
        let mut order: Vec<(u64, SocketAddr)> = cfg.voters.iter().map(|(i, a)| (*i, *a)).collect();
        order.sort_by_key(|(id, _)| Some(*id) != hint);
        for (id, addr) in order {
            let mut conn: Option<TcpStream> = None;
            match rpc::call_once(&mut conn, &addr.to_string(), &me, Duration::from_secs(5)).await {
                Ok(Response::Join(Ok(()))) => break,
                Ok(Response::Join(Err(JoinRefused::NotLeader(l)))) => hint = l.or(hint),
                Ok(Response::Join(Err(JoinRefused::Failed(e)))) => {
                    tracing::debug!(voter = id, error = %e, "join refused")
                }
                Ok(_) | Err(_) => tracing::debug!(voter = id, "voter unreachable while joining"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
