//! Broker and topic configuration under Kafka's names and defaults.
//!
//! Broker settings are a flat map of Kafka config names to string values,
//! checked against [`BROKER_CONFIGS`] when the server starts. Topic settings
//! are the overrides a topic carries, resolved against [`TOPIC_CONFIGS`],
//! whose defaults come from the matching broker setting (`retention.ms` from
//! `log.retention.ms`, ...), exactly as in Kafka.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strom_storage::{FlushPolicy, LogConfig, TimestampType};
use thiserror::Error;

/// A configuration problem, reported to the operator or as INVALID_CONFIG.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The name is not a config Strom knows.
    #[error("unknown config '{0}'")]
    Unknown(String),
    /// The value does not parse or is out of range.
    #[error("invalid value '{value}' for config '{name}': {reason}")]
    Invalid {
        /// Config name.
        name: String,
        /// Offending value.
        value: String,
        /// What is expected.
        reason: String,
    },
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
    }
}

const fn topic(name: &'static str, kind: ConfigType, synonym: &'static str, min: i64) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default: "",
        min,
        max: i64::MAX,
        choices: &[],
        broker_synonym: Some(synonym),
    }
}

const fn at_most(mut d: ConfigDef, max: i64) -> ConfigDef {
    d.max = max;
    d
}

const fn choice(mut d: ConfigDef, choices: &'static [&'static str]) -> ConfigDef {
    d.choices = choices;
    d
}

use ConfigType::{Boolean, Double, Int, List, Long};
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
    def("group.initial.rebalance.delay.ms", Int, "3000", 0),
    def("group.min.session.timeout.ms", Int, "6000", 1),
    def("group.max.session.timeout.ms", Int, "1800000", 1),
    def("offsets.topic.num.partitions", Int, "50", 1),
    def("offsets.topic.segment.bytes", Int, "104857600", 1),
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
    def("connections.max.idle.ms", Long, "600000", -1),
    def("max.connections.per.ip", Int, "2147483647", 0),
    def("max.connections.per.ip.overrides", STR, "", 0),
    def("queued.max.request.bytes", Long, "-1", -1),
    def("fetch.max.bytes", Int, "57671680", 1024),
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
];

/// Topic configs Strom understands, with the broker config each defaults to.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    topic("retention.ms", Long, "log.retention.ms", -1),
    topic("retention.bytes", Long, "log.retention.bytes", -1),
    topic("segment.bytes", Int, "log.segment.bytes", 14),
    topic("segment.ms", Long, "log.roll.ms", 1),
    topic("index.interval.bytes", Int, "log.index.interval.bytes", 0),
    topic("flush.messages", Long, "log.flush.interval.messages", 1),
    topic("flush.ms", Long, "log.flush.interval.ms", 0),
    topic("max.message.bytes", Int, "message.max.bytes", 0),
    choice(
        topic(
            "message.timestamp.type",
            STR,
            "log.message.timestamp.type",
            0,
        ),
        TIMESTAMP_TYPES,
    ),
    choice(
        topic("cleanup.policy", List, "log.cleanup.policy", 0),
        CLEANUP_POLICIES,
    ),
    choice(
        topic("compression.type", STR, "compression.type", 0),
        COMPRESSION_TYPES,
    ),
    topic("min.insync.replicas", Int, "min.insync.replicas", 1),
    topic(
        "delete.retention.ms",
        Long,
        "log.cleaner.delete.retention.ms",
        0,
    ),
    topic(
        "unclean.leader.election.enable",
        Boolean,
        "unclean.leader.election.enable",
        0,
    ),
    topic(
        "message.timestamp.before.max.ms",
        Long,
        "log.message.timestamp.before.max.ms",
        0,
    ),
    topic(
        "message.timestamp.after.max.ms",
        Long,
        "log.message.timestamp.after.max.ms",
        0,
    ),
    at_most(
        topic(
            "min.cleanable.dirty.ratio",
            Double,
            "log.cleaner.min.cleanable.ratio",
            0,
        ),
        1,
    ),
    topic(
        "min.compaction.lag.ms",
        Long,
        "log.cleaner.min.compaction.lag.ms",
        0,
    ),
    topic(
        "max.compaction.lag.ms",
        Long,
        "log.cleaner.max.compaction.lag.ms",
        1,
    ),
];

