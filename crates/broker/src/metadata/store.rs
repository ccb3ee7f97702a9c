//! The metadata store: the broker's side of the metadata quorum. Batches of
//! metadata records are committed to the quorum's log (`strom-quorum`, on
//! openraft); every committed batch, on every node, is applied to the
//! [`MetadataImage`] by [`ImageMachine`] and published to readers.
//!
//! The quorum runs on a runtime of its own (one thread, `strom-metadata`),
//! so committing works the same from async handlers, the blocking pool and
//! start-up code: the caller's thread waits for the commit, and no runtime
//! ever blocks on itself.
//!
//! On one node (`controller.quorum.voters` empty, the default) the node is
//! its own single voter and its log lives in `<data dir>/__cluster_metadata-0/`,
//! as KRaft's does.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strom_quorum::{
    ProposeError, Quorum, QuorumConfig, QuorumDescription, QuorumError, StateMachine,
};
use thiserror::Error;
use tokio::sync::watch;

use super::controller::{Controller, ControllerReply, ControllerRequest};
use super::image::{ImageChanges, MetadataImage};
use super::records::{decode_batch, MetadataRecord};
use super::NodeId;
use crate::clock::SharedClock;

/// The controller's timers, from the broker's config.
#[derive(Debug, Clone, Copy)]
pub struct ControllerTimings {
    /// `broker.session.timeout.ms`: brokers silent this long are fenced.
    pub session: Duration,
    /// `controller.quorum.election.timeout.ms`: a quorum leader silent at
    /// least this long is replaced.
    pub election: Duration,
    /// `leader.imbalance.check.interval.seconds` when
    /// `auto.leader.rebalance.enable`: preferred replicas are given their
    /// leadership back this often.
    pub rebalance: Option<Duration>,
}

