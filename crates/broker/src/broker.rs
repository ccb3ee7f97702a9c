//! The state every request handler works with.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cleaner::LogCleaner;
use crate::clock::SharedClock;
use crate::config::cluster::ClusterLayout;
use crate::config::BrokerConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::handlers::fetch::FetchSessions;
use crate::metadata::controller::{ControllerReply, ControllerRequest};
use crate::metadata::lifecycle::{self, Membership};
use crate::metadata::records::{BrokerRegistration, Endpoint};
use crate::metadata::{ControllerTimings, MetadataError, MetadataStore, NodeId};
use crate::replica::ReplicaManager;
use crate::replication::throttle::ByteRate;
use crate::topics::{TopicError, Topics};
use crate::txn::producer_ids::ProducerIds;
use crate::txn::{TxnConfig, TxnCoordinator};

/// Where one listener's clients are told to connect (`advertised.listeners`,
/// or the address it was bound to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedListener {
    /// Listener name, upper case (`PLAINTEXT`, `INTERNAL`, …).
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// One broker node: configuration, topics and shared services.
#[derive(Debug)]
pub struct Broker {
    /// Broker configuration.
    pub config: Arc<BrokerConfig>,
    /// Topics and their logs.
    pub topics: Arc<Topics>,
    /// The partitions this node leads or follows: every handler's way to a log.
    pub replicas: ReplicaManager,
    /// Cluster id, generated on first start and kept in `meta.properties`.
    pub cluster_id: String,
    /// This node's id.
    pub node_id: i32,
    /// Where clients of each listener are told to connect, in `listeners`
    /// order; registered with the controller as this broker's endpoints.
    pub advertised: Vec<AdvertisedListener>,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessions,
    /// The group coordinator (this node coordinates every group).
    pub groups: GroupCoordinator,
    /// The transaction coordinator and producer id allocator.
    pub txns: TxnCoordinator,
    /// The log cleaner threads (compacted topics).
    pub cleaner: LogCleaner,
    /// This broker's registration with the controller.
    pub membership: Arc<Membership>,
    /// What this leader sent throttled followers
    /// (`leader.replication.throttled.rate`).
    pub leader_throttle: ByteRate,
}

impl Broker {
    /// Opens the broker's data directory, advertising `advertised` for its
    /// first listener.
    pub fn open(config: BrokerConfig, advertised: (String, i32)) -> Result<Broker, TopicError> {
        let layout = ClusterLayout::from_config(&config)?;
        let name = layout
            .broker_listeners
            .first()
            .map_or_else(|| "PLAINTEXT".to_string(), |l| l.name.clone());
        let advertised = vec![AdvertisedListener {
            name,
            host: advertised.0,
            port: advertised.1,
        }];
        Self::open_in(config, &layout, advertised, crate::clock::system())
    }

