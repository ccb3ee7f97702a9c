//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! Topic configs can be described and changed; broker configs can be
//! described (they are static: set at start with `--set` or the config file).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::s;
use super::topics_admin::error_of;
use crate::broker::Broker;
use crate::config::{self, ConfigSource};

/// Resource type: a topic.
pub const TOPIC: i8 = 2;
/// Resource type: a broker.
pub const BROKER: i8 = 4;
/// Resource type: a broker's loggers.
pub const BROKER_LOGGER: i8 = 8;

fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
}

/// Handles DescribeConfigs.
pub fn describe(
    broker: &Broker,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                TOPIC => {
                    let Some(t) = broker.topics.get(res.resource_name.as_str()) else {
                        return r
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(s(format!(
                                "Topic '{}' does not exist",
                                res.resource_name.as_str()
                            ))));
                    };
                    let overrides = t.configs.read().clone();
                    let configs = config::TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(&res.configuration_keys, d.name))
                        .map(|d| {
                            let (value, source) =
                                config::topic_value(broker.topics.broker(), &overrides, d);
                            let mut synonyms = Vec::new();
                            if req.include_synonyms {
                                if let Some(v) = overrides.get(d.name) {
                                    synonyms.push(
                                        DescribeConfigsSynonym::default()
                                            .with_name(s(d.name))
                                            .with_value(Some(s(v.clone())))
                                            .with_source(1),
                                    );
                                }
                                if let Some(syn) = d.broker_synonym {
                                    let src = if broker.topics.broker().is_set(syn) {
                                        ConfigSource::StaticBroker
                                    } else {
                                        ConfigSource::Default
                                    };
                                    synonyms.push(
                                        DescribeConfigsSynonym::default()
                                            .with_name(s(syn))
                                            .with_value(Some(s(broker.topics.broker().get(syn))))
                                            .with_source(src as i8),
                                    );
                                }
                            }
                            entry(d, value, source, version).with_synonyms(synonyms)
                        })
                        .collect();
                    r.with_configs(configs)
                }
                BROKER => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != broker.node_id.to_string() {
                        return r
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(s(format!("Unknown broker '{name}'"))));
                    }
                    let configs = broker
                        .config
                        .all()
                        .into_iter()
                        .filter(|(d, _, _)| wanted(&res.configuration_keys, d.name))
                        .map(|(d, v, set)| {
                            let src = if set {
                                ConfigSource::StaticBroker
                            } else {
                                ConfigSource::Default
                            };
                            entry(d, v, src, version).with_read_only(true)
                        })
                        .collect();
                    r.with_configs(configs)
                }
                BROKER_LOGGER => r.with_configs(Vec::new()),
                other => r
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s(format!("Unsupported resource type {other}")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    d: &config::ConfigDef,
    value: String,
    source: ConfigSource,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(s(d.name))
        .with_value((!value.is_empty()).then(|| s(value)))
        .with_config_source(source as i8);
    if version >= 3 {
        e = e.with_config_type(d.kind as i8);
    }
    e
}

/// Applies `changes` to a topic's overrides; `None` values delete.
fn apply(
    broker: &Broker,
    topic: &str,
    changes: BTreeMap<String, Option<String>>,
    replace: bool,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let t = broker.topics.get(topic).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{topic}' does not exist"),
        )
    })?;
    let mut next = if replace {
        BTreeMap::new()
    } else {
        t.configs.read().clone()
    };
    for (k, v) in changes {
        if config::topic_def(&k).is_none() {
            return Err((
                ResponseError::InvalidConfig,
                format!("Unknown topic config name: {k}"),
            ));
        }
        match v {
            Some(v) => {
                next.insert(k, v);
            }
            None => {
                next.remove(&k);
            }
        }
    }
    broker
        .topics
        .set_configs(topic, next, validate_only)
        .map_err(|e| error_of(&e))
}

fn unsupported_resource(kind: i8) -> (ResponseError, String) {
    if kind == BROKER || kind == BROKER_LOGGER {
        (ResponseError::InvalidRequest, "Broker configs are static in Strom: set them with --set or the config file and restart".into())
    } else {
        (
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {kind}"),
        )
    }
}

/// Handles AlterConfigs (replaces a topic's whole override set).
pub fn alter(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let outcome = if res.resource_type == TOPIC {
                let changes = res
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                apply(
                    broker,
                    res.resource_name.as_str(),
                    changes,
                    true,
                    req.validate_only,
                )
            } else {
                Err(unsupported_resource(res.resource_type))
            };
            let r = alter_configs_response::AlterConfigsResourceResponse::default()
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
    let responses = req
        .resources
        .into_iter()
        .map(|res| {
            let outcome = if res.resource_type == TOPIC {
                let current = broker.topics.get(res.resource_name.as_str()).map(|t| t.configs.read().clone()).unwrap_or_default();
                let mut changes = BTreeMap::new();
                let mut err = None;
                for c in &res.configs {
                    let name = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    let list = || {
                        let d = config::topic_def(&name);
                        let existing = current.get(&name).cloned().or_else(|| d.map(|d| config::topic_value(broker.topics.broker(), &current, d).0)).unwrap_or_default();
                        existing.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect::<Vec<_>>()
                    };
                    match c.config_operation {
                        0 => {
                            changes.insert(name, value);
                        }
                        1 => {
                            changes.insert(name, None);
                        }
                        2 | 3 => {
                            if config::topic_def(&name).is_none_or(|d| d.kind != config::ConfigType::List) {
                                err = Some((ResponseError::InvalidConfig, format!("Config {name} is not a list; APPEND and SUBTRACT need a list")));
                                break;
                            }
                            let mut items = list();
                            for v in value.unwrap_or_default().split(',').map(str::trim).filter(|x| !x.is_empty()) {
                                if c.config_operation == 2 && !items.iter().any(|i| i == v) {
                                    items.push(v.to_string());
                                } else if c.config_operation == 3 {
                                    items.retain(|i| i != v);
                                }
                            }
                            changes.insert(name, Some(items.join(",")));
                        }
                        op => {
                            err = Some((ResponseError::InvalidRequest, format!("Unknown config operation {op}")));
                            break;
                        }
                    }
                }
                match err {
                    Some(e) => Err(e),
                    None => apply(broker, res.resource_name.as_str(), changes, false, req.validate_only),
                }
            } else {
                Err(unsupported_resource(res.resource_type))
            };
            let r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
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
