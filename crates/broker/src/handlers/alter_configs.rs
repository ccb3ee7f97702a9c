//! AlterConfigs and IncrementalAlterConfigs, on topics and on the broker
//! (dynamic broker configs for this node or the cluster default "").
//!
//! Checks and messages follow Kafka's `ConfigAdminManager` and the
//! controller's `ConfigurationControlManager`: a resource named twice, a
//! config key named twice or a null value refuse the resource with
//! INVALID_REQUEST; topic config errors are INVALID_CONFIG; broker config
//! errors are INVALID_REQUEST, as Kafka reports them (KAFKA-13609).

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::describe_configs::{node_id_check, BROKER, BROKER_LOGGER, DUPLICATE_RESOURCE, TOPIC};
use super::s;
use super::topics_admin::error_of;
use crate::broker::Broker;
use crate::config::{self, ConfigError, ConfigType, DynamicError, Scope};

type Refusal = (ResponseError, String);

/// One requested change: a name and a new value (`None` deletes), or a list edit.
enum Op {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

impl Op {
    fn verb(&self) -> &'static str {
        match self {
            Op::Append(_) => "APPEND",
            _ => "SUBTRACT",
        }
    }
}

/// Resources named more than once in a request: every copy is refused.
fn duplicates<'a>(keys: impl Iterator<Item = (i8, &'a str)>) -> HashSet<(i8, String)> {
    let mut counts: HashMap<(i8, String), usize> = HashMap::new();
    for (t, n) in keys {
        *counts.entry((t, n.to_string())).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, c)| *c > 1)
        .map(|(k, _)| k)
        .collect()
}

/// Kafka's preprocessing of one resource's entries: no key twice, no null value.
fn preprocess(names: &[(&str, bool)]) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    if names.iter().any(|(n, _)| !seen.insert(*n)) {
        return Err((
            ResponseError::InvalidRequest,
            "Error due to duplicate config keys".into(),
        ));
    }
    let nulls: Vec<&str> = names
        .iter()
        .filter(|(_, null)| *null)
        .map(|(n, _)| *n)
        .collect();
    if !nulls.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            format!("Null value not supported for : {}", nulls.join(", ")),
        ));
    }
    Ok(())
}

fn list_items(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Applies `ops` to `current`; `def_of` finds a name's definition and
/// `effective` its value when `current` does not set it.
fn edit(
    mut current: BTreeMap<String, String>,
    ops: Vec<(String, Op)>,
    def_of: impl Fn(&str) -> Option<&'static config::ConfigDef>,
    effective: impl Fn(&str) -> String,
    not_list: impl Fn(&str, &Op) -> String,
) -> Result<BTreeMap<String, String>, String> {
    for (name, op) in ops {
        match op {
            Op::Set(v) => {
                current.insert(name, v);
            }
            Op::Delete => {
                current.remove(&name);
            }
            Op::Append(ref v) | Op::Subtract(ref v) => {
                if def_of(&name).is_none_or(|d| d.kind != ConfigType::List) {
                    return Err(not_list(&name, &op));
                }
                let mut items = list_items(
                    &current
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| effective(&name)),
                );
                for x in list_items(v) {
                    if matches!(op, Op::Append(_)) {
                        if !items.contains(&x) {
                            items.push(x);
                        }
                    } else {
                        items.retain(|i| *i != x);
                    }
                }
                current.insert(name, items.join(","));
            }
        }
    }
    Ok(current)
}

/// Changes a topic's overrides: from scratch (`replace`) or edited.
fn alter_topic(
    broker: &Broker,
    topic: &str,
    ops: Vec<(String, Op)>,
    replace: bool,
    validate_only: bool,
) -> Result<(), Refusal> {
    let t = broker.topics.get(topic).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{topic}' does not exist"),
        )
    })?;
    if let Some((name, _)) = ops.iter().find(|(n, _)| config::topic_def(n).is_none()) {
        let e = ConfigError::UnknownTopic(name.clone());
        return Err((ResponseError::InvalidConfig, e.to_string()));
    }
    let current = if replace {
        BTreeMap::new()
    } else {
        broker.topics.configs_of(&t.name)
    };
    let b = broker.topics.broker();
    let next = edit(
        current.clone(),
        ops,
        config::topic_def,
        |n| {
            config::topic_def(n)
                .map(|d| config::topic_value(b, &current, d).0)
                .unwrap_or_default()
        },
        |n, op| {
            format!(
                "Can't {} to key {n} because its type is not LIST.",
                op.verb()
            )
        },
    )
    .map_err(|m| (ResponseError::InvalidConfig, m))?;
    broker
        .topics
        .set_configs(topic, next, validate_only)
        .map_err(|e| error_of(&e))
}