    /// Opens the broker as `layout` places it: alone, or as a member of the
    /// cluster of `controller.quorum.voters`. Registers with the controller
    /// (waiting for one to be elected) before its coordinators open. Every
    /// part of the broker reads the time from `clock`.
    pub fn open_in(
        config: BrokerConfig,
        layout: &ClusterLayout,
        advertised: Vec<AdvertisedListener>,
        clock: SharedClock,
    ) -> Result<Broker, TopicError> {
        let config = Arc::new(config);
        let dir = config.data_dir();
        std::fs::create_dir_all(&dir)?;
        let local_cluster_id = load_or_create_cluster_id(&dir, config.node_id())?;
        let node = NodeId(config.node_id());
        let single = layout.single_node();
        let topics = if single {
            Topics::open(&dir, config.clone(), clock)?
        } else {
            let store = open_cluster_store(&dir, &config, layout, clock.clone())?;
            Topics::with_store(&dir, config.clone(), store, clock)?
        };
        let registration = BrokerRegistration {
            id: node,
            epoch: 0,
            incarnation: uuid::Uuid::new_v4(),
            endpoints: advertised
                .iter()
                .map(|l| {
                    let protocol = layout
                        .protocols
                        .get(&l.name)
                        .cloned()
                        .unwrap_or_else(|| "PLAINTEXT".into());
                    (
                        l.name.clone(),
                        Endpoint {
                            host: l.host.clone(),
                            port: u16::try_from(l.port).unwrap_or(0),
                            security_protocol: protocol,
                        },
                    )
                })
                .collect(),
            rack: layout.rack.clone(),
            fenced: false,
        };
        let (membership, cluster_id) = lifecycle::register(
            topics.store(),
            registration,
            local_cluster_id.clone(),
            !single,
        )?;
        if cluster_id != local_cluster_id {
            write_cluster_id(&dir, &cluster_id, config.node_id())?;
        }
        if !single {
            let every = config.get_i64("broker.heartbeat.interval.ms", 2000).max(10) as u64;
            lifecycle::spawn_heartbeats(
                topics.store(),
                membership.clone(),
                Duration::from_millis(every),
            );
        }
        // A single-node server has one broker to put the internal topics on
        // (Kafka's single-node sample config sets the same).
        let internal_rf = |name: &str| {
            if single {
                1
            } else {
                config.get_i64(name, 3).clamp(1, i64::from(i16::MAX)) as i32
            }
        };
        let group_config = GroupConfig {
            offsets_replication_factor: internal_rf("offsets.topic.replication.factor"),
            commit_timeout: Duration::from_millis(
                config.get_i64("offsets.commit.timeout.ms", 5000).max(1) as u64,
            ),
            initial_rebalance_delay_ms: config
                .get_i64("group.initial.rebalance.delay.ms", 3000)
                .max(0) as u64,
            min_session_timeout_ms: config.get_i64("group.min.session.timeout.ms", 6000) as i32,
            max_session_timeout_ms: config.get_i64("group.max.session.timeout.ms", 1_800_000)
                as i32,
            max_size: usize::try_from(config.get_i64("group.max.size", 2_147_483_647).max(1))
                .unwrap_or(usize::MAX),
            offsets_partitions: config.get_i64("offsets.topic.num.partitions", 50) as i32,
            offsets_segment_bytes: config.get_i64("offsets.topic.segment.bytes", 104_857_600),
            offsets_retention_ms: config.get_i64("offsets.retention.minutes", 10080) * 60_000,
            consumer_session_timeout_ms: config.get_i64("group.consumer.session.timeout.ms", 45_000)
                as i32,
            consumer_heartbeat_interval_ms: config
                .get_i64("group.consumer.heartbeat.interval.ms", 5_000)
                as i32,
            offset_metadata_max_bytes: config.get_i64("offset.metadata.max.bytes", 4096).max(0)
                as usize,
        };
        let groups = GroupCoordinator::open(topics.clone(), group_config, single)?;
        let txn_config = TxnConfig {
            state_replication_factor: internal_rf("transaction.state.log.replication.factor"),
            state_min_isr: if single {
                1
            } else {
                config.get_i64("transaction.state.log.min.isr", 2).max(1)
            },
            write_timeout: Duration::from_millis(
                config.get_i64("request.timeout.ms", 30_000).max(1) as u64,
            ),
            max_timeout_ms: config.get_i64("transaction.max.timeout.ms", 900_000) as i32,
            id_expiration_ms: config.get_i64("transactional.id.expiration.ms", 604_800_000),
            state_partitions: config.get_i64("transaction.state.log.num.partitions", 50) as i32,
            state_segment_bytes: config.get_i64("transaction.state.log.segment.bytes", 104_857_600),
            producer_id_expiration_ms: config.get_i64("producer.id.expiration.ms", 86_400_000),
        };
        let txns = if single {
            TxnCoordinator::open(topics.clone(), &dir, txn_config)?
        } else {
            let t = Arc::downgrade(&topics);
            let ids = ProducerIds::from_controller(Box::new(move |count| {
                let topics = t
                    .upgrade()
                    .ok_or_else(|| std::io::Error::other("broker stopped"))?;
                let req = ControllerRequest::AllocateProducerIds {
                    broker: node,
                    count,
                };
                match topics.store().call(&req) {
                    Ok(ControllerReply::ProducerIds { first, .. }) => Ok(first),
                    Ok(other) => Err(std::io::Error::other(format!("controller: {other:?}"))),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                }
            }));
            TxnCoordinator::open_with(topics.clone(), &dir, txn_config, ids, true)?
        };
        txns.recover(&groups);
        let cleaner = LogCleaner::start(topics.clone());
        let replicas = ReplicaManager::new(NodeId(config.node_id()), topics.clone());
        let leader_throttle = ByteRate::from_config(&config);
        Ok(Broker {
            membership,
            replicas,
            cleaner,
            groups,
            txns,
            node_id: config.node_id(),
            config,
            topics,
            cluster_id,
            advertised,
            fetch_sessions: FetchSessions::default(),
            leader_throttle,
        })
    }
}

