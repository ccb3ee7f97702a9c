//! The brokers and controller clients are told about, from the image:
//! every registered, unfenced broker at its advertised endpoint, as Kafka's
//! Metadata and DescribeCluster list them. A client sees each broker at its
//! endpoint for the listener the client's request came in on; a broker
//! without that listener is left out, as Kafka does.

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
/// their advertised endpoint for `listener`.
fn registered(broker: &Broker, fenced: bool, listener: &str) -> Vec<BrokerView> {
    broker
        .topics
        .image()
        .brokers()
        .filter(|b| b.fenced == fenced)
        .filter_map(|b| {
            let e = b.endpoints.get(listener)?;
            Some(BrokerView {
                id: b.id,
                host: e.host.clone(),
                port: i32::from(e.port),
                rack: b.rack.clone(),
            })
        })
        .collect()
}

/// The live brokers, by id, as clients of `listener` reach them; this
/// broker alone until it has registered.
pub fn live_brokers(broker: &Broker, listener: &str) -> Vec<BrokerView> {
    let mut out = registered(broker, false, listener);
    let me = NodeId(broker.node_id);
    let mine = broker.advertised_on(listener);
    if let Some(a) = mine.filter(|_| !out.iter().any(|b| b.id == me)) {
        // Clients reached this broker: list it, even while it is fenced.
        out.push(BrokerView {
            id: me,
            host: a.host.clone(),
            port: a.port,
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
pub fn fenced_brokers(broker: &Broker, listener: &str) -> Vec<BrokerView> {
    registered(broker, true, listener)
}

/// The active controller's id as clients are told: the quorum leader when
/// it is also a broker they can reach; else this broker (a dedicated
/// controller has no client listener, and this broker forwards admin
/// requests to it, as Kafka's brokers answer with a broker id), and this
/// broker too when no leader is known, as on a single node.
pub fn controller_id(broker: &Broker) -> NodeId {
    let me = NodeId(broker.node_id);
    match broker.topics.store().controller_id() {
        Some(leader) if leader == me => me,
        Some(leader)
            if broker
                .topics
                .image()
                .broker(leader)
                .is_some_and(|b| !b.fenced) =>
        {
            leader
        }
        _ => me,
    }
}

/// A live broker's advertised endpoint for `listener`, by id.
pub fn endpoint_of(broker: &Broker, id: NodeId, listener: &str) -> Option<BrokerView> {
    live_brokers(broker, listener)
        .into_iter()
        .find(|b| b.id == id)
}
