//! DescribeCluster, DescribeLogDirs and AlterReplicaLogDirs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};

use super::{authorized, s};
use crate::broker::Broker;

/// Kafka's `EndpointType`: who a DescribeCluster asks about.
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

/// Handles DescribeCluster. This node is a broker endpoint: a request for
/// controllers or an unknown endpoint type gets Kafka's error (INVALID_REQUEST
/// at v0, where the field is absent and cannot differ). Brokers are listed
/// at their endpoints for `listener`, the one the request came in on.
pub fn describe_cluster(
    broker: &Broker,
    version: i16,
    req: DescribeClusterRequest,
    listener: &str,
) -> DescribeClusterResponse {
    if req.endpoint_type != ENDPOINT_BROKER {
        let (e, msg) = if req.endpoint_type == ENDPOINT_CONTROLLER {
            (
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_string(),
            )
        } else {
            (
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {}", req.endpoint_type),
            )
        };
        let e = if version == 0 {
            ResponseError::InvalidRequest
        } else {
            e
        };
        return DescribeClusterResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(msg)))
            .with_controller_id(BrokerId(-1))
            .with_cluster_authorized_operations(authorized::OMITTED);
    }
    let mut brokers: Vec<DescribeClusterBroker> =
        super::cluster_view::live_brokers(broker, listener)
            .into_iter()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id.0))
                    .with_host(s(b.host))
                    .with_port(b.port)
                    .with_rack(b.rack.map(s))
            })
            .collect();
    if version >= 2 && req.include_fenced_brokers {
        // v2: fenced brokers too, marked (KIP-1073).
        for b in super::cluster_view::fenced_brokers(broker, listener) {
            if !brokers.iter().any(|x| x.broker_id.0 == b.id.0) {
                brokers.push(
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id.0))
                        .with_host(s(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(s))
                        .with_is_fenced(true),
                );
            }
        }
        brokers.sort_by_key(|b| b.broker_id.0);
    }
    DescribeClusterResponse::default()
        .with_cluster_id(s(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(super::cluster_view::controller_id(broker).0))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(authorized::if_asked(
            req.include_cluster_authorized_operations,
            authorized::CLUSTER,
        ))
}

fn disk_space(path: &std::path::Path) -> (i64, i64) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    let mut st: libc_statvfs::Statvfs = libc_statvfs::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc_statvfs::statvfs(c.as_ptr(), &mut st) } != 0 {
        return (-1, -1);
    }
    (
        (st.f_blocks * st.f_frsize) as i64,
        (st.f_bavail * st.f_frsize) as i64,
    )
}

mod libc_statvfs {
    pub use libc::statvfs;
    pub type Statvfs = libc::statvfs;
    pub fn zeroed() -> Statvfs {
        // SAFETY: statvfs is a plain C struct for which all-zero is valid.
        unsafe { std::mem::zeroed() }
    }
}

/// Handles DescribeLogDirs: one log dir with every (or the requested) partition's size.
pub fn describe_log_dirs(
    broker: &Broker,
    version: i16,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let dir = broker.config.data_dir();
    let dir_name = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
    let mut topics = Vec::new();
    for t in broker.topics.all() {
        let filter = match &req.topics {
            None => None,
            Some(list) => match list.iter().find(|x| x.topic.0.as_str() == t.name) {
                Some(x) => Some(x.partitions.clone()),
                None => continue,
            },
        };
        let partitions = t
            .hosted()
            .iter()
            .filter(|p| filter.as_ref().is_none_or(|f| f.contains(&p.index)))
            .map(|p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index)
                    .with_partition_size(p.log.size_bytes() as i64)
            })
            .collect();
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(TopicName(s(t.name.clone())))
                .with_partitions(partitions),
        );
    }
    let (total, usable) = if version >= 4 {
        disk_space(&dir)
    } else {
        (-1, -1)
    };
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(s(dir_name.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

/// Handles AlterReplicaLogDirs. Strom has one log dir: moving a replica to
/// it is done already, any other path is LOG_DIR_NOT_FOUND (checked first,
/// as Kafka does), and a partition that does not exist is
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn alter_replica_log_dirs(
    broker: &Broker,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let dir = broker.config.data_dir();
    let ours = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut results = Vec::new();
    for d in req.dirs {
        let here = std::fs::canonicalize(d.path.as_str()).is_ok_and(|p| p == ours);
        for t in d.topics {
            let count = broker.topics.get(&t.name.0).map(|t| t.partition_count());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let exists = count.is_some_and(|n| usize::try_from(*p).is_ok_and(|i| i < n));
                    let code = if !here {
                        ResponseError::LogDirNotFound.code()
                    } else if !exists {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        0
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(code)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}
