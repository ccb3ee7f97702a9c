//! Broker and topic configuration under Kafka's names and defaults.
//!
//! Broker settings are a flat map of Kafka config names to string values,
//! checked against [`BROKER_CONFIGS`] when the server starts. Topic settings
//! are the overrides a topic carries, resolved against [`TOPIC_CONFIGS`],
//! whose defaults come from the matching broker setting (`retention.ms` from
//! `log.retention.ms`, ...), exactly as in Kafka.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use strom_storage::{FlushPolicy, LogConfig, TimestampType};
use thiserror::Error;

/// A configuration problem, reported to the operator or as INVALID_CONFIG.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The name is not a broker config Strom knows.
    #[error("unknown config '{0}'")]
    Unknown(String),
    /// The name is not a topic config (Kafka's message).
    #[error("Unknown topic config name: {0}")]
    UnknownTopic(String),
    /// The name is not a broker config Strom knows (dynamic update).
    #[error("Unknown broker config name: {0}")]
    UnknownBroker(String),
    /// A value refused for a reason other than its own type or range.
    #[error("{0}")]
    Refused(String),
    /// The value does not parse or is out of range (Kafka's message).
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    Invalid {
        /// Config name.
        name: String,
        /// Offending value.
        value: String,
        /// What is expected.
        reason: String,
    },
}

/// A refused change of dynamic broker configs.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DynamicError {
    /// Read-only (or per-broker only) configs: Kafka's INVALID_REQUEST.
    #[error("{0}")]
    ReadOnly(String),
    /// A name Strom does not know, or a bad value: INVALID_CONFIG.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The metadata log did not take the change.
    #[error("cannot commit dynamic broker configs to the metadata log: {0}")]
    Commit(String),
}

/// Kafka's config value types (DescribeConfigs `config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// true/false.
    Boolean = 1,
    /// Free text or an enumeration.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 16-bit integer.
    Short = 4,
    /// 64-bit integer.
    Long = 5,
    /// 64-bit floating point.
    Double = 6,
    /// Comma-separated list.
    List = 7,
}

/// One known config: its name, type, default and allowed values.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Value type.
    pub kind: ConfigType,
    /// Default value as Kafka writes it; "" for none (null).
    pub default: &'static str,
    /// Smallest allowed number, for Int/Long/Double.
    pub min: i64,
    /// Largest allowed number, for Int/Long/Double.
    pub max: i64,
    /// Allowed values for enumerations; empty for any.
    pub choices: &'static [&'static str],
    /// For topic configs: the broker config that provides the default.
    pub broker_synonym: Option<&'static str>,
    /// A validator beyond the range and the choices.
    pub check: Check,
    /// Kafka's documentation string (DescribeConfigs `include_documentation`).
    pub doc: &'static str,
}

/// Validators of Kafka's that are not a plain range or a set of choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The range (`min`, `max`) and `choices` only.
    Plain,
    /// `compression.gzip.level`: 1 to 9, or -1.
    GzipLevel,
    /// `*.replication.throttled.replicas`: `*` or `partition:broker` pairs.
    ThrottledReplicas,
    /// A boolean that may not be true here; the message says why.
    NotTrue(&'static str),
}

/// How a broker config may change at runtime (Kafka's `DynamicBrokerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamic {
    /// Only in the static configuration; needs a restart.
    ReadOnly,
    /// Per broker (resource name = node id) only.
    PerBroker,
    /// Per broker or as the cluster default (resource name "").
    ClusterWide,
}

const fn def(name: &'static str, kind: ConfigType, default: &'static str, min: i64) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        min,
        max: i64::MAX,
        choices: &[],
        broker_synonym: None,
        check: Check::Plain,
        doc: "",
    }
}

const fn check(mut d: ConfigDef, check: Check) -> ConfigDef {
    d.check = check;
    d
}

const fn between(mut d: ConfigDef, min: i64, max: i64) -> ConfigDef {
    d.min = min;
    d.max = max;
    d
}

const fn at_most(mut d: ConfigDef, max: i64) -> ConfigDef {
    d.max = max;
    d
}

const fn choice(mut d: ConfigDef, choices: &'static [&'static str]) -> ConfigDef {
    d.choices = choices;
    d
}

mod broker_docs;
pub mod cluster;
pub mod dynamic;
mod topic_defs;
mod validate;

pub use dynamic::{DynamicConfigs, Scope};

use ConfigType::{Boolean, Double, Int, List, Long, Short};
const STR: ConfigType = ConfigType::String;

const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const LONG_MAX: &str = "9223372036854775807";

