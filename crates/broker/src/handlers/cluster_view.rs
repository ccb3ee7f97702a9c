//! The brokers and controller clients are told about, from the image:
//! every registered, unfenced broker at its advertised endpoint, as Kafka's
//! Metadata and DescribeCluster list them.

use crate::broker::Broker;
use crate::metadata::NodeId;

/// One broker as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    /// `node.id`.
    pub id: NodeId,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// The registered brokers that are (`fenced` false) or are not serving, at
/// their first advertised endpoint.
fn registered(broker: &Broker, fenced: bool) -> Vec<BrokerView> {
    broker
        .topics
        .image()
        .brokers()
        .filter(|b| b.fenced == fenced)
        .filter_map(|b| {
            let e = b.endpoints.values().next()?;
            Some(BrokerView {
                id: b.id,
                host: e.host.clone(),
                port: i32::from(e.port),
                rack: b.rack.clone(),
            })
        })
        .collect()
}

/// The live brokers, by id; this broker alone until it has registered.
pub fn live_brokers(broker: &Broker) -> Vec<BrokerView> {
    let mut out = registered(broker, false);
    let me = NodeId(broker.node_id);
    if !out.iter().any(|b| b.id == me) {
        // Clients reached this broker: list it, even while it is fenced.
        out.push(BrokerView {
            id: me,
            host: broker.advertised.0.clone(),
            port: broker.advertised.1,
            rack: broker.config.get("broker.rack").trim().to_string().into(),
        });
        if let Some(b) = out.last_mut() {
            b.rack = b.rack.take().filter(|r| !r.is_empty());
        }
        out.sort_by_key(|b| b.id);
    }
    out
}

/// The registered brokers the controller has fenced.
pub fn fenced_brokers(broker: &Broker) -> Vec<BrokerView> {
    registered(broker, true)
}

/// The active controller's id as clients are told (the quorum leader; this
/// broker when none is known, as on a single node).
pub fn controller_id(broker: &Broker) -> NodeId {
    broker
        .topics
        .store()
        .controller_id()
        .unwrap_or(NodeId(broker.node_id))
}

/// A live broker's advertised endpoint by id.
pub fn endpoint_of(broker: &Broker, id: NodeId) -> Option<BrokerView> {
    live_brokers(broker).into_iter().find(|b| b.id == id)
}
