//! The broker's side of its lifecycle with the controller (KRaft's
//! `BrokerLifecycleManager`): register at start-up, heartbeat every
//! `broker.heartbeat.interval.ms` (registering again when the controller no
//! longer knows this registration), and ask to be fenced before shutting
//! down (controlled shutdown).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::controller::{ControllerReply, ControllerRequest};
use super::records::BrokerRegistration;
use super::store::call_controller;
use super::{MetadataError, MetadataStore, NodeId};

/// This broker's standing with the controller.
#[derive(Debug)]
pub struct Membership {
    /// Node id.
    pub id: NodeId,
    /// The current registration epoch.
    epoch: AtomicI64,
    /// Whether the controller last said this broker is fenced.
    fenced: AtomicBool,
    registration: BrokerRegistration,
    cluster_id: String,
    fence_first: bool,
}

impl Membership {
    /// Whether the controller last said this broker is fenced.
    pub fn fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    /// The registration epoch.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    fn register_request(&self) -> ControllerRequest {
        ControllerRequest::Register {
            broker: self.registration.clone(),
            cluster_id: self.cluster_id.clone(),
            fence_first: self.fence_first,
        }
    }
}

/// Registers this broker (blocking) and returns its membership and the
/// cluster's id. `fence_first` is false for the single-node default.
pub fn register(
    store: &MetadataStore,
    registration: BrokerRegistration,
    cluster_id: String,
    fence_first: bool,
) -> Result<(Arc<Membership>, String), MetadataError> {
    let m = Membership {
        id: registration.id,
        epoch: AtomicI64::new(-1),
        fenced: AtomicBool::new(fence_first),
        registration,
        cluster_id,
        fence_first,
    };
    match store.call(&m.register_request())? {
        ControllerReply::Registered {
            epoch,
            cluster_id,
            offset,
        } => {
            m.epoch.store(epoch, Ordering::Relaxed);
            store.wait_applied(offset)?;
            tracing::info!(node_id = %m.id, epoch, %cluster_id, "registered with the controller");
            Ok((Arc::new(m), cluster_id))
        }
        ControllerReply::Refused(e) => Err(MetadataError::Refused(e)),
        ControllerReply::Failed(e) => Err(MetadataError::Controller(e)),
        other => Err(MetadataError::Controller(format!(
            "unexpected reply to a registration: {other:?}"
        ))),
    }
}

/// Heartbeats on the metadata runtime until the store closes.
pub fn spawn_heartbeats(store: &MetadataStore, m: Arc<Membership>, every: Duration) {
    let Some((quorum, image)) = store.handles() else {
        return;
    };
    store.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let req = ControllerRequest::Heartbeat {
                id: m.id,
                epoch: m.epoch(),
                metadata_offset: image.read().offset,
                shutting_down: false,
            };
            let reply = call_controller(&quorum, &req, every * 2).await;
            match reply {
                Ok(ControllerReply::Heartbeat { stale: true, .. }) => {
                    tracing::warn!(node_id = %m.id, "the controller does not know this registration; registering again");
                    if let Ok(ControllerReply::Registered { epoch, .. }) =
                        call_controller(&quorum, &m.register_request(), every * 2).await
                    {
                        m.epoch.store(epoch, Ordering::Relaxed);
                    }
                }
                Ok(ControllerReply::Heartbeat { fenced, .. }) => {
                    if m.fenced.swap(fenced, Ordering::Relaxed) != fenced {
                        tracing::info!(node_id = %m.id, fenced, "the controller changed this broker's standing");
                    }
                }
                Ok(other) => tracing::debug!(?other, "unexpected heartbeat reply"),
                Err(e) => tracing::debug!(error = %e, "heartbeat not answered"),
            }
        }
    });
}

/// Asks the controller to fence this broker before it stops, so clients
/// are sent elsewhere at once rather than after the session timeout.
/// Blocking; gives up after a few seconds.
pub fn controlled_shutdown(store: &MetadataStore, m: &Membership) {
    let req = ControllerRequest::Heartbeat {
        id: m.id,
        epoch: m.epoch(),
        metadata_offset: store.image().offset,
        shutting_down: true,
    };
    match store.call_within(&req, Duration::from_secs(5)) {
        Ok(ControllerReply::Heartbeat { fenced: true, .. }) => {
            // The fence moved this broker's leaderships to other in-sync
            // replicas; once this node's image has it too, its partitions
            // are followers here, so clients still talking to it are told
            // NOT_LEADER_OR_FOLLOWER and go to the new leaders before it stops.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !store.image().broker(m.id).is_some_and(|b| b.fenced)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::info!(node_id = %m.id, "controlled shutdown: fenced by the controller, leadership moved")
        }
        Ok(other) => tracing::warn!(?other, "controlled shutdown not acknowledged"),
        Err(e) => tracing::warn!(error = %e, "controlled shutdown: the controller did not answer"),
    }
}