/// Broker configs Strom understands (a subset of Kafka's, same names and defaults).
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def("node.id", Int, "1", 0),
    def("listeners", STR, "PLAINTEXT://127.0.0.1:9092", 0),
    def("advertised.listeners", STR, "", 0),
    def("process.roles", List, "broker,controller", 0),
    def("controller.quorum.voters", List, "", 0),
    def("controller.listener.names", STR, "", 0),
    def(
        "listener.security.protocol.map",
        STR,
        cluster::DEFAULT_PROTOCOL_MAP,
        0,
    ),
    def("inter.broker.listener.name", STR, "", 0),
    def("broker.rack", STR, "", 0),
    def("broker.heartbeat.interval.ms", Int, "2000", 1),
    def("broker.session.timeout.ms", Int, "9000", 1),
    def("auto.leader.rebalance.enable", Boolean, "true", 0),
    def("leader.imbalance.check.interval.seconds", Long, "300", 1),
    def("controller.quorum.election.timeout.ms", Int, "1000", 1),
    def("controller.quorum.fetch.timeout.ms", Int, "2000", 1),
    def("log.dirs", STR, "./strom-data", 0),
    def("auto.create.topics.enable", Boolean, "true", 0),
    def("num.partitions", Int, "1", 1),
    def("default.replication.factor", Int, "1", 1),
    def("log.retention.ms", Long, "604800000", -1),
    def("log.retention.bytes", Long, "-1", -1),
    def("log.retention.check.interval.ms", Long, "300000", 1),
    def("log.segment.bytes", Int, "1073741824", 14),
    def("log.roll.ms", Long, "604800000", 1),
    def("log.index.interval.bytes", Int, "4096", 0),
    def("log.flush.interval.messages", Long, LONG_MAX, 1),
    def("log.flush.interval.ms", Long, "", 0),
    def("message.max.bytes", Int, "1048588", 0),
    choice(
        def("log.message.timestamp.type", STR, "CreateTime", 0),
        TIMESTAMP_TYPES,
    ),
    choice(
        def("log.cleanup.policy", List, "delete", 0),
        CLEANUP_POLICIES,
    ),
    choice(
        def("compression.type", STR, "producer", 0),
        COMPRESSION_TYPES,
    ),
    def("min.insync.replicas", Int, "1", 1),
    def("socket.request.max.bytes", Int, "104857600", 1),
    def("max.connections", Int, "2147483647", 1),
    def("delete.topic.enable", Boolean, "true", 0),
    def("log.cleaner.delete.retention.ms", Long, "86400000", 0),
    def("unclean.leader.election.enable", Boolean, "false", 0),
    def("replica.lag.time.max.ms", Long, "30000", 1),
    def("leader.replication.throttled.rate", Long, LONG_MAX, 0),
    def("follower.replication.throttled.rate", Long, LONG_MAX, 0),
    def("replication.quota.window.num", Int, "11", 1),
    def(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        Long,
        LONG_MAX,
        0,
    ),
    def("replication.quota.window.size.seconds", Int, "1", 1),
    def(
        "replica.high.watermark.checkpoint.interval.ms",
        Long,
        "5000",
        1,
    ),
    def("group.initial.rebalance.delay.ms", Int, "3000", 0),
    def("group.min.session.timeout.ms", Int, "6000", 1),
    def("group.max.session.timeout.ms", Int, "1800000", 1),
    def("offsets.topic.num.partitions", Int, "50", 1),
    def("offsets.topic.segment.bytes", Int, "104857600", 1),
    def("offsets.topic.replication.factor", Short, "3", 1),
    def("offsets.commit.timeout.ms", Int, "5000", 1),
    def("offsets.retention.minutes", Int, "10080", 1),
    def("offset.metadata.max.bytes", Int, "4096", 0),
    def("group.consumer.session.timeout.ms", Int, "45000", 1),
    def("group.consumer.heartbeat.interval.ms", Int, "5000", 1),
    def("producer.id.expiration.ms", Int, "86400000", 1),
    def("producer.id.expiration.check.interval.ms", Int, "600000", 1),
    def("transactional.id.expiration.ms", Int, "604800000", 1),
    def("transaction.max.timeout.ms", Int, "900000", 1),
    def(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Int,
        "10000",
        1,
    ),
    def("transaction.state.log.num.partitions", Int, "50", 1),
    def("transaction.state.log.segment.bytes", Int, "104857600", 1),
    def("transaction.state.log.replication.factor", Short, "3", 1),
    def("transaction.state.log.min.isr", Int, "2", 1),
    def("connections.max.idle.ms", Long, "600000", -1),
    def("max.connections.per.ip", Int, "2147483647", 0),
    def("max.connections.per.ip.overrides", STR, "", 0),
    def("queued.max.request.bytes", Long, "-1", -1),
    def("fetch.max.bytes", Int, "57671680", 1024),
    def("max.request.partition.size.limit", Int, "2000", 1),
    def("group.max.size", Int, "2147483647", 1),
    def("log.message.timestamp.before.max.ms", Long, LONG_MAX, 0),
    def("log.message.timestamp.after.max.ms", Long, "3600000", 0),
    def("log.cleaner.enable", Boolean, "true", 0),
    def("log.cleaner.threads", Int, "1", 0),
    def("log.cleaner.backoff.ms", Long, "15000", 0),
    def("log.cleaner.dedupe.buffer.size", Long, "134217728", 0),
    def("log.cleaner.io.buffer.size", Int, "524288", 0),
    def("log.cleaner.io.buffer.load.factor", Double, "0.9", 0),
    def(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        "1.7976931348623157E308",
        0,
    ),
    at_most(def("log.cleaner.min.cleanable.ratio", Double, "0.5", 0), 1),
    def("log.cleaner.min.compaction.lag.ms", Long, "0", 0),
    def("log.cleaner.max.compaction.lag.ms", Long, LONG_MAX, 1),
    def("log.roll.jitter.ms", Long, "", 0),
    def("log.index.size.max.bytes", Int, "10485760", 4),
    def("log.segment.delete.delay.ms", Long, "60000", 0),
    def("log.flush.scheduler.interval.ms", Long, LONG_MAX, i64::MIN),
    between(
        def("max.decompressed.message.bytes", Int, "2147483639", 1),
        1,
        2147483639,
    ),
    check(
        def("compression.gzip.level", Int, "-1", i64::MIN),
        Check::GzipLevel,
    ),
    between(def("compression.lz4.level", Int, "9", 1), 1, 17),
    between(def("compression.zstd.level", Int, "3", 0), -131072, 22),
    def("log.preallocate", Boolean, "false", 0),
    def("log.local.retention.ms", Long, "-2", -2),
    def("log.local.retention.bytes", Long, "-2", -2),
    def("log.remote.copy.lag.ms", Long, "0", -1),
    def("log.remote.copy.lag.bytes", Long, "-1", -1),
    def("num.io.threads", Int, "8", 1),
    def("num.network.threads", Int, "3", 1),
    def("background.threads", Int, "10", 1),
    def("num.recovery.threads.per.data.dir", Int, "2", 1),
];

