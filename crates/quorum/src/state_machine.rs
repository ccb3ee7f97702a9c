//! Openraft's state machine side: hands committed entries to the broker's [`StateMachine`] and
//! keeps the latest snapshot in `dir/snapshot`.
//!
//! The broker's state machine lives in memory; on start it is rebuilt from the snapshot file
//! ([`StateMachine::restore`]) and openraft re-applies the committed entries after it. Calls
//! into it run on tokio's blocking pool, so a slow apply does not stall the runtime.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::disk::{self, DiskError};
use crate::types::{
    Entry, LogId, Payload, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// Largest snapshot file read back from disk.
const MAX_SNAPSHOT: usize = 1 << 30;

/// The broker's metadata state, fed by the quorum.
///
/// Implementations are in-memory: the quorum persists the log and snapshots and replays them
/// into a fresh instance on every start.
pub trait StateMachine: Send + 'static {
    /// Applies one committed entry. Called in log order, exactly once per entry per process
    /// start (entries covered by a restored snapshot are not re-applied). `index` is the Raft
    /// log index: it increases but has gaps where the log holds the quorum's own entries
    /// (leader changes, membership).
    fn apply(&mut self, index: u64, entry: &[u8]);
    /// Serialises the state as of the last applied entry.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with one produced by [`StateMachine::snapshot`] (here or on another
    /// node). An error stops the quorum node.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Payload,
}

struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshots_built: u64,
}

struct Inner {
    user: Mutex<Box<dyn StateMachine>>,
    applied: Mutex<Applied>,
    path: PathBuf,
}

/// Openraft's state machine storage wrapping the broker's [`StateMachine`].
#[derive(Clone)]
pub(crate) struct SmStore {
    inner: Arc<Inner>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sm_err(verb: ErrorVerb, e: impl Into<io::Error>) -> StorageError {
    StorageError::from_io_error(ErrorSubject::StateMachine, verb, e.into())
}

impl From<DiskError> for io::Error {
    fn from(e: DiskError) -> io::Error {
        io::Error::other(e)
    }
}

impl SmStore {
    /// Wraps `user`, restoring it from `dir/snapshot` if there is one.
    pub(crate) fn open(
        dir: &Path,
        mut user: Box<dyn StateMachine>,
    ) -> Result<SmStore, crate::QuorumError> {
        let path = dir.join("snapshot");
        let mut applied = Applied {
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots_built: 0,
        };
        if let Some(bytes) = disk::read_single(&path, MAX_SNAPSHOT)? {
            let file: SnapshotFile = postcard::from_bytes(&bytes)
                .map_err(|e| DiskError::corrupt(&path, 0, format!("undecodable snapshot: {e}")))?;
            user.restore(&file.data.0)
                .map_err(crate::QuorumError::Restore)?;
            tracing::info!(last_applied = ?file.meta.last_log_id, bytes = file.data.0.len(), "restored the metadata snapshot");
            applied.last_applied = file.meta.last_log_id;
            applied.membership = file.meta.last_membership;
        }
        let inner = Inner {
            user: Mutex::new(user),
            applied: Mutex::new(applied),
            path,
        };
        Ok(SmStore {
            inner: Arc::new(inner),
        })
    }
}

fn save_snapshot(path: &Path, meta: &SnapshotMeta, data: Vec<u8>) -> Result<Vec<u8>, DiskError> {
    let file = SnapshotFile {
        meta: meta.clone(),
        data: Payload(data),
    };
    let bytes = postcard::to_allocvec(&file)
        .map_err(|e| DiskError::io("encode", path, io::Error::other(e)))?;
    disk::write_atomic(path, &bytes)?;
    Ok(file.data.0)
}

async fn blocking<T: Send + 'static>(
    verb: ErrorVerb,
    f: impl FnOnce() -> Result<T, io::Error> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| sm_err(verb, e)),
        Err(e) => Err(sm_err(verb, io::Error::other(e.to_string()))),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SmStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let inner = self.inner.clone();
        blocking(ErrorVerb::Write, move || {
            let (data, meta) = {
                let user = lock(&inner.user);
                let mut applied = lock(&inner.applied);
                applied.snapshots_built += 1;
                let id = match applied.last_applied {
                    Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, applied.snapshots_built),
                    None => format!("none-{}", applied.snapshots_built),
                };
                let meta = SnapshotMeta {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                    snapshot_id: id,
                };
                (user.snapshot(), meta)
            };
            let data = save_snapshot(&inner.path, &meta, data)?;
            tracing::info!(last_applied = ?meta.last_log_id, bytes = data.len(), "built a metadata snapshot");
            Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for SmStore {
    type SnapshotBuilder = SmStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = lock(&self.inner.applied);
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let inner = self.inner.clone();
        blocking(ErrorVerb::Write, move || {
            let mut user = lock(&inner.user);
            let n = entries.len();
            for e in entries {
                match e.payload {
                    EntryPayload::Normal(p) => user.apply(e.log_id.index, &p.0),
                    EntryPayload::Membership(m) => {
                        lock(&inner.applied).membership = StoredMembership::new(Some(e.log_id), m);
                    }
                    EntryPayload::Blank => {}
                }
                lock(&inner.applied).last_applied = Some(e.log_id);
            }
            Ok(vec![(); n])
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        let meta = meta.clone();
        let data = snapshot.into_inner();
        blocking(ErrorVerb::Write, move || {
            let mut user = lock(&inner.user);
            user.restore(&data).map_err(|e| io::Error::other(format!("restore: {e}")))?;
            {
                let mut applied = lock(&inner.applied);
                applied.last_applied = meta.last_log_id;
                applied.membership = meta.last_membership.clone();
            }
            save_snapshot(&inner.path, &meta, data)?;
            tracing::info!(last_applied = ?meta.last_log_id, "installed a metadata snapshot from the leader");
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let path = self.inner.path.clone();
        blocking(ErrorVerb::Read, move || {
            let Some(bytes) = disk::read_single(&path, MAX_SNAPSHOT)? else {
                return Ok(None);
            };
            let file: SnapshotFile = postcard::from_bytes(&bytes)
                .map_err(|e| io::Error::from(DiskError::corrupt(&path, 0, e.to_string())))?;
            Ok(Some(Snapshot {
                meta: file.meta,
                snapshot: Box::new(Cursor::new(file.data.0)),
            }))
        })
        .await
    }
}
