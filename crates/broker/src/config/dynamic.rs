//! Dynamic broker configs (KIP-226): values set at runtime with
//! IncrementalAlterConfigs or AlterConfigs on the broker resource, for this
//! node (resource name = node id) or as the cluster default (name "").
//!
//! As in Kafka they live in the metadata log (config records on the broker
//! and cluster-default resources), so a cluster default set through any
//! broker reaches every broker, and a restart replays them. Earlier
//! versions kept them in `<data dir>/dynamic-broker-configs.json`; that
//! file is read once, moved into the log and kept as `….migrated`
//! (`topics/broker_configs.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file holding the dynamic broker configs in the data directory.
pub const FILE: &str = "dynamic-broker-configs.json";

/// Which layer a dynamic broker config lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This node (DYNAMIC_BROKER_CONFIG).
    Broker,
    /// The cluster default (DYNAMIC_DEFAULT_BROKER_CONFIG).
    ClusterDefault,
}

/// The two dynamic layers, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    /// Set for this node.
    #[serde(default)]
    pub broker: BTreeMap<String, String>,
    /// Set as the cluster default.
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicConfigs {
    /// The layer of `scope`.
    pub fn layer(&self, scope: Scope) -> &BTreeMap<String, String> {
        match scope {
            Scope::Broker => &self.broker,
            Scope::ClusterDefault => &self.cluster_default,
        }
    }

    /// The layer of `scope`, to change.
    pub fn layer_mut(&mut self, scope: Scope) -> &mut BTreeMap<String, String> {
        match scope {
            Scope::Broker => &mut self.broker,
            Scope::ClusterDefault => &mut self.cluster_default,
        }
    }

    /// Reads the layers from `dir`; none when the file does not exist.
    pub fn load(dir: &Path) -> std::io::Result<DynamicConfigs> {
        let path = path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "cannot read dynamic broker configs {}: {e}; fix or remove the file (its configs return to their static values)",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DynamicConfigs::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the layers to `dir`, atomically and durably.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::durable::write_atomically(&path(dir), &bytes)
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            DynamicConfigs::load(dir.path()).expect("load"),
            DynamicConfigs::default()
        );
        let mut d = DynamicConfigs::default();
        d.layer_mut(Scope::Broker)
            .insert("log.retention.ms".into(), "5".into());
        d.layer_mut(Scope::ClusterDefault)
            .insert("log.cleaner.threads".into(), "2".into());
        d.save(dir.path()).expect("save");
        assert_eq!(DynamicConfigs::load(dir.path()).expect("load"), d);
        std::fs::write(dir.path().join(FILE), b"{not json").expect("write");
        let e = DynamicConfigs::load(dir.path()).expect_err("damaged");
        assert!(e.to_string().contains("dynamic broker configs"));
    }
}
