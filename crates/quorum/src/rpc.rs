//! Node-to-node RPC: length-prefixed postcard frames over TCP.
//!
//! A frame is `[len: u32 BE][postcard payload]`, at most [`MAX_FRAME`] bytes (checked before
//! allocating). A connection carries one request at a time: the caller writes a [`Request`] and
//! reads its [`Response`]. Each replication stream, and each vote round, has its own
//! connection, opened on first use and reopened after any error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::log_store::Progress;
use crate::service::{ForwardRefused, ServiceSlot};
use crate::types::{Node, Raft, TypeConfig};

/// Largest frame either side accepts: replication batches are cut at 4 MiB of entries and
/// snapshots are sent in 1 MiB chunks, so this leaves ample headroom.
pub(crate) const MAX_FRAME: usize = 16 * 1024 * 1024;
/// How long a peer may take to send the rest of a frame once it has started one.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors of the frame layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("timed out")]
    Timeout,
}

/// Writes `msg` as one frame.
pub(crate) async fn write_frame<T: Serialize>(
    stream: &mut TcpStream,
    msg: &T,
) -> Result<(), FrameError> {
    let body = postcard::to_allocvec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await?;
    Ok(())
}

/// Reads one frame; waits indefinitely for its first byte, then at most [`FRAME_TIMEOUT`].
pub(crate) async fn read_frame<T: DeserializeOwned>(
    stream: &mut TcpStream,
) -> Result<T, FrameError> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head[..1]).await?;
    let rest = async {
        stream.read_exact(&mut head[1..]).await?;
        let len = u32::from_be_bytes(head) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        Ok(postcard::from_bytes(&body)?)
    };
    tokio::time::timeout(FRAME_TIMEOUT, rest)
        .await
        .map_err(|_| FrameError::Timeout)?
}

/// A request from one quorum node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// An observer asking the leader to add it as a learner.
    Join {
        node_id: u64,
        addr: String,
    },
    /// A request for the leader's service (see [`crate::service`]).
    Forward(Vec<u8>),
}

/// The answer to a [`Request`], same variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Join(Result<(), crate::quorum::JoinRefused>),
    Forward(Result<Vec<u8>, ForwardRefused>),
}

/// Accepts peer connections on `listener` and serves them until the task is aborted, which
/// also ends every connection it accepted (they live in its `JoinSet`).
pub(crate) async fn serve(listener: TcpListener, raft: Raft, node_id: u64, service: ServiceSlot) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "quorum accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (raft, service) = (raft.clone(), service.clone());
        conns.spawn(async move {
            if let Err(e) = serve_conn(stream, raft, node_id, service).await {
                tracing::debug!(%peer, error = %e, "quorum peer connection closed");
            }
        });
    }
}

async fn serve_conn(
    mut stream: TcpStream,
    raft: Raft,
    node_id: u64,
    service: ServiceSlot,
) -> Result<(), FrameError> {
    loop {
        let req: Request = read_frame(&mut stream).await?;
        let resp = match req {
            Request::AppendEntries(r) => Response::AppendEntries(raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
            Request::Join { node_id, addr } => {
                Response::Join(crate::quorum::join(&raft, node_id, addr).await)
            }
            Request::Forward(req) => {
                let leader = raft.metrics().borrow().current_leader;
                Response::Forward(match (leader == Some(node_id), service.get()) {
                    (false, _) => Err(ForwardRefused::NotLeader(leader)),
                    (true, None) => Err(ForwardRefused::NoService),
                    (true, Some(f)) => Ok(f(req).await),
                })
            }
        };
        tokio::time::timeout(FRAME_TIMEOUT, write_frame(&mut stream, &resp))
            .await
            .map_err(|_| FrameError::Timeout)??;
    }
}

/// When the leader last heard from each replica, for `DescribeQuorum`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReplicaTimes {
    /// Last successful append-entries (including heartbeats), ms since the epoch.
    pub last_fetch_ms: Option<u64>,
    /// Last time the replica acknowledged everything the leader had, ms since the epoch.
    pub last_caught_up_ms: Option<u64>,
}

pub(crate) type TimesMap = Arc<Mutex<BTreeMap<u64, ReplicaTimes>>>;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Makes a [`Peer`] per replication stream or vote round.
pub(crate) struct Network {
    pub(crate) times: TimesMap,
    pub(crate) progress: Arc<Progress>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &Node) -> Peer {
        Peer {
            target,
            node: node.clone(),
            conn: None,
            times: self.times.clone(),
            progress: self.progress.clone(),
        }
    }
}

/// A client connection to one peer.
pub(crate) struct Peer {
    target: u64,
    node: Node,
    conn: Option<TcpStream>,
    times: TimesMap,
    progress: Arc<Progress>,
}

/// Why a call to a peer failed.
pub(crate) enum CallError {
    Unreachable(std::io::Error),
    Network(FrameError),
}

impl<E: std::error::Error> From<CallError> for RPCError<u64, Node, E> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

/// Sends one request to `addr`, connecting first if needed; used by peers and by observers
/// joining.
pub(crate) async fn call_once(
    conn: &mut Option<TcpStream>,
    addr: &str,
    req: &Request,
    ttl: Duration,
) -> Result<Response, CallError> {
    if conn.is_none() {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(CallError::Unreachable(e)),
            Err(_) => {
                return Err(CallError::Unreachable(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        *conn = Some(stream);
    }
    let Some(stream) = conn.as_mut() else {
        return Err(CallError::Network(FrameError::Timeout));
    };
    let exchange = async {
        write_frame(stream, req).await?;
        read_frame::<Response>(stream).await
    };
    let res = match tokio::time::timeout(ttl, exchange).await {
        Ok(r) => r,
        Err(_) => Err(FrameError::Timeout),
    };
    if res.is_err() {
        // The stream may hold half a frame: never reuse it.
        *conn = None;
    }
    res.map_err(CallError::Network)
}

pub(crate) fn unexpected() -> CallError {
    CallError::Network(FrameError::Io(std::io::Error::other(
        "response of the wrong kind",
    )))
}

impl Peer {
    async fn call(&mut self, req: Request, option: &RPCOption) -> Result<Response, CallError> {
        call_once(&mut self.conn, &self.node.addr, &req, option.hard_ttl()).await
    }

    fn record(&self, caught_up: bool) {
        let now = now_ms();
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        let t = times.entry(self.target).or_default();
        t.last_fetch_ms = Some(now);
        if caught_up {
            t.last_caught_up_ms = Some(now);
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Node, RaftError<u64>>> {
        let leader_last = self.progress.last_index();
        let sent_upto = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|l| l.index));
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(Ok(r)) => {
                let ok = matches!(r, AppendEntriesResponse::Success);
                if ok || matches!(r, AppendEntriesResponse::PartialSuccess(_)) {
                    self.record(ok && sent_upto >= leader_last);
                }
                Ok(r)
            }
            Response::AppendEntries(Err(e)) => Err(RPCError::RemoteError(
                RemoteError::new_with_node(self.target, self.node.clone(), e),
            )),
            _ => Err(unexpected().into()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Node, RaftError<u64, InstallSnapshotError>>,
    > {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(Ok(r)) => Ok(r),
            Response::InstallSnapshot(Err(e)) => Err(RPCError::RemoteError(
                RemoteError::new_with_node(self.target, self.node.clone(), e),
            )),
            _ => Err(unexpected().into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Node, RaftError<u64>>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))),
            _ => Err(unexpected().into()),
        }
    }
}
