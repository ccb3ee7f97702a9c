//! Cluster inspection for `strom cluster describe`: the brokers (with
//! racks and fencing, DescribeCluster v2) and the metadata quorum
//! (DescribeQuorum), as Kafka's `kafka-cluster.sh` and
//! `kafka-metadata-quorum.sh describe --status --replication` show them.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::ClientError;

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced by the controller (not serving).
    pub fenced: bool,
}

/// The brokers, the controller and the cluster id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers {
    /// Cluster id.
    pub cluster_id: String,
    /// The active controller's id.
    pub controller: i32,
    /// Every registered broker, fenced ones included when the broker can say.
    pub brokers: Vec<BrokerInfo>,
}

/// One replica of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Node id.
    pub id: i32,
    /// One past its last log entry, as the leader knows it (-1: unknown).
    pub log_end_offset: i64,
    /// When it last fetched, ms since the epoch (-1: unknown).
    pub last_fetch_ms: i64,
    /// When it last had everything the leader had (-1: unknown).
    pub last_caught_up_ms: i64,
}

/// The metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The leader (the active controller).
    pub leader: i32,
    /// Its epoch.
    pub epoch: i32,
    /// The committed offset.
    pub high_watermark: i64,
    /// Voters.
    pub voters: Vec<QuorumReplica>,
    /// Observers (brokers that do not vote).
    pub observers: Vec<QuorumReplica>,
}

impl Admin {
    /// DescribeCluster, with fenced brokers when the broker supports v2.
    pub async fn describe_brokers(&mut self) -> Result<Brokers, ClientError> {
        let v = self.conn.version(ApiKey::DescribeCluster)?;
        let req = DescribeClusterRequest::default().with_include_fenced_brokers(v >= 2);
        let r: DescribeClusterResponse =
            self.conn.call_at(ApiKey::DescribeCluster, v, &req).await?;
        ClientError::check(r.error_code, "describing the cluster")?;
        let mut brokers: Vec<BrokerInfo> = r
            .brokers
            .into_iter()
            .map(|b| BrokerInfo {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
                fenced: b.is_fenced,
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(Brokers {
            cluster_id: r.cluster_id.to_string(),
            controller: r.controller_id.0,
            brokers,
        })
    }

    /// DescribeQuorum of `__cluster_metadata`.
    pub async fn describe_quorum(&mut self) -> Result<QuorumInfo, ClientError> {
        let req = DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default().with_partition_index(0)
                ]),
        ]);
        let (_, r): (i16, DescribeQuorumResponse) =
            self.conn.call(ApiKey::DescribeQuorum, &req).await?;
        ClientError::check(r.error_code, "describing the metadata quorum")?;
        let p = r
            .topics
            .into_iter()
            .next()
            .and_then(|t| t.partitions.into_iter().next())
            .ok_or_else(|| ClientError::Protocol("DescribeQuorum answered no partition".into()))?;
        ClientError::check(p.error_code, "describing the metadata quorum")?;
        let replica = |s: describe_quorum_response::ReplicaState| QuorumReplica {
            id: s.replica_id.0,
            log_end_offset: s.log_end_offset,
            last_fetch_ms: s.last_fetch_timestamp,
            last_caught_up_ms: s.last_caught_up_timestamp,
        };
        Ok(QuorumInfo {
            leader: p.leader_id.0,
            epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: p.current_voters.into_iter().map(replica).collect(),
            observers: p.observers.into_iter().map(replica).collect(),
        })
    }
}
