//! Admin calls about topics: create, delete, list, describe (partitions,
//! leaders, configs), alter configs, add partitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::ClientError;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A topic's partitions as Metadata reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Topic id (KIP-516), as text.
    pub id: String,
    /// Internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Per partition: (index, leader, replicas, in-sync replicas).
    pub partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)>,
}

/// One config value of a topic, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    /// Kafka name.
    pub name: String,
    /// Value, `None` for null.
    pub value: Option<String>,
    /// True when it is the default (not set on the topic).
    pub is_default: bool,
}

/// A change to a topic or broker config (IncrementalAlterConfigs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set `name` to a value.
    Set(String, String),
    /// Remove the override of `name` (back to the default).
    Delete(String),
}

impl Admin {
    /// Creates a topic. `partitions`/`replication_factor` -1 take the broker defaults.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        let topic = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        let (_, r): (i16, CreateTopicsResponse) =
            self.conn.call(ApiKey::CreateTopics, &req).await?;
        let t = r
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty CreateTopics response".into()))?;
        check_with_message(
            t.error_code,
            t.error_message,
            format!("creating topic {name}"),
        )
    }

    /// Deletes a topic.
    pub async fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let v = self.conn.version(ApiKey::DeleteTopics)?;
        let req = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(s(name))))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s(name))])
        }
        .with_timeout_ms(30_000);
        let (_, r): (i16, DeleteTopicsResponse) =
            self.conn.call(ApiKey::DeleteTopics, &req).await?;
        let t = r
            .responses
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DeleteTopics response".into()))?;
        check_with_message(
            t.error_code,
            t.error_message,
            format!("deleting topic {name}"),
        )
    }

    /// Every topic (with `internal` ones when asked), or the named ones.
    pub async fn describe_topics(
        &mut self,
        names: Option<&[String]>,
    ) -> Result<Vec<TopicDescription>, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(names.map(|ns| {
                ns.iter()
                    .map(|n| {
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(s(n))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let (_, r): (i16, MetadataResponse) = self.conn.call(ApiKey::Metadata, &req).await?;
        let mut out = Vec::new();
        for t in r.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            ClientError::check(t.error_code, format!("topic {name}"))?;
            let mut partitions: Vec<_> = t
                .partitions
                .into_iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id.0,
                        p.replica_nodes.iter().map(|b| b.0).collect(),
                        p.isr_nodes.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            partitions.sort();
            out.push(TopicDescription {
                name,
                id: t.topic_id.to_string(),
                internal: t.is_internal,
                partitions,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A topic's configs, overrides and defaults.
    pub async fn topic_configs(&mut self, name: &str) -> Result<Vec<ConfigValue>, ClientError> {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(name)),
        ]);
        let (_, r): (i16, DescribeConfigsResponse) =
            self.conn.call(ApiKey::DescribeConfigs, &req).await?;
        let res = r
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DescribeConfigs response".into()))?;
        check_with_message(
            res.error_code,
            res.error_message,
            format!("configs of topic {name}"),
        )?;
        let mut out: Vec<_> = res
            .configs
            .into_iter()
            .map(|c| ConfigValue {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                // config_source 1 = DYNAMIC_TOPIC_CONFIG (an override on the topic).
                is_default: c.config_source != 1,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Changes topic configs (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[ConfigChange],
    ) -> Result<(), ClientError> {
        self.alter_configs(2, name, changes, format!("altering topic {name}"))
            .await
    }

    /// Changes the dynamic configs of broker `id` (IncrementalAlterConfigs);
    /// as in Kafka, the request must go to that broker, so connect this
    /// admin to it.
    pub async fn alter_broker_configs(
        &mut self,
        id: i32,
        changes: &[ConfigChange],
    ) -> Result<(), ClientError> {
        let name = id.to_string();
        self.alter_configs(4, &name, changes, format!("altering broker {id}"))
            .await
    }

    async fn alter_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        changes: &[ConfigChange],
        context: String,
    ) -> Result<(), ClientError> {
        let configs = changes
            .iter()
            .map(|c| match c {
                ConfigChange::Set(k, v) => {
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(0)
                        .with_value(Some(s(v)))
                }
                ConfigChange::Delete(k) => {
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(1)
                }
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(configs),
        ]);
        let (_, r): (i16, IncrementalAlterConfigsResponse) = self
            .conn
            .call(ApiKey::IncrementalAlterConfigs, &req)
            .await?;
        let res = r.responses.into_iter().next().ok_or_else(|| {
            ClientError::Protocol("empty IncrementalAlterConfigs response".into())
        })?;
        check_with_message(res.error_code, res.error_message, context)
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest::default()
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(s(name)))
                    .with_count(count),
            ])
            .with_timeout_ms(30_000);
        let (_, r): (i16, CreatePartitionsResponse) =
            self.conn.call(ApiKey::CreatePartitions, &req).await?;
        let res = r
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty CreatePartitions response".into()))?;
        check_with_message(
            res.error_code,
            res.error_message,
            format!("adding partitions to {name}"),
        )
    }
}

/// Like [`ClientError::check`], keeping the broker's message in the context.
fn check_with_message(
    code: i16,
    message: Option<StrBytes>,
    context: String,
) -> Result<(), ClientError> {
    let context = match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{context}: {m}"),
        None => context,
    };
    ClientError::check(code, context)
}

/// The cluster as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// Cluster id.
    pub cluster_id: String,
    /// The controller's node id.
    pub controller: i32,
    /// Brokers: (node id, host, port).
    pub brokers: Vec<(i32, String, i32)>,
}

impl Admin {
    /// Deletes the records of a partition before `offset` (-1: all); returns the new log start offset.
    pub async fn delete_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, ClientError> {
        let req = DeleteRecordsRequest::default()
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ])])
            .with_timeout_ms(30_000);
        let (_, r): (i16, DeleteRecordsResponse) =
            self.conn.call(ApiKey::DeleteRecords, &req).await?;
        let p = r
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DeleteRecords response".into()))?;
        ClientError::check(
            p.error_code,
            format!("deleting records of {topic}-{partition}"),
        )?;
        Ok(p.low_watermark)
    }

    /// The cluster id, controller and brokers.
    pub async fn describe_cluster(&mut self) -> Result<ClusterDescription, ClientError> {
        let (_, r): (i16, DescribeClusterResponse) = self
            .conn
            .call(ApiKey::DescribeCluster, &DescribeClusterRequest::default())
            .await?;
        check_with_message(
            r.error_code,
            r.error_message,
            "describing the cluster".into(),
        )?;
        let mut brokers: Vec<_> = r
            .brokers
            .into_iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect();
        brokers.sort();
        Ok(ClusterDescription {
            cluster_id: r.cluster_id.to_string(),
            controller: r.controller_id.0,
            brokers,
        })
    }
}
