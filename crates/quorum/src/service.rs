//! The leader service: requests any node sends to whichever node leads the quorum.
//!
//! The quorum replicates opaque entries; deciding *what* to propose (checking a change against
//! the current state, choosing where a new partition goes, handing out id blocks) belongs on one
//! node at a time, the leader, so that two nodes never decide on the same state at once. The
//! broker registers such a service with [`Quorum::set_leader_service`](crate::Quorum::set_leader_service);
//! [`Quorum::call_leader`](crate::Quorum::call_leader) runs a request on it, locally when this
//! node leads and over the quorum RPC connection otherwise, following leader changes. Requests
//! and replies are opaque bytes, as entries are.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// The future a [`LeaderService`] returns.
pub type ServiceFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send + 'static>>;

/// Handles requests on the leader: takes the request's bytes, returns the reply's. Errors the
/// caller should see belong in the reply; the service is called only while this node believes
/// it leads, and proposals it makes after losing leadership fail with
/// [`ProposeError::NotLeader`](crate::ProposeError::NotLeader).
pub type LeaderService = Arc<dyn Fn(Vec<u8>) -> ServiceFuture + Send + Sync + 'static>;

/// Where a node keeps its service once the broker has set it.
#[derive(Clone, Default)]
pub(crate) struct ServiceSlot(Arc<RwLock<Option<LeaderService>>>);

impl ServiceSlot {
    pub(crate) fn set(&self, service: LeaderService) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(service);
    }

    pub(crate) fn get(&self) -> Option<LeaderService> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why a node did not run a forwarded request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardRefused {
    /// It does not lead; the leader it knows of, if any.
    NotLeader(Option<u64>),
    /// It leads but has no service yet (it is still starting).
    NoService,
}