/// Changes the dynamic broker configs of this node or of the cluster default.
fn alter_broker(
    broker: &Broker,
    name: &str,
    ops: Vec<(String, Op)>,
    replace: bool,
    validate_only: bool,
) -> Result<(), Refusal> {
    node_id_check(broker, name, true).map_err(|m| (ResponseError::InvalidRequest, m))?;
    let scope = if name.is_empty() {
        Scope::ClusterDefault
    } else {
        Scope::Broker
    };
    let b = &broker.config;
    let current = if replace {
        BTreeMap::new()
    } else {
        b.dynamic_layer(scope)
    };
    let next = edit(
        current,
        ops,
        config::broker_def,
        |n| b.get(n),
        |n, op| {
            let verb = if matches!(op, Op::Append(_)) {
                "append"
            } else {
                "subtract"
            };
            format!("Config value {verb} is not allowed for config key: {n}")
        },
    )
    .map_err(|m| (ResponseError::InvalidConfig, m))?;
    broker
        .topics
        .set_broker_configs(scope, &next, validate_only)
        .map_err(|e| match e {
            DynamicError::Invalid(ConfigError::UnknownBroker(n)) => (
                ResponseError::InvalidConfig,
                ConfigError::UnknownBroker(n).to_string(),
            ),
            e @ DynamicError::Commit(_) => (ResponseError::KafkaStorageError, e.to_string()),
            e => (ResponseError::InvalidRequest, e.to_string()),
        })?;
    Ok(())
}

