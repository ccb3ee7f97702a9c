//! Consumer settings under the Java client's property names and defaults.

use std::time::Duration;

use crate::error::ClientError;
use crate::props::{boolean, ms, num};

/// Where to start when a partition has no committed offset (or it is out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset (default).
    Latest,
    /// Fail instead.
    None,
}

/// Consumer configuration.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `group.id` (needed for `subscribe` and commits).
    pub group_id: Option<String>,
    /// `group.instance.id` (static membership, KIP-345).
    pub group_instance_id: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// `auto.offset.reset` (default latest).
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit` (default true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000).
    pub auto_commit_interval: Duration,
    /// `session.timeout.ms` (default 45000).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3000).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (default 300000): the rebalance timeout.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy`: `range`, `roundrobin` and/or
    /// `cooperative-sticky`, in preference order (default `range,
    /// cooperative-sticky` as in the Java client). Rebalances are
    /// cooperative (only moved partitions are revoked) when every listed
    /// assignor is cooperative, eager (all revoked first) otherwise.
    pub assignment_strategy: Vec<String>,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms` (default 500).
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes` (default 52428800).
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes` (default 1048576).
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records` (default 500).
    pub max_poll_records: usize,
    /// `isolation.level`: read_uncommitted (default) or read_committed.
    pub read_committed: bool,
    /// `request.timeout.ms` (default 30000).
    pub request_timeout: Duration,
    /// `metadata.max.age.ms` (default 300000): how often the group leader
    /// looks for new partitions of subscribed topics.
    pub metadata_max_age: Duration,
    /// `group.protocol`: `classic` (default) or `consumer` (KIP-848).
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker-side assignor KIP-848 groups ask
    /// for (`uniform` or `range`; unset: the broker's default).
    pub group_remote_assignor: Option<String>,
    /// `reconnect.backoff.ms` (default 50): the first wait before
    /// reconnecting to a broker that refused or dropped a connection.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms` (default 1000): the longest such wait
    /// (the wait doubles per failed attempt up to it).
    pub reconnect_backoff_max: Duration,
}

/// The client-side assignors the classic protocol can use.
const ASSIGNORS: [&str; 3] = ["range", "roundrobin", "cooperative-sticky"];

/// Which group protocol `subscribe` speaks (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with client-side assignment (default).
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat with assignment by the broker.
    Consumer,
}

impl ConsumerConfig {
    /// True when rebalances revoke only moved partitions (every assignor is cooperative).
    pub fn cooperative(&self) -> bool {
        self.assignment_strategy
            .iter()
            .all(|s| s == "cooperative-sticky")
    }

    /// Defaults for a consumer of `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> ConsumerConfig {
        ConsumerConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            group_id: None,
            group_instance_id: None,
            client_id: "strom-consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5000),
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3000),
            max_poll_interval: Duration::from_millis(300_000),
            assignment_strategy: vec!["range".into(), "cooperative-sticky".into()],
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            max_poll_records: 500,
            read_committed: false,
            request_timeout: Duration::from_millis(30_000),
            metadata_max_age: Duration::from_millis(300_000),
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1000),
        }
    }

    /// Sets one property by its Kafka name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<&mut Self, ClientError> {
        match name {
            "bootstrap.servers" => self.bootstrap_servers = value.to_string(),
            "group.id" => self.group_id = Some(value.to_string()).filter(|v| !v.is_empty()),
            "group.instance.id" => {
                self.group_instance_id = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "client.id" => self.client_id = value.to_string(),
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" | "smallest" | "beginning" => OffsetReset::Earliest,
                    "latest" | "largest" | "end" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => {
                        return Err(ClientError::Config(format!(
                            "auto.offset.reset must be earliest, latest or none, not '{value}'"
                        )))
                    }
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = boolean(name, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms(name, value)?,
            "session.timeout.ms" => self.session_timeout = ms(name, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms(name, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = ms(name, value)?,
            "partition.assignment.strategy" => {
                let list: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.as_str() {
                        "org.apache.kafka.clients.consumer.rangeassignor" => "range".to_string(),
                        "org.apache.kafka.clients.consumer.roundrobinassignor" => {
                            "roundrobin".to_string()
                        }
                        "org.apache.kafka.clients.consumer.cooperativestickyassignor" => {
                            "cooperative-sticky".to_string()
                        }
                        _ => s,
                    })
                    .collect();
                if list.is_empty() || list.iter().any(|s| !ASSIGNORS.contains(&s.as_str())) {
                    return Err(ClientError::Config(format!(
                        "partition.assignment.strategy: Strom's consumer offers range, roundrobin and cooperative-sticky, not '{value}'"
                    )));
                }
                self.assignment_strategy = list;
            }
            "fetch.min.bytes" => self.fetch_min_bytes = num(name, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = ms(name, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = num(name, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = num(name, value)?,
            "max.poll.records" => self.max_poll_records = num::<usize>(name, value)?.max(1),
            "isolation.level" => {
                self.read_committed = match value {
                    "read_committed" => true,
                    "read_uncommitted" => false,
                    _ => {
                        return Err(ClientError::Config(format!(
                        "isolation.level must be read_committed or read_uncommitted, not '{value}'"
                    )))
                    }
                }
            }
            "request.timeout.ms" => self.request_timeout = ms(name, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = ms(name, value)?,
            "group.protocol" => {
                self.group_protocol = match value.to_ascii_lowercase().as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => {
                        return Err(ClientError::Config(format!(
                            "group.protocol must be classic or consumer, not '{value}'"
                        )))
                    }
                }
            }
            "group.remote.assignor" => {
                self.group_remote_assignor = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "reconnect.backoff.ms" => self.reconnect_backoff = ms(name, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = ms(name, value)?,
            other => {
                return Err(ClientError::Config(format!(
                    "unknown consumer property '{other}'"
                )))
            }
        }
        Ok(self)
    }
}