impl Broker {
    /// The broker's clock (shared with its partitions and coordinators).
    pub fn clock(&self) -> &SharedClock {
        self.topics.clock()
    }

    /// Where clients of `listener` are told this broker is.
    pub fn advertised_on(&self, listener: &str) -> Option<&AdvertisedListener> {
        self.advertised.iter().find(|l| l.name == listener)
    }

    /// Applies the coordinator moves recorded since the last call: the
    /// group and transaction coordinators load the state of the internal
    /// partitions this node now leads and drop that of those it no longer
    /// does. Blocking (reads logs); runs on the maintenance task.
    pub fn apply_coordinator_moves(&self) {
        use crate::group::store::OFFSETS_TOPIC;
        use crate::txn::log::TXN_TOPIC;
        let moves = self.topics.coordinator_moves();
        for m in moves.take() {
            let (tp, epoch) = &m;
            match (&*tp.topic, epoch) {
                (OFFSETS_TOPIC, Some(e)) => self.groups.load_partition(tp.partition, *e),
                (OFFSETS_TOPIC, None) => self.groups.unload_partition(tp.partition),
                (TXN_TOPIC, Some(e)) => self.txns.load_partition(&self.groups, tp.partition, *e),
                (TXN_TOPIC, None) => self.txns.unload_partition(tp.partition),
                _ => {}
            }
            moves.done(&m);
        }
    }
}

/// Reads `meta.properties` (Kafka's file: cluster.id, node.id, version), creating it if absent.
fn load_or_create_cluster_id(dir: &Path, node_id: i32) -> std::io::Result<String> {
    let path = dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return Ok(id.trim().to_string());
        }
    }
    // Kafka's cluster ids are base64url UUIDs (22 chars); use the same shape.
    let id = base64url(uuid::Uuid::new_v4().as_bytes());
    write_cluster_id(dir, &id, node_id)?;
    Ok(id)
}

/// Records the cluster's id in `meta.properties` (a cluster member adopts
/// the one its controller gives).
fn write_cluster_id(dir: &Path, id: &str, node_id: i32) -> std::io::Result<()> {
    std::fs::write(
        dir.join("meta.properties"),
        format!("version=1\ncluster.id={id}\nnode.id={node_id}\n"),
    )
}

/// Resolves `host:port` to one socket address.
fn resolve(what: &str, host: &str, port: u16) -> Result<SocketAddr, TopicError> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            TopicError::MetadataLog(MetadataError::Runtime(format!(
                "cannot resolve {what} {host}:{port}"
            )))
        })
}

/// Joins the metadata quorum of `controller.quorum.voters`: as a voter on
/// the controller listener, or as an observer on a free port of the
/// client listener's host.
pub(crate) fn open_cluster_store(
    dir: &Path,
    config: &BrokerConfig,
    layout: &ClusterLayout,
    clock: SharedClock,
) -> Result<MetadataStore, TopicError> {
    let mut voters = BTreeMap::new();
    for v in &layout.voters {
        let id = u64::try_from(v.id.0).unwrap_or(0);
        voters.insert(id, resolve("voter", &v.host, v.port)?);
    }
    let listen = match (&layout.controller_listener, layout.broker_listeners.first()) {
        (Some(c), _) => resolve("controller listener", &c.host, c.port)?,
        (None, Some(b)) if !b.host.is_empty() => resolve("listener", &b.host, 0)?,
        (None, _) => resolve("listener", "0.0.0.0", 0)?,
    };
    let session = config.get_i64("broker.session.timeout.ms", 9000).max(100) as u64;
    let election = config
        .get_i64("controller.quorum.election.timeout.ms", 1000)
        .max(20) as u64;
    let rebalance = config.get_bool("auto.leader.rebalance.enable").then(|| {
        Duration::from_secs(
            config
                .get_i64("leader.imbalance.check.interval.seconds", 300)
                .max(1) as u64,
        )
    });
    Ok(MetadataStore::open_cluster(
        dir,
        NodeId(config.node_id()),
        voters,
        listen,
        ControllerTimings {
            session: Duration::from_millis(session),
            election: Duration::from_millis(election),
            rebalance,
        },
        clock,
    )?)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | *b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}
