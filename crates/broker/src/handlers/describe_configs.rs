//! DescribeConfigs: topic and broker configs with Kafka's sources, synonyms,
//! types and documentation.
//!
//! The response of DescribeConfigs grows with its request, so each
//! `(resource type, resource name)` is answered once: a resource named again
//! in the same request gets INVALID_REQUEST ("Each resource must appear at
//! most once.", Kafka's words for the same case in AlterConfigs) instead of
//! a second copy of its configs. Kafka 4.4 answers every copy (a 1.2 MB
//! request naming one topic 100,000 times made a 91 MB response); no client
//! sends duplicates (librdkafka and the Java client refuse them before
//! sending), so the refusal costs real clients nothing and bounds the
//! response to the distinct resources plus, per copy, its name and a dozen
//! bytes (the message is sent on the first copy of each resource only).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::s;
use crate::broker::Broker;
use crate::config::{self, ConfigDef, ConfigSource, Dynamic, Scope};

/// Resource type: a topic.
pub const TOPIC: i8 = 2;
/// Resource type: a broker.
pub const BROKER: i8 = 4;
/// Resource type: a broker's loggers.
pub const BROKER_LOGGER: i8 = 8;

/// Kafka's message for a resource named twice in one request.
pub const DUPLICATE_RESOURCE: &str = "Each resource must appear at most once.";

/// What the request asks to include in every entry.
#[derive(Clone, Copy)]
struct Want {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
}

/// Handles DescribeConfigs.
pub fn describe(
    broker: &Broker,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let want = Want {
        synonyms: req.include_synonyms,
        documentation: req.include_documentation && version >= 3,
        version,
    };
    let mut seen = HashSet::new();
    let mut told = HashSet::new();
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let r = DescribeConfigsResult::default()
                .with_error_message(None)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let key = (res.resource_type, res.resource_name.clone());
            if !seen.insert(key.clone()) {
                let r = r.with_error_code(ResponseError::InvalidRequest.code());
                // The message once per resource: copies cost a few bytes each.
                return if told.insert(key) {
                    r.with_error_message(Some(s(DUPLICATE_RESOURCE)))
                } else {
                    r
                };
            }
            let name = res.resource_name.as_str();
            match res.resource_type {
                TOPIC => describe_topic(broker, r, name, &res.configuration_keys, want),
                BROKER => describe_broker(broker, r, name, &res.configuration_keys, want),
                BROKER_LOGGER => match node_id_check(broker, name, false) {
                    Err(m) => error(r, ResponseError::InvalidRequest, m),
                    Ok(()) => r.with_configs(Vec::new()),
                },
                other => error(
                    r,
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type: {other}"),
                ),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn error(r: DescribeConfigsResult, e: ResponseError, msg: String) -> DescribeConfigsResult {
    r.with_error_code(e.code()).with_error_message(Some(s(msg)))
}

/// Kafka's checks of a broker resource name: empty (when allowed) or this node's id.
pub fn node_id_check(broker: &Broker, name: &str, empty_ok: bool) -> Result<(), String> {
    if name.is_empty() {
        return if empty_ok {
            Ok(())
        } else {
            Err("Broker id must not be empty".into())
        };
    }
    let id: i32 = name
        .parse()
        .map_err(|_| format!("Broker id must be an integer, but it is: {name}"))?;
    if id != broker.node_id {
        let also = if empty_ok { " or empty string" } else { "" };
        return Err(format!(
            "Unexpected broker id, expected {}{also}, but received {name}",
            broker.node_id
        ));
    }
    Ok(())
}

fn describe_topic(
    broker: &Broker,
    r: DescribeConfigsResult,
    name: &str,
    keys: &Option<Vec<StrBytes>>,
    want: Want,
) -> DescribeConfigsResult {
    if let Err(m) = crate::names::validate_topic_name(name) {
        return error(r, ResponseError::InvalidTopicException, m);
    }
    let Some(t) = broker.topics.get(name) else {
        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let overrides = broker.topics.configs_of(&t.name);
    let b = broker.topics.broker();
    let configs = config::TOPIC_CONFIGS
        .iter()
        .filter(|d| wanted(keys, d.name))
        .map(|d| {
            let (value, source) = config::topic_value(b, &overrides, d);
            let mut e = entry(d, Some(value), source, want);
            if want.synonyms {
                let mut syns = Vec::new();
                if let Some(v) = overrides.get(d.name) {
                    syns.push(synonym(d.name, Some(v.clone()), ConfigSource::DynamicTopic));
                }
                if let Some(syn) = d.broker_synonym {
                    for (v, src) in b.synonyms(syn) {
                        syns.push(synonym(syn, Some(v), src));
                    }
                }
                e = e.with_synonyms(syns);
            }
            e
        })
        .collect();
    r.with_configs(configs)
}

fn describe_broker(
    broker: &Broker,
    r: DescribeConfigsResult,
    name: &str,
    keys: &Option<Vec<StrBytes>>,
    want: Want,
) -> DescribeConfigsResult {
    if let Err(m) = node_id_check(broker, name, true) {
        return error(r, ResponseError::InvalidRequest, m);
    }
    let b = &broker.config;
    let configs = if name.is_empty() {
        // The cluster default resource lists what is set dynamically at that level, as Kafka does.
        let layer: BTreeMap<String, String> = b.dynamic_layer(Scope::ClusterDefault);
        layer
            .into_iter()
            .filter(|(k, _)| wanted(keys, k))
            .filter_map(|(k, v)| config::broker_def(&k).map(|d| (d, v)))
            .map(|(d, v)| {
                let syns = vec![synonym(
                    d.name,
                    Some(v.clone()),
                    ConfigSource::DynamicDefaultBroker,
                )];
                broker_entry(d, Some(v), ConfigSource::DynamicDefaultBroker, syns, want)
            })
            .collect()
    } else {
        config::BROKER_CONFIGS
            .iter()
            .filter(|d| wanted(keys, d.name))
            .map(|d| {
                let v = b.get(d.name);
                let syns = b
                    .synonyms(d.name)
                    .into_iter()
                    .map(|(v, src)| synonym(d.name, Some(v), src))
                    .collect();
                broker_entry(
                    d,
                    (!v.is_empty()).then_some(v),
                    b.source(d.name),
                    syns,
                    want,
                )
            })
            .collect()
    };
    r.with_configs(configs)
}

fn broker_entry(
    d: &ConfigDef,
    value: Option<String>,
    source: ConfigSource,
    synonyms: Vec<DescribeConfigsSynonym>,
    want: Want,
) -> DescribeConfigsResourceResult {
    let mut e = entry(d, value, source, want)
        .with_read_only(config::broker_dynamic(d.name) == Dynamic::ReadOnly);
    if want.documentation {
        e = e.with_documentation(config::broker_doc(d.name).map(s));
    }
    if want.synonyms {
        e = e.with_synonyms(synonyms);
    }
    e
}

fn synonym(name: &str, value: Option<String>, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(s(name))
        .with_value(value.map(s))
        .with_source(source as i8)
}

fn entry(
    d: &ConfigDef,
    value: Option<String>,
    source: ConfigSource,
    want: Want,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(s(d.name))
        .with_value(value.map(s))
        .with_config_source(source as i8);
    if want.version >= 3 {
        e = e.with_config_type(d.kind as i8);
    }
    if want.documentation && !d.doc.is_empty() {
        e = e.with_documentation(Some(s(d.doc)));
    }
    e
}
