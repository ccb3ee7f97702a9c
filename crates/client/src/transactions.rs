//! Admin calls about transactions and producers: ListTransactions,
//! DescribeTransactions, DescribeProducers.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::ClientError;

/// A transactional id as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// Transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// State name (Ongoing, CompleteCommit, ...).
    pub state: String,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// Transactional id.
    pub transactional_id: String,
    /// State name.
    pub state: String,
    /// Producer id and epoch.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Transaction timeout.
    pub timeout_ms: i32,
    /// When the open transaction started (epoch ms), or -1.
    pub start_time_ms: i64,
    /// Partitions in the open transaction.
    pub partitions: Vec<(String, i32)>,
}

/// One producer writing to a partition (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    /// Partition.
    pub partition: i32,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i32,
    /// Last sequence number written.
    pub last_sequence: i32,
    /// Timestamp of its last batch.
    pub last_timestamp: i64,
    /// First offset of its open transaction, or -1.
    pub current_txn_start_offset: i64,
}

impl Admin {
    /// Every transactional id the coordinator knows, optionally only those in `states`.
    pub async fn list_transactions(
        &mut self,
        states: &[String],
    ) -> Result<Vec<TransactionListing>, ClientError> {
        let req = ListTransactionsRequest::default().with_state_filters(
            states
                .iter()
                .map(|s| StrBytes::from_string(s.clone()))
                .collect(),
        );
        let (_, r): (i16, ListTransactionsResponse) =
            self.conn.call(ApiKey::ListTransactions, &req).await?;
        ClientError::check(r.error_code, "listing transactions")?;
        if let Some(bad) = r.unknown_state_filters.first() {
            return Err(ClientError::Protocol(format!(
                "unknown transaction state '{bad}' (known: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence)"
            )));
        }
        let mut out: Vec<_> = r
            .transaction_states
            .into_iter()
            .map(|t| TransactionListing {
                transactional_id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// One transactional id's current transaction.
    pub async fn describe_transaction(
        &mut self,
        id: &str,
    ) -> Result<TransactionDescription, ClientError> {
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
        let (_, r): (i16, DescribeTransactionsResponse) =
            self.conn.call(ApiKey::DescribeTransactions, &req).await?;
        let t =
            r.transaction_states.into_iter().next().ok_or_else(|| {
                ClientError::Protocol("empty DescribeTransactions response".into())
            })?;
        ClientError::check(t.error_code, format!("describing transactional id {id}"))?;
        Ok(TransactionDescription {
            transactional_id: t.transactional_id.0.to_string(),
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .into_iter()
                .flat_map(|td| {
                    let name = td.topic.0.to_string();
                    td.partitions.into_iter().map(move |p| (name.clone(), p))
                })
                .collect(),
        })
    }

    /// The producers the broker knows for `partitions` of `topic`.
    pub async fn describe_producers(
        &mut self,
        topic: &str,
        partitions: Vec<i32>,
    ) -> Result<Vec<ProducerDescription>, ClientError> {
        let req = DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(partitions),
        ]);
        let (_, r): (i16, DescribeProducersResponse) =
            self.conn.call(ApiKey::DescribeProducers, &req).await?;
        let mut out = Vec::new();
        for t in r.topics {
            for p in t.partitions {
                ClientError::check(
                    p.error_code,
                    format!("describing producers of {topic}-{}", p.partition_index),
                )?;
                out.extend(p.active_producers.into_iter().map(|a| ProducerDescription {
                    partition: p.partition_index,
                    producer_id: a.producer_id.0,
                    producer_epoch: a.producer_epoch,
                    last_sequence: a.last_sequence,
                    last_timestamp: a.last_timestamp,
                    current_txn_start_offset: a.current_txn_start_offset,
                }));
            }
        }
        Ok(out)
    }
}
