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

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_quorum::{
    ProposeError, Quorum, QuorumConfig, QuorumDescription, QuorumError, StateMachine,
};
use thiserror::Error;

use super::image::MetadataImage;
use super::records::{decode_batch, encode_batch, MetadataRecord};
use super::NodeId;

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
}

/// The broker's [`StateMachine`]: applies committed batches to the image.
struct ImageMachine {
    image: Arc<RwLock<Arc<MetadataImage>>>,
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
            Ok((next, _)) => *self.image.write() = Arc::new(next),
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
        *self.image.write() = Arc::new(image);
        Ok(())
    }
}

/// The metadata log and the image built from it.
pub struct MetadataStore {
    image: Arc<RwLock<Arc<MetadataImage>>>,
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
    pub fn open_single(data_dir: &Path, node: NodeId) -> Result<MetadataStore, MetadataError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strom-metadata")
            .enable_all()
            .build()
            .map_err(|e| MetadataError::Runtime(e.to_string()))?;
        let image = Arc::new(RwLock::new(Arc::new(MetadataImage::default())));
        let machine = ImageMachine {
            image: image.clone(),
        };
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
        let quorum = match run_on(runtime.handle(), Quorum::start(cfg, machine)) {
            Ok(Ok(q)) => q,
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
        Ok(MetadataStore {
            image,
            running: Mutex::new(Some((runtime, Arc::new(quorum)))),
        })
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Commits `batch` and waits until it is applied to the image (so the
    /// caller's next [`MetadataStore::image`] shows it). Blocks the calling thread.
    pub fn commit(&self, batch: &[MetadataRecord]) -> Result<u64, MetadataError> {
        let (rt, q) = match &*self.running.lock() {
            Some((rt, q)) => (rt.handle().clone(), q.clone()),
            None => {
                return Err(MetadataError::Runtime(
                    "the metadata store is closed".into(),
                ))
            }
        };
        let entry = encode_batch(batch);
        Ok(run_on(&rt, async move { q.propose(entry).await })??)
    }

    /// What Kafka's DescribeQuorum reports.
    pub fn describe(&self) -> Option<QuorumDescription> {
        self.running.lock().as_ref().map(|(_, q)| q.describe())
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