pub use topic_defs::TOPIC_CONFIGS;

/// Finds a topic config definition.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Finds a broker config definition.
pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

pub use validate::{java_double, validate};

/// Checks topic config overrides as Kafka's `LogConfig.validate` does: every
/// name known, every value valid, and the values consistent with each other
/// (resolved against `broker`). Returns the overrides as Kafka reports them.
pub fn validate_topic_configs(
    broker: &BrokerConfig,
    configs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in configs {
        let d = topic_def(k).ok_or_else(|| ConfigError::UnknownTopic(k.clone()))?;
        out.insert(k.clone(), validate(d, v)?);
    }
    let num = |name: &str| {
        topic_def(name)
            .map(|d| topic_value(broker, &out, d).0)
            .and_then(|v| v.parse::<i64>().ok())
    };
    if let (Some(min), Some(max)) = (num("min.compaction.lag.ms"), num("max.compaction.lag.ms")) {
        if min > max {
            return Err(ConfigError::Refused(format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
            )));
        }
    }
    Ok(out)
}

/// The broker's settings: Kafka names to values, validated.
///
/// A value comes from the first layer that has it, in Kafka's order of
/// precedence: dynamic for this node, dynamic cluster default, static (file,
/// environment, flags), Kafka's default. Clones share the dynamic layers.
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    values: BTreeMap<String, String>,
    dynamic: Arc<RwLock<DynamicConfigs>>,
}