/// How long a change waits for the controller (an election included).
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory of the metadata log inside the data directory (KRaft's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";

/// Why metadata could not be read or committed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The quorum could not start (its files, its configuration).
    #[error("the metadata log cannot start: {0}")]
    Start(#[from] QuorumError),
    /// A batch was not committed.
    #[error("the metadata change was not committed: {0}")]
    Commit(#[from] ProposeError),
    /// The metadata runtime could not be made or has stopped.
    #[error("the metadata runtime is unavailable: {0}")]
    Runtime(String),
    /// The controller refused the change: it does not fit the cluster's
    /// metadata as the controller sees it (a name taken meanwhile, …).
    #[error("the controller refused the change: {0}")]
    Refused(String),
    /// The controller could not commit the change.
    #[error("the controller could not commit the change: {0}")]
    Controller(String),
}

/// What a node does with each applied batch's changes (the topics open and
/// remove their logs).
pub type ChangeListener = Arc<dyn Fn(&MetadataImage, &ImageChanges) + Send + Sync>;

/// The published image, swapped whole on every applied batch.
pub(super) type SharedImage = Arc<RwLock<Arc<MetadataImage>>>;

/// Changes applied before anyone listened are kept for the first listener.
enum Listener {
    Pending(Vec<ImageChanges>),
    Set(ChangeListener),
}

/// The broker's [`StateMachine`]: applies committed batches to the image.
struct ImageMachine {
    image: Arc<RwLock<Arc<MetadataImage>>>,
    applied: watch::Sender<u64>,
    listener: Arc<Mutex<Listener>>,
}

impl ImageMachine {
    fn publish(&self, next: MetadataImage, changes: ImageChanges) {
        let offset = next.offset;
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        let mut listener = self.listener.lock();
        match &mut *listener {
            Listener::Pending(p) => p.push(changes),
            Listener::Set(f) => f(&next, &changes),
        }
        drop(listener);
        self.applied.send_replace(offset);
    }
}

impl StateMachine for ImageMachine {
    fn apply(&mut self, index: u64, entry: &[u8]) {
        let batch = match decode_batch(entry) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(index, error = %e, "a committed metadata batch cannot be read; skipped");
                return;
            }
        };
        let current = self.image.read().clone();
        match current.apply(index, &batch) {
            Ok((next, changes)) => self.publish(next, changes),
            // Batches are checked against the image before they are proposed.
            Err(e) => {
                tracing::error!(index, error = %e, "a committed metadata batch does not fit the image; skipped")
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.image.read().to_snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let image = MetadataImage::from_snapshot(snapshot).map_err(|e| e.to_string())?;
        // Everything may have changed: listeners treat every partition as new.
        let changes = ImageChanges {
            created: image
                .topics()
                .iter()
                .flat_map(|t| (0..t.partitions.len() as i32).map(|i| t.key(i)))
                .collect(),
            ..Default::default()
        };
        self.publish(image, changes);
        Ok(())
    }
}

/// The metadata log and the image built from it.
pub struct MetadataStore {
    image: Arc<RwLock<Arc<MetadataImage>>>,
    applied: watch::Receiver<u64>,
    listener: Arc<Mutex<Listener>>,
    /// The quorum and its runtime; `None` once closed.
    running: Mutex<Option<(tokio::runtime::Runtime, Arc<Quorum>)>>,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore")
            .field("offset", &self.image.read().offset)
            .finish_non_exhaustive()
    }
}

/// Sends `req` to the controller, asking again (until `timeout`) while the
/// node that took it turns out not to lead.
pub(super) async fn call_controller(
    q: &Quorum,
    req: &ControllerRequest,
    timeout: Duration,
) -> Result<ControllerReply, MetadataError> {
    let bytes = postcard::to_allocvec(req).map_err(|e| MetadataError::Controller(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let reply = q.call_leader(bytes.clone(), left).await?;
        let reply: ControllerReply = postcard::from_bytes(&reply)
            .map_err(|e| MetadataError::Controller(format!("undecodable controller reply: {e}")))?;
        if reply != ControllerReply::NotLeader {
            return Ok(reply);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MetadataError::Controller(
                "no node led the metadata quorum in time".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `fut` on `rt` and waits for it on this thread, whatever runtime (if
/// any) this thread belongs to.
fn run_on<F>(rt: &tokio::runtime::Handle, fut: F) -> Result<F::Output, MetadataError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| MetadataError::Runtime("the metadata runtime stopped".into()))
}

impl MetadataStore {
    /// Opens the single node's metadata log in `data_dir`, replaying it into
    /// the image, and waits until this node leads its one-voter quorum.
    pub fn open_single(
        data_dir: &Path,
        node: NodeId,
        clock: SharedClock,
    ) -> Result<MetadataStore, MetadataError> {
        // One voter talks to nobody; its RPC listener takes any free loopback port.
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut cfg = QuorumConfig::single(
            u64::try_from(node.0).unwrap_or(0),
            listen,
            data_dir.join(METADATA_DIR),
        );
        // A lone voter has no one to wait for: elect it at once.
        cfg.election_timeout_ms = (150, 300);
        cfg.heartbeat_interval_ms = 50;
        Self::start(cfg, None, clock)
    }

    /// Opens this node's metadata log in `data_dir` as a member of the
    /// quorum of `voters` (Kafka's `controller.quorum.voters`): a voter when
    /// its id is among them, listening on `listen` (its controller
    /// listener), else an observer whose RPC listener takes a free port on
    /// `listen`'s host. Voters run the controller's timers (`timings`).
    pub fn open_cluster(
        data_dir: &Path,
        node: NodeId,
        voters: BTreeMap<u64, SocketAddr>,
        listen: SocketAddr,
        timings: ControllerTimings,
        clock: SharedClock,
    ) -> Result<MetadataStore, MetadataError> {
        let id = u64::try_from(node.0).unwrap_or(0);
        let mut cfg = QuorumConfig::new(id, voters, listen, data_dir.join(METADATA_DIR));
        // Kafka's controller.quorum.election.timeout.ms is the minimum; the
        // heartbeat stays well inside it.
        let min = (timings.election.as_millis() as u64).max(20);
        cfg.election_timeout_ms = (min, min * 2);
        cfg.heartbeat_interval_ms = (min / 5).max(5);
        Self::start(cfg, Some(timings), clock)
    }

    fn start(
        cfg: QuorumConfig,
        timings: Option<ControllerTimings>,
        clock: SharedClock,
    ) -> Result<MetadataStore, MetadataError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strom-metadata")
            .enable_all()
            .build()
            .map_err(|e| MetadataError::Runtime(e.to_string()))?;
        let image = Arc::new(RwLock::new(Arc::new(MetadataImage::default())));
        let (applied_tx, applied) = watch::channel(0);
        let listener = Arc::new(Mutex::new(Listener::Pending(Vec::new())));
        let machine = ImageMachine {
            image: image.clone(),
            applied: applied_tx,
            listener: listener.clone(),
        };
        let voter = cfg.is_voter();
        let quorum = match run_on(runtime.handle(), Quorum::start(cfg, machine)) {
            Ok(Ok(q)) => Arc::new(q),
            Ok(Err(e)) => {
                // Dropping a runtime may block, which async callers must not.
                runtime.shutdown_background();
                return Err(e.into());
            }
            Err(e) => {
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let controller = Arc::new(Controller::new(
            image.clone(),
            Arc::downgrade(&quorum),
            clock,
        ));
        let c = controller.clone();
        quorum.set_leader_service(Arc::new(move |req| {
            let c = c.clone();
            Box::pin(async move { c.handle(req).await })
        }));
        if let (Some(timings), true) = (timings, voter) {
            let c = Arc::downgrade(&controller);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    let Some(c) = c.upgrade() else { return };
                    c.fence_expired(timings.session).await;
                }
            });
            if let Some(every) = timings.rebalance {
                let c = Arc::downgrade(&controller);
                runtime.spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    // The first tick is at once: wait one interval first.
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let Some(c) = c.upgrade() else { return };
                        c.balance_leaders().await;
                    }
                });
            }
        }
        // The service holds the controller; the task above only a weak reference.
        drop(controller);
        Ok(MetadataStore {
            image,
            applied,
            listener,
            running: Mutex::new(Some((runtime, quorum))),
        })
    }

    /// Calls `f` with every batch's changes from now on, after handing it
    /// those applied before (with the current image), so none is missed.
    pub fn on_change(&self, f: ChangeListener) {
        let mut listener = self.listener.lock();
        if let Listener::Pending(pending) = &mut *listener {
            let image = self.image();
            for changes in pending.drain(..) {
                f(&image, &changes);
            }
        }
        *listener = Listener::Set(f);
    }

    /// Sends `req` to the controller (the quorum leader, wherever it is)
    /// and returns its reply. Blocks the calling thread.
    pub fn call(&self, req: &ControllerRequest) -> Result<ControllerReply, MetadataError> {
        self.call_within(req, CONTROLLER_TIMEOUT)
    }

    /// [`MetadataStore::call`], then (for a reply that committed a change)
    /// waits until this node's image has applied it, so a request that
    /// follows here sees the change. Blocks the calling thread.
    pub fn call_applied(&self, req: &ControllerRequest) -> Result<ControllerReply, MetadataError> {
        let reply = self.call(req)?;
        if let ControllerReply::Reassigned { offset, .. }
        | ControllerReply::Elected { offset, .. } = &reply
        {
            if let Err(e) = self.wait_applied(*offset) {
                tracing::warn!(error = %e, "a controller change committed but not yet applied here");
            }
        }
        Ok(reply)
    }

    /// [`MetadataStore::call`] giving up after `timeout`.
    pub fn call_within(
        &self,
        req: &ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, MetadataError> {
        let (rt, q) = self.running()?;
        let req = req.clone();
        run_on(&rt, async move { call_controller(&q, &req, timeout).await })?
    }

    /// [`MetadataStore::call`] for async callers: the exchange runs on the
    /// metadata runtime and is awaited from any other.
    pub async fn call_async(
        &self,
        req: ControllerRequest,
    ) -> Result<ControllerReply, MetadataError> {
        let (rt, q) = self.running()?;
        rt.spawn(async move { call_controller(&q, &req, CONTROLLER_TIMEOUT).await })
            .await
            .map_err(|e| MetadataError::Runtime(e.to_string()))?
    }

    /// Waits (up to the controller timeout) until this node's image has
    /// applied `offset`. Blocks the calling thread.
    pub fn wait_applied(&self, offset: u64) -> Result<(), MetadataError> {
        let (rt, _) = self.running()?;
        let mut rx = self.applied.clone();
        let waited = run_on(&rt, async move {
            tokio::time::timeout(CONTROLLER_TIMEOUT, rx.wait_for(|a| *a >= offset))
                .await
                .map(|r| r.is_ok())
        })?;
        match waited {
            Ok(true) => Ok(()),
            _ => Err(MetadataError::Controller(format!(
                "metadata offset {offset} was committed but not applied here in time"
            ))),
        }
    }

    /// Runs `fut` on the metadata runtime (the broker's heartbeats).
    pub fn spawn<F>(&self, fut: F) -> Option<tokio::task::JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.running.lock().as_ref().map(|(rt, _)| rt.spawn(fut))
    }

    /// The quorum and the image, for tasks on the metadata runtime (which
    /// must not use the blocking calls above).
    pub(super) fn handles(&self) -> Option<(Arc<Quorum>, SharedImage)> {
        let (_, q) = self.running().ok()?;
        Some((q, self.image.clone()))
    }

    fn running(&self) -> Result<(tokio::runtime::Handle, Arc<Quorum>), MetadataError> {
        match &*self.running.lock() {
            Some((rt, q)) => Ok((rt.handle().clone(), q.clone())),
            None => Err(MetadataError::Runtime(
                "the metadata store is closed".into(),
            )),
        }
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Commits `batch` through the controller and waits until this node's
    /// image shows it (so the caller's next [`MetadataStore::image`] does).
    /// Blocks the calling thread.
    pub fn commit(&self, batch: &[MetadataRecord]) -> Result<u64, MetadataError> {
        match self.call(&ControllerRequest::Commit(batch.to_vec()))? {
            ControllerReply::Committed { offset } => {
                self.wait_applied(offset)?;
                Ok(offset)
            }
            ControllerReply::Refused(m) => Err(MetadataError::Refused(m)),
            ControllerReply::Failed(m) => Err(MetadataError::Controller(m)),
            other => Err(MetadataError::Controller(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }

    /// The quorum's current leader: the active controller.
    pub fn controller_id(&self) -> Option<NodeId> {
        let (_, q) = self.running().ok()?;
        q.leader().and_then(|l| i32::try_from(l).ok()).map(NodeId)
    }

    /// What Kafka's DescribeQuorum reports, as this node sees it.
    pub fn describe(&self) -> Option<QuorumDescription> {
        self.running.lock().as_ref().map(|(_, q)| q.describe())
    }

    /// What Kafka's DescribeQuorum reports, as the leader sees it (every
    /// replica's progress; Kafka's brokers forward DescribeQuorum to the
    /// active controller). This node's own view when the leader cannot be
    /// asked. Blocks the calling thread.
    pub fn describe_from_leader(&self) -> Option<QuorumDescription> {
        let (local, me) = {
            let running = self.running.lock();
            let (_, q) = running.as_ref()?;
            (q.describe(), q.node_id())
        };
        if local.leader_id.is_none_or(|l| l == me) {
            return Some(local);
        }
        match self.call_within(&ControllerRequest::DescribeQuorum, Duration::from_secs(5)) {
            Ok(ControllerReply::Quorum(d)) => Some(d),
            other => {
                tracing::debug!(reply = ?other, "DescribeQuorum not answered by the leader; answering with this node's view");
                Some(local)
            }
        }
    }

    /// Stops the quorum (its files stay) and the metadata runtime.
    pub fn close(&self) {
        let Some((rt, q)) = self.running.lock().take() else {
            return;
        };
        // Commits hold a reference only while they run; none runs at close.
        if let Ok(q) = Arc::try_unwrap(q) {
            let _ = run_on(rt.handle(), q.shutdown());
        }
        rt.shutdown_background();
    }
}

impl Drop for MetadataStore {
    fn drop(&mut self) {
        self.close();
    }
}