/// Handles AlterConfigs (replaces a resource's whole set of overrides).
pub fn alter(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let dups = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let outcome = (|| {
                if dups.contains(&(res.resource_type, name.clone())) {
                    return Err((ResponseError::InvalidRequest, DUPLICATE_RESOURCE.into()));
                }
                let names: Vec<(&str, bool)> = res
                    .configs
                    .iter()
                    .map(|c| (c.name.as_str(), c.value.is_none()))
                    .collect();
                preprocess(&names)?;
                let ops = res
                    .configs
                    .iter()
                    .map(|c| {
                        let v = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                        (c.name.to_string(), Op::Set(v))
                    })
                    .collect();
                match res.resource_type {
                    TOPIC => alter_topic(broker, &name, ops, true, req.validate_only),
                    BROKER => alter_broker(broker, &name, ops, true, req.validate_only),
                    other => Err((
                        ResponseError::InvalidRequest,
                        format!("Unknown resource type {other}"),
                    )),
                }
            })();
            let r = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            match outcome {
                Ok(()) => r,
                Err((e, m)) => r.with_error_code(e.code()).with_error_message(Some(s(m))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Handles IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT.
pub fn incremental(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let dups = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let outcome = (|| {
                if dups.contains(&(res.resource_type, name.clone())) {
                    return Err((ResponseError::InvalidRequest, DUPLICATE_RESOURCE.into()));
                }
                let names: Vec<(&str, bool)> = res
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str(),
                            c.config_operation != 1 && c.value.is_none(),
                        )
                    })
                    .collect();
                preprocess(&names)?;
                let mut ops = Vec::new();
                for c in &res.configs {
                    let v = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    let op = match c.config_operation {
                        0 => Op::Set(v),
                        1 => Op::Delete,
                        2 => Op::Append(v),
                        3 => Op::Subtract(v),
                        other => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("Unknown operations type {other}"),
                            ))
                        }
                    };
                    ops.push((c.name.to_string(), op));
                }
                match res.resource_type {
                    TOPIC => alter_topic(broker, &name, ops, false, req.validate_only),
                    BROKER => alter_broker(broker, &name, ops, false, req.validate_only),
                    BROKER_LOGGER => Err((
                        ResponseError::InvalidRequest,
                        "Strom has no log4j loggers: set log levels with RUST_LOG at start".into(),
                    )),
                    other => Err((
                        ResponseError::InvalidRequest,
                        format!("Unknown resource type {other}"),
                    )),
                }
            })();
            let r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_message(None)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            match outcome {
                Ok(()) => r,
                Err((e, m)) => r.with_error_code(e.code()).with_error_message(Some(s(m))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::DescribeConfigsRequest;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::handlers::describe_configs::describe;

    fn broker(dir: &std::path::Path) -> Broker {
        let o = BTreeMap::from([("log.dirs".to_string(), dir.display().to_string())]);
        let config = BrokerConfig::from_overrides(&o).expect("config");
        Broker::open(config, ("127.0.0.1".into(), 9092)).expect("broker")
    }

    fn set(rtype: i8, name: &str, key: &str, value: &str) -> IncrementalAlterConfigsRequest {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(s(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s(key))
                    .with_config_operation(0)
                    .with_value(Some(s(value)))]),
        ])
    }

    fn outcome(r: &IncrementalAlterConfigsResponse) -> (i16, Option<String>) {
        let x = &r.responses[0];
        (
            x.error_code,
            x.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    #[test]
    fn topic_changes_rebuild_the_logs_and_broker_changes_reach_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.topics.create("t", 2, BTreeMap::new()).expect("create");
        let part = b
            .topics
            .get("t")
            .and_then(|t| t.partition(1))
            .expect("partition");
        assert!(!part.log.config().compact);
        let r = incremental(&b, set(TOPIC, "t", "cleanup.policy", "compact"));
        assert_eq!(outcome(&r), (0, None));
        assert!(part.log.config().compact, "the cleaner sees the new policy");
        let r = incremental(&b, set(TOPIC, "t", "segment.bytes", "abc"));
        assert_eq!(
            outcome(&r),
            (
                ResponseError::InvalidConfig.code(),
                Some(
                    "Invalid value abc for configuration segment.bytes: Not a number of type INT"
                        .into()
                )
            )
        );
        // A dynamic broker default reaches every log without an override.
        let r = incremental(&b, set(BROKER, "", "log.retention.ms", "1234"));
        assert_eq!(outcome(&r), (0, None));
        assert_eq!(
            part.log.config().retention_ms,
            -1,
            "compact only: no retention"
        );
        b.topics.create("u", 1, BTreeMap::new()).expect("create");
        let u = b
            .topics
            .get("u")
            .and_then(|t| t.partition(0))
            .expect("partition");
        assert_eq!(u.log.config().retention_ms, 1234);
        let r = incremental(&b, set(BROKER, "1", "log.retention.ms", "99"));
        assert_eq!(outcome(&r), (0, None));
        assert_eq!(u.log.config().retention_ms, 99);
        let r = incremental(&b, set(BROKER, "1", "log.dirs", "/x"));
        assert_eq!(
            outcome(&r),
            (
                ResponseError::InvalidRequest.code(),
                Some("Cannot update these configs dynamically: [log.dirs]".into())
            )
        );
        let r = incremental(&b, set(BROKER, "2", "log.retention.ms", "1"));
        assert_eq!(outcome(&r).0, ResponseError::InvalidRequest.code());
        drop(b);
        // Both layers survive a restart.
        let b = broker(dir.path());
        assert_eq!(b.config.get("log.retention.ms"), "99");
        assert_eq!(
            b.config
                .dynamic_layer(Scope::ClusterDefault)
                .get("log.retention.ms"),
            Some(&"1234".to_string())
        );
    }

    #[test]
    fn a_resource_named_many_times_is_described_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.topics.create("t", 1, BTreeMap::new()).expect("create");
        let res = DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s("t"));
        let req = DescribeConfigsRequest::default().with_resources(vec![res; 1000]);
        let r = describe(&b, 4, req);
        assert_eq!(r.results.len(), 1000);
        assert_eq!(r.results[0].error_code, 0);
        assert_eq!(r.results[0].configs.len(), config::TOPIC_CONFIGS.len());
        assert_eq!(
            r.results[1].error_message.as_deref().map(|m| m.to_string()),
            Some(DUPLICATE_RESOURCE.to_string())
        );
        assert!(r.results[1..]
            .iter()
            .all(|x| x.error_code == ResponseError::InvalidRequest.code() && x.configs.is_empty()));
        assert!(r.results[2..].iter().all(|x| x.error_message.is_none()));
    }
}