impl BrokerConfig {
    /// Builds a config from overrides; unknown names and bad values are errors.
    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        for (k, v) in overrides {
            let d = broker_def(k).ok_or_else(|| ConfigError::Unknown(k.clone()))?;
            validate(d, v)?;
        }
        Ok(BrokerConfig {
            values: overrides.clone(),
            dynamic: Arc::default(),
        })
    }

    /// True when the broker config was set statically or dynamically.
    pub fn is_set(&self, name: &str) -> bool {
        self.source(name) != ConfigSource::Default
    }

    /// Where the value of a broker config comes from.
    pub fn source(&self, name: &str) -> ConfigSource {
        let d = self.dynamic.read();
        if d.broker.contains_key(name) {
            ConfigSource::DynamicBroker
        } else if d.cluster_default.contains_key(name) {
            ConfigSource::DynamicDefaultBroker
        } else if self.values.contains_key(name) {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        }
    }

    /// The value of a broker config (explicit or default); "" when null.
    pub fn get(&self, name: &str) -> String {
        {
            let d = self.dynamic.read();
            if let Some(v) = d.broker.get(name).or_else(|| d.cluster_default.get(name)) {
                return v.clone();
            }
        }
        if let Some(v) = self.values.get(name) {
            return v.clone();
        }
        broker_def(name)
            .map(|d| d.default.to_string())
            .unwrap_or_default()
    }

    /// Every layer that sets `name`, in Kafka's order of precedence
    /// (DescribeConfigs synonyms): dynamic broker, dynamic default, static,
    /// default (when Kafka's default is not null).
    pub fn synonyms(&self, name: &str) -> Vec<(String, ConfigSource)> {
        let mut out = Vec::new();
        {
            let d = self.dynamic.read();
            if let Some(v) = d.broker.get(name) {
                out.push((v.clone(), ConfigSource::DynamicBroker));
            }
            if let Some(v) = d.cluster_default.get(name) {
                out.push((v.clone(), ConfigSource::DynamicDefaultBroker));
            }
        }
        if let Some(v) = self.values.get(name) {
            out.push((v.clone(), ConfigSource::StaticBroker));
        }
        if let Some(d) = broker_def(name).filter(|d| !d.default.is_empty()) {
            out.push((d.default.to_string(), ConfigSource::Default));
        }
        out
    }

    /// The dynamic configs of `scope`.
    pub fn dynamic_layer(&self, scope: Scope) -> BTreeMap<String, String> {
        self.dynamic.read().layer(scope).clone()
    }

    /// Installs the dynamic layers the metadata image holds. A value this
    /// version does not accept is dropped with a warning, as Kafka ignores
    /// invalid dynamic configs. Whether anything changed.
    pub fn install_dynamic(&self, mut layers: DynamicConfigs) -> bool {
        for scope in [Scope::Broker, Scope::ClusterDefault] {
            layers.layer_mut(scope).retain(|k, v| {
                let ok = check_dynamic(k, v, scope).is_ok();
                if !ok {
                    tracing::warn!(config = %k, value = %v, "ignoring invalid dynamic broker config");
                }
                ok
            });
        }
        let mut d = self.dynamic.write();
        if *d == layers {
            return false;
        }
        *d = layers;
        true
    }

    /// Checks `next` as the whole dynamic layer of `scope` (Kafka's
    /// messages for unknown, read-only and per-broker-only names and bad
    /// values), and returns it with its values normalized. Nothing changes
    /// until the layer is committed and comes back through the image.
    pub fn validate_dynamic(
        &self,
        scope: Scope,
        next: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DynamicError> {
        if let Some(k) = next.keys().find(|k| broker_def(k).is_none()) {
            return Err(ConfigError::UnknownBroker(k.clone()).into());
        }
        let not_dynamic: Vec<&str> = next
            .keys()
            .filter(|k| broker_dynamic(k) == Dynamic::ReadOnly)
            .map(String::as_str)
            .collect();
        if !not_dynamic.is_empty() {
            return Err(DynamicError::ReadOnly(format!(
                "Cannot update these configs dynamically: [{}]",
                not_dynamic.join(", ")
            )));
        }
        if scope == Scope::ClusterDefault {
            let per_broker: Vec<&str> = next
                .keys()
                .filter(|k| broker_dynamic(k) == Dynamic::PerBroker)
                .map(String::as_str)
                .collect();
            if !per_broker.is_empty() {
                return Err(DynamicError::ReadOnly(format!(
                    "Cannot update these configs at default cluster level, broker id must be specified: [{}]",
                    per_broker.join(", ")
                )));
            }
        }
        let mut normalized = BTreeMap::new();
        for (k, v) in next {
            normalized.insert(k.clone(), check_dynamic(k, v, scope)?);
        }
        Ok(normalized)
    }

    /// A numeric broker config; `default` if unset or null.
    pub fn get_i64(&self, name: &str, default: i64) -> i64 {
        self.get(name).trim().parse().unwrap_or(default)
    }

    /// A floating-point broker config; `default` if unset or null.
    pub fn get_f64(&self, name: &str, default: f64) -> f64 {
        self.get(name).trim().parse().unwrap_or(default)
    }

    /// A boolean broker config.
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).trim().eq_ignore_ascii_case("true")
    }

    /// Node id.
    pub fn node_id(&self) -> i32 {
        self.get_i64("node.id", 1) as i32
    }

    /// The data directory (first of `log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(
            self.get("log.dirs")
                .split(',')
                .next()
                .unwrap_or("./strom-data")
                .trim(),
        )
    }

    /// Every broker config with its effective value and whether it was set.
    pub fn all(&self) -> Vec<(&'static ConfigDef, String, bool)> {
        BROKER_CONFIGS
            .iter()
            .map(|d| (d, self.get(d.name), self.is_set(d.name)))
            .collect()
    }
}

