//! Partition directories the metadata no longer places on this node, found
//! at start-up: a partition moved away or a topic deleted while this node
//! was down, or a deletion a crash interrupted.
//!
//! A stray log is renamed `<topic>-<partition>.<uuid>-stray`, out of the way of a
//! later assignment of the same partition, and kept with a warning (as
//! Kafka keeps its `-stray` logs): if this node's metadata were wrong, the
//! data is still there to recover. A directory already renamed for
//! deletion (`...-delete`) is removed.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::metadata::{MetadataImage, NodeId};

/// The metadata log's own directory (never a partition of a topic).
const METADATA_DIR: &str = "__cluster_metadata-0";

/// Moves aside the partition directories under `dir` that `image` does not
/// assign to `node`, and removes interrupted deletions.
pub(super) fn set_aside(dir: &Path, image: &MetadataImage, node: NodeId) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with("-delete") {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove a partition directory left for deletion");
            }
            continue;
        }
        if name == METADATA_DIR {
            continue;
        }
        let Some((topic, index)) = partition_of(&name) else {
            continue;
        };
        let placed_here = image
            .topic(topic)
            .and_then(|t| t.partition(index))
            .is_some_and(|p| p.replicas.contains(&node));
        if placed_here {
            continue;
        }
        let aside = aside_path(dir, &name);
        match std::fs::rename(&path, &aside) {
            Ok(()) => tracing::warn!(
                dir = %aside.display(),
                "the metadata does not place this partition on this node (moved away or deleted while it was down); its log is kept aside, delete it when it is not needed"
            ),
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot set aside a stray partition directory")
            }
        }
    }
}

/// Where a partition directory named `name` under `dir` is set aside:
/// `<name>.<uuid>-stray`, Kafka's naming, unique so that setting the same
/// partition aside twice never collides.
pub(super) fn aside_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{}-stray", Uuid::new_v4().simple()))
}

/// `orders-3` → ("orders", 3); `None` for anything else.
fn partition_of(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    if topic.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_directory_names() {
        assert_eq!(partition_of("orders-3"), Some(("orders", 3)));
        assert_eq!(partition_of("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(partition_of("orders-3.0123abcd-stray"), None);
        assert_eq!(partition_of("orders-+3"), None);
        assert_eq!(partition_of("-3"), None);
        assert_eq!(partition_of("orders"), None);
        assert_eq!(partition_of("t-99999999999"), None);
    }
}
