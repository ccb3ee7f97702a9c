//! Tests of config definitions, validation, resolution and dynamic layers.

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
    assert_eq!(b.get("listeners"), "PLAINTEXT://127.0.0.1:9092");
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

#[test]
fn every_topic_config_of_kafka_is_known_with_a_valid_default_and_docs() {
    assert_eq!(TOPIC_CONFIGS.len(), 37);
    for d in TOPIC_CONFIGS {
        assert!(!d.doc.is_empty(), "{} has no documentation", d.name);
        let v = validate(d, d.default).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        assert_eq!(v, d.default, "{} default is not in Kafka's form", d.name);
        if let Some(syn) = d.broker_synonym {
            assert!(broker_def(syn).is_some(), "{syn} missing");
        }
    }
    for name in [
        "cleanup.policy",
        "compression.zstd.level",
        "local.retention.bytes",
        "follower.replication.throttled.replicas",
        "segment.jitter.ms",
        "file.delete.delay.ms",
        "message.timestamp.after.max.ms",
        "remote.log.copy.disable",
        "max.decompressed.message.bytes",
    ] {
        assert!(topic_def(name).is_some(), "{name}");
    }
    assert!(
        topic_def("message.downconversion.enable").is_none(),
        "gone in Kafka 4"
    );
}

#[test]
fn values_are_refused_with_kafkas_messages() {
    let msg = |name: &str, v: &str| {
        validate(topic_def(name).expect("known"), v)
            .expect_err("invalid")
            .to_string()
    };
    assert_eq!(
        msg("segment.bytes", "10"),
        "Invalid value 10 for configuration segment.bytes: Value must be at least 14"
    );
    assert_eq!(
        msg("segment.bytes", "abc"),
        "Invalid value abc for configuration segment.bytes: Not a number of type INT"
    );
    assert_eq!(
        msg("segment.bytes", "99999999999"),
        "Invalid value 99999999999 for configuration segment.bytes: Not a number of type INT"
    );
    assert_eq!(
        msg("min.cleanable.dirty.ratio", "1.5"),
        "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"
    );
    assert_eq!(
        msg("cleanup.policy", "nope"),
        "Invalid value nope for configuration cleanup.policy: String must be one of: compact, delete"
    );
    assert_eq!(
        msg("cleanup.policy", "compact,"),
        "Configuration 'cleanup.policy' values must not be empty."
    );
    assert_eq!(
        msg("compression.gzip.level", "0"),
        "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"
    );
    assert_eq!(
        msg("compression.type", "brotli"),
        "Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
    );
    assert_eq!(
        msg("preallocate", "1"),
        "Invalid value 1 for configuration preallocate: Expected value to be either true or false"
    );
    assert_eq!(
        msg("leader.replication.throttled.replicas", "x"),
        "Invalid value [x] for configuration leader.replication.throttled.replicas: leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
    );
    assert_eq!(
        msg("remote.storage.enable", "true"),
        topic_defs::TIERED_STORAGE_DISABLED
    );
    let b = BrokerConfig::default();
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    assert_eq!(
        validate_topic_configs(&b, &one("no.such", "1"))
            .expect_err("unknown")
            .to_string(),
        "Unknown topic config name: no.such"
    );
    let mut lags = one("min.compaction.lag.ms", "10");
    lags.insert("max.compaction.lag.ms".into(), "5".into());
    assert_eq!(
        validate_topic_configs(&b, &lags)
            .expect_err("conflict")
            .to_string(),
        "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
    );
}

#[test]
fn values_are_reported_as_kafka_prints_them() {
    let norm = |name: &str, v: &str| validate(topic_def(name).expect("known"), v).expect("valid");
    assert_eq!(norm("cleanup.policy", ""), "");
    assert_eq!(norm("cleanup.policy", "compact, delete"), "compact,delete");
    assert_eq!(norm("min.cleanable.dirty.ratio", "1"), "1.0");
    assert_eq!(norm("min.cleanable.dirty.ratio", "0.00001"), "1.0E-5");
    assert_eq!(norm("unclean.leader.election.enable", "TRUE"), "true");
    assert_eq!(norm("segment.bytes", " 2000000 "), "2000000");
    assert_eq!(norm("leader.replication.throttled.replicas", "*"), "*");
    assert_eq!(
        norm("follower.replication.throttled.replicas", "0:1, 1:1"),
        "0:1,1:1"
    );
    // An empty cleanup.policy neither deletes nor compacts.
    let lc = log_config(
        &BrokerConfig::default(),
        &BTreeMap::from([("cleanup.policy".to_string(), String::new())]),
    );
    assert!(!lc.compact);
    assert_eq!((lc.retention_ms, lc.retention_bytes), (-1, -1));
}

#[test]
fn dynamic_broker_configs_take_precedence_and_are_validated() {
    let mut o = BTreeMap::new();
    o.insert("log.retention.ms".to_string(), "1000".to_string());
    let b = BrokerConfig::from_overrides(&o).expect("valid");
    let d = topic_def("retention.ms").expect("known");
    let none = BTreeMap::new();
    let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    let mut layers = DynamicConfigs {
        cluster_default: b
            .validate_dynamic(Scope::ClusterDefault, &set("log.retention.ms", "2000"))
            .expect("dynamic"),
        ..DynamicConfigs::default()
    };
    assert!(b.install_dynamic(layers.clone()));
    assert!(
        !b.install_dynamic(layers.clone()),
        "no change the second time"
    );
    assert_eq!(
        topic_value(&b, &none, d),
        ("2000".into(), ConfigSource::DynamicDefaultBroker)
    );
    layers.broker = b
        .validate_dynamic(Scope::Broker, &set("log.retention.ms", "3000"))
        .expect("dynamic");
    b.install_dynamic(layers);
    assert_eq!(
        topic_value(&b, &none, d),
        ("3000".into(), ConfigSource::DynamicBroker)
    );
    assert_eq!(log_config(&b, &none).retention_ms, 3000);
    let sources: Vec<ConfigSource> = b
        .synonyms("log.retention.ms")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        sources,
        [
            ConfigSource::DynamicBroker,
            ConfigSource::DynamicDefaultBroker,
            ConfigSource::StaticBroker,
            ConfigSource::Default
        ]
    );
    // Read-only and per-broker configs are refused with Kafka's messages.
    let e = b
        .validate_dynamic(Scope::Broker, &set("num.partitions", "3"))
        .expect_err("read-only");
    assert_eq!(
        e.to_string(),
        "Cannot update these configs dynamically: [num.partitions]"
    );
    let e = b
        .validate_dynamic(Scope::Broker, &set("log.retention.ms", "-5"))
        .expect_err("bad");
    assert!(e
        .to_string()
        .starts_with("Invalid value -5 for configuration log.retention.ms"));
    let e = b
        .validate_dynamic(Scope::Broker, &set("nope", "1"))
        .expect_err("unknown");
    assert_eq!(e.to_string(), "Unknown broker config name: nope");
    assert_eq!(b.get("log.retention.ms"), "3000");
    // An invalid value arriving from the log is dropped, not installed.
    b.install_dynamic(DynamicConfigs {
        broker: set("log.retention.ms", "-5"),
        ..DynamicConfigs::default()
    });
    assert_eq!(b.get("log.retention.ms"), "1000");
    assert_eq!(broker_dynamic("listeners"), Dynamic::ReadOnly);
    assert_eq!(broker_dynamic("log.cleaner.threads"), Dynamic::ClusterWide);
    assert!(broker_doc("log.retention.ms").is_some_and(|d| !d.is_empty()));
}
