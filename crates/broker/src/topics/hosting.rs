//! Which logs this node hosts, kept in step with the metadata image: every
//! applied batch (from this node's requests or any other broker's) opens
//! the logs of new partitions assigned here, removes those of deleted
//! topics and of partitions moved away, and gives each hosted partition its
//! role: leader (tracking its followers) or follower (fetching from the
//! leader). A node hosts a partition when it is among its replicas.
//!
//! Admin requests handled here lay out their own partitions before the
//! commit (so a disk failure refuses the request and changes nothing); the
//! change listener then finds them hosted already and leaves them be.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

use super::{Partition, Topic, Topics};
use crate::config;
use crate::metadata::{ImageChanges, MetadataImage, NodeId, TopicPartition};
use crate::names;
use crate::replication::fetcher::{Followed, LeaderAddr};
use crate::replication::throttle::names_replica;

impl Topics {
    /// Applies one batch's changes to the hosted logs (the metadata store's
    /// change listener; runs on the quorum's apply thread).
    pub(super) fn on_image_change(&self, image: &MetadataImage, changes: &ImageChanges) {
        let _g = self.hosting.lock();
        if changes.broker_configs {
            self.install_broker_configs(image);
        }
        for (name, id, _) in &changes.removed_topics {
            self.remove_local(name, *id);
        }
        for tp in &changes.created {
            self.host_if_assigned(image, tp);
            self.set_role(image, tp, false);
        }
        for tp in &changes.changed {
            self.host_if_assigned(image, tp);
            self.set_role(image, tp, false);
        }
        // A topic's configs name its throttled replicas.
        if !(changes.created.is_empty()
            && changes.changed.is_empty()
            && changes.removed_topics.is_empty()
            && changes.topic_configs.is_empty())
        {
            self.follow(image);
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
                self.set_role(image, &t.key(i), false);
            }
        }
        self.follow(image);
    }

    /// Gives every hosted partition its role per `image` (at start-up,
    /// before the coordinators open and load what this node leads).
    pub(super) fn place_all(&self, image: &MetadataImage) {
        let _g = self.hosting.lock();
        for t in image.topics() {
            for i in 0..t.partitions.len() as i32 {
                self.set_role(image, &t.key(i), true);
            }
        }
        self.follow(image);
    }

    /// Tells the hosted log of `tp` its role; removes it if this node is no
    /// longer one of its replicas (a reassignment moved it away). A
    /// coordinator partition whose leadership arrives or leaves (not at
    /// `startup`) is queued for its coordinator first.
    fn set_role(&self, image: &MetadataImage, tp: &TopicPartition, startup: bool) {
        let (Some(ti), Some(topic)) = (image.topic(&tp.topic), self.get(&tp.topic)) else {
            return;
        };
        if topic.id != ti.id {
            return;
        }
        let Some(placed) = ti.partition(tp.partition) else {
            return;
        };
        let Some(p) = topic.partition(tp.partition) else {
            return;
        };
        let was = p.is_leading().then(|| p.replication_epoch());
        let coordinated = !startup && super::is_internal_topic(&tp.topic);
        if placed.replicas.contains(&self.node) {
            let now = (placed.leader == self.node).then_some(placed.leader_epoch);
            // An empty log has no state to load (a topic just created).
            let loads = now.is_some() && p.log.log_end_offset() > 0;
            if coordinated && was != now && (loads || was.is_some()) {
                self.coordinator_moves.record(tp.clone(), now);
            }
            p.set_placement(
                self.node,
                placed.leader,
                placed.leader_epoch,
                &placed.replicas,
                &placed.isr,
            );
            return;
        }
        if coordinated && was.is_some() {
            self.coordinator_moves.record(tp.clone(), None);
        }
        if let Ok(i) = usize::try_from(tp.partition) {
            if let Some(slot) = topic.partitions.write().get_mut(i) {
                *slot = None;
            }
        }
        // Wake waiting fetches and produces: they find it gone and answer so.
        p.set_placement(self.node, NodeId::NONE, placed.leader_epoch, &[], &[]);
        let dir = p.log.dir().to_path_buf();
        let _ = p.log.close();
        let doomed = self.dir.join(format!(
            "{}-{}.{}-delete",
            tp.topic,
            tp.partition,
            ti.id.simple()
        ));
        if std::fs::rename(&dir, &doomed).is_ok() {
            let _ = std::fs::remove_dir_all(&doomed);
        }
        tracing::info!(partition = %tp, "removed the local replica of a partition moved to other brokers");
    }

    /// Points the replica fetchers at the leaders of the partitions this
    /// node follows.
    fn follow(&self, image: &MetadataImage) {
        let mut wanted: HashMap<NodeId, (LeaderAddr, Vec<Followed>)> = HashMap::new();
        for t in self.all() {
            let Some(ti) = image.topic(&t.name).filter(|ti| ti.id == t.id) else {
                continue;
            };
            for (i, placed) in ti.partitions.iter().enumerate() {
                let i = i as i32;
                if placed.leader == self.node
                    || placed.leader == NodeId::NONE
                    || !placed.replicas.contains(&self.node)
                {
                    continue;
                }
                let Some(log) = t.partition(i) else { continue };
                let Some(addr) = image
                    .broker(placed.leader)
                    .and_then(|b| self.peer_endpoint(b))
                    .map(|e| LeaderAddr {
                        host: e.host.clone(),
                        port: i32::from(e.port),
                    })
                else {
                    continue;
                };
                wanted
                    .entry(placed.leader)
                    .or_insert_with(|| (addr, Vec::new()))
                    .1
                    .push(Followed {
                        tp: ti.key(i),
                        topic_id: ti.id,
                        log,
                        epoch: placed.leader_epoch,
                        throttled: !placed.isr.contains(&self.node)
                            && ti
                                .configs
                                .get("follower.replication.throttled.replicas")
                                .is_some_and(|v| names_replica(v, i, self.node)),
                    });
            }
        }
        self.fetchers.set(wanted);
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
        match Partition::open(&ti.name, tp.partition, &dir, lc, self.clock.clone()) {
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