/// How a broker config may change at runtime. `listeners` is per-broker
/// dynamic in Kafka; Strom cannot rebind a running listener, so it is
/// read-only here.
pub fn broker_dynamic(name: &str) -> Dynamic {
    if name == "listeners" {
        return Dynamic::ReadOnly;
    }
    broker_docs::BROKER_DOCS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(Dynamic::ReadOnly, |(_, m, _)| *m)
}

/// Kafka's documentation of a broker config.
pub fn broker_doc(name: &str) -> Option<&'static str> {
    broker_docs::BROKER_DOCS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, d)| *d)
}

fn check_dynamic(name: &str, value: &str, scope: Scope) -> Result<String, ConfigError> {
    let d = broker_def(name).ok_or_else(|| ConfigError::UnknownBroker(name.to_string()))?;
    if broker_dynamic(name) == Dynamic::ReadOnly
        || (scope == Scope::ClusterDefault && broker_dynamic(name) == Dynamic::PerBroker)
    {
        return Err(ConfigError::Refused(format!(
            "Cannot update these configs dynamically: [{name}]"
        )));
    }
    validate(d, value)
}

/// Effective value of a topic config: the override, else the broker's.
pub fn topic_value(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    def: &ConfigDef,
) -> (String, ConfigSource) {
    if let Some(v) = overrides.get(def.name) {
        return (v.clone(), ConfigSource::DynamicTopic);
    }
    let Some(syn) = def.broker_synonym else {
        return (def.default.to_string(), ConfigSource::Default);
    };
    let value = broker.get(syn);
    if value.is_empty() {
        // Kafka's broker default is null here (log.roll.jitter.ms, ...): the topic default applies.
        return (def.default.to_string(), ConfigSource::Default);
    }
    (value, broker.source(syn))
}

/// Where a config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic override.
    DynamicTopic = 1,
    /// Set dynamically for this broker.
    DynamicBroker = 2,
    /// Set dynamically as the cluster default.
    DynamicDefaultBroker = 3,
    /// Set in the broker's configuration.
    StaticBroker = 4,
    /// Kafka's default.
    Default = 5,
}

/// Builds the storage settings of a topic's logs.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let get = |name: &str| {
        topic_def(name)
            .map(|d| topic_value(broker, overrides, d).0)
            .unwrap_or_default()
    };
    let num = |name: &str, default: i64| get(name).trim().parse::<i64>().unwrap_or(default);
    let flush_messages = num("flush.messages", i64::MAX);
    let flush_ms = get("flush.ms").trim().parse::<i64>().ok();
    let flush = if flush_messages <= 1 {
        FlushPolicy::EveryAppend
    } else if let Some(ms) = flush_ms.filter(|ms| *ms < i64::MAX) {
        FlushPolicy::Interval(ms.max(0) as u64)
    } else {
        FlushPolicy::Os
    };
    // Retention deletes only under the "delete" policy; compacted-only topics keep everything.
    let deletes = get("cleanup.policy")
        .split(',')
        .any(|p| p.trim() == "delete");
    LogConfig {
        segment_bytes: num("segment.bytes", 1 << 30).max(14) as u64,
        segment_ms: num("segment.ms", 604_800_000),
        index_interval_bytes: num("index.interval.bytes", 4096).clamp(0, u32::MAX as i64) as u32,
        retention_ms: if deletes {
            num("retention.ms", 604_800_000)
        } else {
            -1
        },
        retention_bytes: if deletes {
            num("retention.bytes", -1)
        } else {
            -1
        },
        flush,
        timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        compact: get("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "compact"),
        delete_retention_ms: num("delete.retention.ms", 86_400_000),
        min_compaction_lag_ms: num("min.compaction.lag.ms", 0),
        max_compaction_lag_ms: num("max.compaction.lag.ms", i64::MAX),
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .trim()
            .parse()
            .unwrap_or(0.5),
        max_message_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
    }
}

#[cfg(test)]
mod tests;
