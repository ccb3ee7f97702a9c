//! Which logs this node hosts, kept in step with the metadata image: every
//! applied batch (from this node's requests or any other broker's) opens
//! the logs of new partitions assigned here and removes those of deleted
//! topics. A node hosts a partition when it is among its replicas.
//!
//! Admin requests handled here lay out their own partitions before the
//! commit (so a disk failure refuses the request and changes nothing); the
//! change listener then finds them hosted already and leaves them be.

use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

use super::{Partition, Topic, Topics};
use crate::config;
use crate::metadata::{ImageChanges, MetadataImage, TopicPartition};
use crate::names;

impl Topics {
    /// Applies one batch's changes to the hosted logs (the metadata store's
    /// change listener; runs on the quorum's apply thread).
    pub(super) fn on_image_change(&self, image: &MetadataImage, changes: &ImageChanges) {
        let _g = self.hosting.lock();
        for (name, id, _) in &changes.removed_topics {
            self.remove_local(name, *id);
        }
        for tp in &changes.created {
            self.host_if_assigned(image, tp);
        }
        for name in &changes.topic_configs {
            if let (Some(t), Some(ti)) = (self.get(name), image.topic(name)) {
                let lc = config::log_config(&self.broker, &ti.configs);
                for p in t.hosted() {
                    p.log.set_config(lc.clone());
                }
            }
        }
    }

    /// Hosts every partition of the image assigned here that is not yet
    /// (after a creation of ours lost a race to another broker's).
    pub(super) fn host_all(&self, image: &MetadataImage) {
        let _g = self.hosting.lock();
        for t in image.topics() {
            for i in 0..t.partitions.len() as i32 {
                self.host_if_assigned(image, &t.key(i));
            }
        }
    }

    /// Makes `tp` known here, and opens its log if this node is a replica.
    fn host_if_assigned(&self, image: &MetadataImage, tp: &TopicPartition) {
        let Some(ti) = image.topic(&tp.topic) else {
            return;
        };
        let topic = {
            let mut by_name = self.by_name.write();
            match by_name.get(&*ti.name) {
                Some(t) if t.id == ti.id => t.clone(),
                // Another creation of the name is under way here; its commit will fail.
                Some(_) => return,
                None => {
                    let t = Arc::new(Topic {
                        name: ti.name.to_string(),
                        id: ti.id,
                        partitions: RwLock::new(Vec::new()),
                    });
                    by_name.insert(ti.name.to_string(), t.clone());
                    self.collisions
                        .write()
                        .insert(names::collision_key(&ti.name), ti.name.to_string());
                    t
                }
            }
        };
        let Some(placed) = ti.partition(tp.partition) else {
            return;
        };
        let Ok(index) = usize::try_from(tp.partition) else {
            return;
        };
        let mut slots = topic.partitions.write();
        if slots.len() < ti.partitions.len() {
            slots.resize(ti.partitions.len(), None);
        }
        if slots[index].is_some() || !placed.replicas.contains(&self.node) {
            return;
        }
        let lc = config::log_config(&self.broker, &ti.configs);
        let dir = self.partition_dir(&ti.name, tp.partition);
        match Partition::open(&ti.name, tp.partition, &dir, lc) {
            Ok(p) => {
                tracing::info!(topic = %ti.name, partition = tp.partition, "hosting a new partition");
                slots[index] = Some(Arc::new(p));
            }
            Err(e) => {
                tracing::error!(topic = %ti.name, partition = tp.partition, error = %e, "cannot open the log of a partition assigned here")
            }
        }
    }

    /// Forgets topic `name` (if it is the one with `id`) and deletes its
    /// hosted logs.
    fn remove_local(&self, name: &str, id: Uuid) {
        let t = {
            let mut by_name = self.by_name.write();
            match by_name.get(name) {
                Some(t) if t.id == id => by_name.remove(name),
                _ => None,
            }
        };
        let Some(t) = t else { return };
        self.collisions.write().remove(&names::collision_key(name));
        for p in t.hosted() {
            // Rename first so a same-named topic can be created at once.
            let dir = p.log.dir().to_path_buf();
            let doomed = self
                .dir
                .join(format!("{}-{}.{}-delete", name, p.index, id.simple()));
            if std::fs::rename(&dir, &doomed).is_ok() {
                let _ = std::fs::remove_dir_all(&doomed);
            }
        }
        tracing::info!(topic = name, "deleted topic");
    }
}