/// Finds a topic config definition.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Finds a broker config definition.
pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks `value` against `def`.
pub fn validate(def: &ConfigDef, value: &str) -> Result<(), ConfigError> {
    let bad = |reason: String| ConfigError::Invalid {
        name: def.name.to_string(),
        value: value.to_string(),
        reason,
    };
    match def.kind {
        Int | Long => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| bad("expected an integer".into()))?;
            if def.kind == Int && i32::try_from(v).is_err() {
                return Err(bad("out of range for a 32-bit integer".into()));
            }
            if v < def.min {
                return Err(bad(format!("must be at least {}", def.min)));
            }
            if v > def.max {
                return Err(bad(format!("must be at most {}", def.max)));
            }
        }
        Double => {
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad("expected a number".into()))?;
            if !(v >= def.min as f64 && v <= def.max as f64) {
                let range = if def.max == i64::MAX {
                    format!("must be at least {}", def.min)
                } else {
                    format!("must be between {} and {}", def.min, def.max)
                };
                return Err(bad(range));
            }
        }
        Boolean => {
            if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") {
                return Err(bad("expected true or false".into()));
            }
        }
        ConfigType::String | List => {
            if !def.choices.is_empty() {
                let items: Vec<&str> = if def.kind == List {
                    value.split(',').map(str::trim).collect()
                } else {
                    vec![value.trim()]
                };
                if let Some(x) = items.iter().find(|x| !def.choices.contains(x)) {
                    return Err(bad(format!(
                        "'{x}' is not one of {}",
                        def.choices.join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The broker's settings: Kafka names to values, validated.
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    values: BTreeMap<String, String>,
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
        })
    }

    /// True when the broker config was set explicitly.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The value of a broker config (explicit or default); "" when null.
    pub fn get(&self, name: &str) -> String {
        if let Some(v) = self.values.get(name) {
            return v.clone();
        }
        broker_def(name)
            .map(|d| d.default.to_string())
            .unwrap_or_default()
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

    /// `host:port` to bind, from `listeners`.
    pub fn listen_addr(&self) -> String {
        strip_scheme(&self.get("listeners"))
    }

    /// `host:port` to advertise: `advertised.listeners`, or the bound address.
    pub fn advertised_addr(&self) -> Option<String> {
        let a = self.get("advertised.listeners");
        (!a.is_empty()).then(|| strip_scheme(&a))
    }

    /// Every broker config with its effective value and whether it was set.
    pub fn all(&self) -> Vec<(&'static ConfigDef, String, bool)> {
        BROKER_CONFIGS
            .iter()
            .map(|d| (d, self.get(d.name), self.is_set(d.name)))
            .collect()
    }
}

fn strip_scheme(listener: &str) -> String {
    let first = listener.split(',').next().unwrap_or("").trim();
    first
        .split_once("://")
        .map_or(first, |(_, rest)| rest)
        .to_string()
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
    let syn = def.broker_synonym.unwrap_or(def.name);
    let source = if broker.is_set(syn) {
        ConfigSource::StaticBroker
    } else {
        ConfigSource::Default
    };
    (broker.get(syn), source)
}

/// Where a config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic override.
    DynamicTopic = 1,
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
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides_resolve_like_kafka() {
        let mut o = BTreeMap::new();
        o.insert("log.retention.ms".to_string(), "1000".to_string());
        let b = BrokerConfig::from_overrides(&o).expect("valid");
        let mut t = BTreeMap::new();
        let d = topic_def("retention.ms").expect("known");
        assert_eq!(
            topic_value(&b, &t, d),
            ("1000".to_string(), ConfigSource::StaticBroker)
        );
        t.insert("retention.ms".to_string(), "5".to_string());
        assert_eq!(
            topic_value(&b, &t, d),
            ("5".to_string(), ConfigSource::DynamicTopic)
        );
        assert_eq!(log_config(&b, &t).retention_ms, 5);
        let d = topic_def("segment.bytes").expect("known");
        assert_eq!(topic_value(&b, &t, d).1, ConfigSource::Default);
        assert_eq!(b.listen_addr(), "127.0.0.1:9092");
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let mut o = BTreeMap::new();
        o.insert("no.such.thing".to_string(), "1".to_string());
        assert!(matches!(
            BrokerConfig::from_overrides(&o),
            Err(ConfigError::Unknown(_))
        ));
        let d = topic_def("retention.ms").expect("known");
        assert!(validate(d, "abc").is_err());
        assert!(validate(d, "-2").is_err());
        assert!(validate(
            topic_def("cleanup.policy").expect("known"),
            "delete,compact"
        )
        .is_ok());
        assert!(validate(topic_def("cleanup.policy").expect("known"), "nope").is_err());
    }
}
