//! A controller-only node (`process.roles=controller`): a voter of the
//! metadata quorum and, while it leads, the active controller, with no
//! broker listener and no partitions, as Kafka's dedicated controllers.
//! Brokers reach it through `controller.quorum.voters`.

use crate::config::cluster::ClusterLayout;
use crate::config::{BrokerConfig, ConfigError};
use crate::metadata::MetadataStore;
use crate::server::ServerError;

/// A running controller-only node.
#[derive(Debug)]
pub struct ControllerNode {
    store: MetadataStore,
}

impl ControllerNode {
    /// Opens the quorum log in the data directory and joins the voters.
    /// Blocks until the quorum node is up (call it off the async workers).
    pub fn start(config: &BrokerConfig) -> Result<ControllerNode, ServerError> {
        let layout = ClusterLayout::from_config(config)?;
        if layout.roles.broker || !layout.roles.controller {
            return Err(ServerError::Config(ConfigError::Refused(
                "a controller-only node needs process.roles=controller".into(),
            )));
        }
        let dir = config.data_dir();
        std::fs::create_dir_all(&dir).map_err(|e| ServerError::Data(e.into()))?;
        let store =
            crate::broker::open_cluster_store(&dir, config, &layout, crate::clock::system())?;
        let listen = layout
            .controller_listener
            .as_ref()
            .map(|l| l.address())
            .unwrap_or_default();
        tracing::info!(node_id = config.node_id(), listen = %listen, voters = layout.voters.len(), "strom controller started");
        Ok(ControllerNode { store })
    }

    /// The node's view of the metadata (for tests and tools).
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    /// Leaves the quorum: its log stays for the next start.
    pub fn shutdown(self) {
        self.store.close();
        tracing::info!("controller stopped");
    }
}
