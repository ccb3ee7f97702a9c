//! Dynamic broker configs kept in the metadata log: changed by committing
//! config records on the broker (`node.id`) or cluster-default resource,
//! installed on every broker as the image carries them, and moved there
//! from the per-node file of earlier versions on the first start.

use std::collections::BTreeMap;
use std::path::Path;

use super::{TopicError, Topics};
use crate::config::{BrokerConfig, DynamicConfigs, DynamicError, Scope};
use crate::metadata::records::ConfigResource;
use crate::metadata::{MetadataImage, MetadataRecord, MetadataStore, NodeId, RecordBatch};

/// The file earlier versions kept dynamic broker configs in.
const FILE: &str = crate::config::dynamic::FILE;

/// The resource a scope's configs are recorded under.
fn resource(scope: Scope, node: NodeId) -> ConfigResource {
    match scope {
        Scope::Broker => ConfigResource::Broker(node),
        Scope::ClusterDefault => ConfigResource::ClusterDefault,
    }
}

/// The config records that turn `current` into `next` for `resource`
/// (a topic's overrides or a dynamic broker layer).
pub(super) fn diff(
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> RecordBatch {
    let removed =
        current
            .keys()
            .filter(|k| !next.contains_key(*k))
            .map(|k| MetadataRecord::Config {
                resource: resource.clone(),
                name: k.clone(),
                value: None,
            });
    let set = next
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| MetadataRecord::Config {
            resource: resource.clone(),
            name: k.clone(),
            value: Some(v.clone()),
        });
    removed.chain(set).collect()
}

/// This node's two dynamic layers as `image` holds them.
fn layers_of(image: &MetadataImage, node: NodeId) -> DynamicConfigs {
    DynamicConfigs {
        broker: image
            .broker_configs(Some(node))
            .cloned()
            .unwrap_or_default(),
        cluster_default: image.broker_configs(None).cloned().unwrap_or_default(),
    }
}

impl Topics {
    /// Replaces the dynamic broker configs of `scope` (this node, or the
    /// cluster default) with `next`: validated, then committed to the
    /// metadata log, from which every broker installs them.
    pub fn set_broker_configs(
        &self,
        scope: Scope,
        next: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), DynamicError> {
        let next = self.broker.validate_dynamic(scope, next)?;
        if validate_only {
            return Ok(());
        }
        let current = self.broker.dynamic_layer(scope);
        let batch = diff(&resource(scope, self.node), &current, &next);
        if batch.is_empty() {
            return Ok(());
        }
        // The commit returns once this node applied it (and installed it).
        self.store
            .commit(&batch)
            .map_err(|e| DynamicError::Commit(e.to_string()))?;
        Ok(())
    }

    /// Installs the dynamic broker configs `image` holds for this node and
    /// re-derives every hosted log's settings when they changed (the
    /// cleaner and retention read a log's settings at every pass). Runs as
    /// the image changes, under the hosting lock.
    pub(super) fn install_broker_configs(&self, image: &MetadataImage) {
        if !self.broker.install_dynamic(layers_of(image, self.node)) {
            return;
        }
        tracing::info!("dynamic broker configs changed");
        for t in self.all() {
            let Some(ti) = image.topic(&t.name) else {
                continue;
            };
            let lc = crate::config::log_config(&self.broker, &ti.configs);
            for p in t.hosted() {
                p.log.set_config(lc.clone());
            }
        }
    }
}

/// Installs the dynamic configs of `store`'s image into `broker` (before
/// any log opens, so the logs start with them), first moving those of an
/// earlier version's file into the metadata log. If the log cannot take
/// them now, the file's values apply and the file stays for the next start.
pub(super) fn load(
    dir: &Path,
    node: NodeId,
    store: &MetadataStore,
    broker: &BrokerConfig,
) -> Result<(), TopicError> {
    let path = dir.join(FILE);
    let old = match DynamicConfigs::load(dir) {
        Ok(old) if path.exists() => Some(old),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable dynamic broker config file");
            None
        }
    };
    if let Some(old) = old {
        let image = store.image();
        let logged = layers_of(&image, node);
        let mut batch = RecordBatch::new();
        for scope in [Scope::Broker, Scope::ClusterDefault] {
            // What the log already holds wins; the file only fills gaps.
            let mut next = logged.layer(scope).clone();
            for (k, v) in old.layer(scope) {
                next.entry(k.clone()).or_insert_with(|| v.clone());
            }
            batch.extend(diff(&resource(scope, node), logged.layer(scope), &next));
        }
        let committed = batch.is_empty() || store.commit(&batch).is_ok();
        if committed {
            let done = dir.join(format!("{FILE}.migrated"));
            std::fs::rename(&path, &done)?;
            tracing::info!(records = batch.len(), from = %path.display(), kept_as = %done.display(), "moved dynamic broker configs into the metadata log");
        } else {
            tracing::warn!(file = %path.display(), "the metadata log did not take the dynamic broker configs yet; using the file's values until the next start");
            broker.install_dynamic(old);
            return Ok(());
        }
    }
    broker.install_dynamic(layers_of(&store.image(), node));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_layer_change_is_one_record_per_changed_name() {
        let r = ConfigResource::ClusterDefault;
        let current = set(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let next = set(&[("a", "1"), ("b", "20"), ("d", "4")]);
        let names: Vec<(String, Option<String>)> = diff(&r, &current, &next)
            .into_iter()
            .filter_map(|rec| match rec {
                MetadataRecord::Config { name, value, .. } => Some((name, value)),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("c".into(), None),
                ("b".into(), Some("20".into())),
                ("d".into(), Some("4".into())),
            ]
        );
        assert!(diff(&r, &next, &next).is_empty());
    }

    #[test]
    fn the_file_of_an_earlier_version_moves_into_the_metadata_log_once() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        DynamicConfigs {
            broker: set(&[("log.retention.ms", "4000")]),
            cluster_default: set(&[("log.cleaner.threads", "2")]),
        }
        .save(dir.path())
        .expect("save");
        let open = || {
            let config = Arc::new(BrokerConfig::default());
            let t = Topics::open(dir.path(), config.clone(), crate::clock::system()).expect("open");
            (config, t)
        };
        let (config, topics) = open();
        assert_eq!(config.get("log.retention.ms"), "4000");
        assert_eq!(config.get("log.cleaner.threads"), "2");
        assert!(!dir.path().join(FILE).exists());
        assert!(dir.path().join(format!("{FILE}.migrated")).exists());
        let image = topics.image();
        assert_eq!(
            image.broker_configs(None),
            Some(&set(&[("log.cleaner.threads", "2")]))
        );
        // A change goes through the log and is installed when it returns.
        topics
            .set_broker_configs(Scope::ClusterDefault, &BTreeMap::new(), false)
            .expect("set");
        assert_eq!(config.get("log.cleaner.threads"), "1");
        drop(topics);
        // The next start replays the log; the moved file is not read again.
        let (config, _topics) = open();
        assert_eq!(config.get("log.retention.ms"), "4000");
        assert_eq!(config.get("log.cleaner.threads"), "1");
    }
}
