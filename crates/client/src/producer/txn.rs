//! Producer ids and the transactional side of the producer: InitProducerId,
//! AddPartitionsToTxn before a partition's first batch in a transaction,
//! AddOffsetsToTxn + TxnOffsetCommit, EndTxn. Calls the coordinator answers
//! with a retriable error (CONCURRENT_TRANSACTIONS, COORDINATOR_*) are
//! retried with backoff until `max.block.ms`.

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{Accumulator, Inner, Sealed};
use crate::error::ClientError;

/// Where the producer's transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TxnState {
    Uninitialized,
    Ready,
    InTransaction,
    /// Fenced or otherwise unusable.
    Fatal(String),
}

/// The consumer side of `send_offsets_to_transaction`: the group and, for
/// fencing of zombie consumers, its generation and member id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// Group id.
    pub group_id: String,
    /// Generation, or -1 to skip the membership check.
    pub generation_id: i32,
    /// Member id, or "".
    pub member_id: String,
    /// Static member id (`group.instance.id`).
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata naming only the group (no membership check).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            ..Default::default()
        }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn retriable(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::ConcurrentTransactions
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator
    ) || e.is_retriable()
}

/// Runs `call` until it succeeds, fails for good, or `max.block.ms` passes.
async fn with_retries<T, F, Fut>(inner: &Inner, what: &str, mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + inner.config.max_block;
    loop {
        match call().await {
            Err(ClientError::Kafka { error, context })
                if retriable(error) && Instant::now() < deadline =>
            {
                tracing::debug!(what, %context, %error, "retrying");
            }
            Err(ClientError::Io(_) | ClientError::Timeout(_)) if Instant::now() < deadline => {}
            other => return other,
        }
        // The coordinator may have moved (NOT_COORDINATOR, a lost
        // connection): the next attempt looks it up again.
        inner.cluster.forget_coordinators().await;
        tokio::time::sleep(inner.config.retry_backoff).await;
    }
}

/// InitProducerId for an idempotent (`txn_id` `None`) or transactional producer.
pub(super) async fn init_producer_id(
    inner: &Inner,
    txn_id: Option<&str>,
) -> Result<(i64, i16), ClientError> {
    with_retries(inner, "InitProducerId", || async {
        let conn = match txn_id {
            Some(id) => inner.cluster.known_coordinator(id, 1).await?,
            None => inner.cluster.any_connection().await?,
        };
        let req = InitProducerIdRequest::default()
            .with_transactional_id(txn_id.map(|t| TransactionalId(s(t))))
            .with_transaction_timeout_ms(
                inner
                    .config
                    .transaction_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            )
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let (_, r): (i16, InitProducerIdResponse) = conn.call(ApiKey::InitProducerId, &req).await?;
        ClientError::check(r.error_code, "InitProducerId")?;
        Ok((r.producer_id.0, r.producer_epoch))
    })
    .await
}

fn txn_id(inner: &Inner) -> Result<&str, ClientError> {
    inner
        .config
        .transactional_id
        .as_deref()
        .ok_or_else(|| ClientError::Config("transactions need transactional.id".into()))
}

fn fatal_if_fenced(e: ClientError) -> (ClientError, Option<String>) {
    let fenced = matches!(
        &e,
        ClientError::Kafka {
            error: ResponseError::ProducerFenced
                | ResponseError::InvalidProducerEpoch
                | ResponseError::InvalidProducerIdMapping
                | ResponseError::TransactionalIdAuthorizationFailed,
            ..
        }
    );
    let why = fenced.then(|| e.to_string());
    (e, why)
}

pub(super) async fn init_transactions(inner: &Inner) -> Result<(), ClientError> {
    let id = txn_id(inner)?.to_string();
    let mut st = inner.txn.lock().await;
    if let TxnState::Fatal(why) = &*st {
        return Err(ClientError::Protocol(format!(
            "the producer is fenced: {why}"
        )));
    }
    let (pid, epoch) = init_producer_id(inner, Some(&id)).await?;
    {
        let mut acc = inner.acc();
        acc.producer = Some((pid, epoch));
        for q in acc.topics.queues_mut() {
            q.next_sequence = 0;
        }
        acc.txn_partitions.clear();
        acc.txn_error = None;
    }
    *st = TxnState::Ready;
    Ok(())
}

pub(super) async fn begin(inner: &Inner) -> Result<(), ClientError> {
    txn_id(inner)?;
    let mut st = inner.txn.lock().await;
    match &*st {
        TxnState::Ready => {
            *st = TxnState::InTransaction;
            inner.acc().in_txn = true;
            Ok(())
        }
        TxnState::Uninitialized => {
            Err(ClientError::Protocol("call init_transactions first".into()))
        }
        TxnState::InTransaction => Err(ClientError::Protocol(
            "a transaction is already open".into(),
        )),
        TxnState::Fatal(why) => Err(ClientError::Protocol(format!(
            "the producer is fenced: {why}"
        ))),
    }
}

/// Refuses sends outside a transaction for transactional producers.
pub(super) fn check_can_send(acc: &Accumulator) -> Result<(), ClientError> {
    if !acc.in_txn {
        return Err(ClientError::Protocol(
            "call init_transactions and begin_transaction before sending".into(),
        ));
    }
    Ok(())
}

/// Adds the batches' partitions to the open transaction (once each) before
/// they are sent. Non-transactional producers pass everything through.
pub(super) async fn add_partitions(
    inner: &Inner,
    list: Vec<((String, i32), Sealed)>,
) -> Result<Vec<((String, i32), Sealed)>, (Vec<((String, i32), Sealed)>, ClientError)> {
    let (pid, epoch, new) = {
        let acc = inner.acc();
        if !acc.transactional {
            return Ok(list);
        }
        let Some((pid, epoch)) = acc.producer else {
            return Err((list, ClientError::Protocol("no producer id".into())));
        };
        let mut new: Vec<(String, i32)> = list
            .iter()
            .map(|(tp, _)| tp.clone())
            .filter(|tp| !acc.txn_partitions.contains(tp))
            .collect();
        new.sort();
        new.dedup();
        (pid, epoch, new)
    };
    if new.is_empty() {
        return Ok(list);
    }
    let Ok(id) = txn_id(inner) else {
        return Err((list, ClientError::Config("no transactional.id".into())));
    };
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (t, p) in &new {
        by_topic.entry(t).or_default().push(*p);
    }
    let r = with_retries(inner, "AddPartitionsToTxn", || async {
        let conn = inner.cluster.known_coordinator(id, 1).await?;
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            );
        let v = conn.version(ApiKey::AddPartitionsToTxn)?.min(3);
        let p = conn.send(ApiKey::AddPartitionsToTxn, v, &req).await?;
        let r: AddPartitionsToTxnResponse = conn.wait(p).await?;
        for t in &r.results_by_topic_v3_and_below {
            for p in &t.results_by_partition {
                ClientError::check(
                    p.partition_error_code,
                    format!(
                        "adding {}-{} to the transaction",
                        t.name.0, p.partition_index
                    ),
                )?;
            }
        }
        Ok(())
    })
    .await;
    match r {
        Ok(()) => {
            inner.acc().txn_partitions.extend(new);
            Ok(list)
        }
        Err(e) => {
            let (e, fatal) = fatal_if_fenced(e);
            if let Some(why) = fatal {
                if let Ok(mut st) = inner.txn.try_lock() {
                    *st = TxnState::Fatal(why);
                }
            }
            inner.acc().txn_error.get_or_insert(e.to_string());
            Err((list, e))
        }
    }
}

pub(super) async fn send_offsets(
    inner: &Inner,
    offsets: &[(String, i32, i64)],
    group: &super::ConsumerGroupMetadata,
) -> Result<(), ClientError> {
    let id = txn_id(inner)?;
    let st = inner.txn.lock().await;
    if *st != TxnState::InTransaction {
        return Err(ClientError::Protocol(
            "send_offsets_to_transaction needs an open transaction".into(),
        ));
    }
    let (pid, epoch) = inner
        .acc()
        .producer
        .ok_or_else(|| ClientError::Protocol("no producer id".into()))?;
    with_retries(inner, "AddOffsetsToTxn", || async {
        let conn = inner.cluster.known_coordinator(id, 1).await?;
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(&group.group_id)));
        let (_, r): (i16, AddOffsetsToTxnResponse) =
            conn.call(ApiKey::AddOffsetsToTxn, &req).await?;
        ClientError::check(r.error_code, "AddOffsetsToTxn")
    })
    .await?;
    // The coordinator added the group's offsets partition: the commit must reach it.
    inner.acc().txn_partitions.insert((String::new(), -1));
    let mut by_topic: std::collections::BTreeMap<&str, Vec<(i32, i64)>> = Default::default();
    for (t, p, o) in offsets {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    with_retries(inner, "TxnOffsetCommit", || async {
        let conn = inner.cluster.known_coordinator(&group.group_id, 0).await?;
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_group_id(GroupId(s(&group.group_id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(group.generation_id)
            .with_member_id(s(&group.member_id))
            .with_group_instance_id(group.group_instance_id.as_deref().map(s))
            .with_topics(
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(
                                ps.iter()
                                    .map(|(p, o)| {
                                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(*o)
                                            .with_committed_leader_epoch(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (_, r): (i16, TxnOffsetCommitResponse) = conn.call(ApiKey::TxnOffsetCommit, &req).await?;
        for t in &r.topics {
            for p in &t.partitions {
                ClientError::check(p.error_code, format!("committing {}-{} in the transaction", t.name.0, p.partition_index))?;
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn end(inner: &Inner, commit: bool) -> Result<(), ClientError> {
    let id = txn_id(inner)?;
    let mut st = inner.txn.lock().await;
    match &*st {
        TxnState::InTransaction => {}
        TxnState::Fatal(why) => {
            return Err(ClientError::Protocol(format!(
                "the producer is fenced: {why}"
            )))
        }
        _ => return Err(ClientError::Protocol("no open transaction".into())),
    }
    let (producer, had_partitions, error) = {
        let acc = inner.acc();
        (
            acc.producer,
            !acc.txn_partitions.is_empty(),
            acc.txn_error.clone(),
        )
    };
    if commit {
        if let Some(why) = error {
            return Err(ClientError::Protocol(format!(
                "the transaction must be aborted: {why}"
            )));
        }
    }
    let (pid, epoch) = producer.ok_or_else(|| ClientError::Protocol("no producer id".into()))?;
    if had_partitions {
        let r = with_retries(inner, "EndTxn", || async {
            let conn = inner.cluster.known_coordinator(id, 1).await?;
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit);
            let (_, r): (i16, EndTxnResponse) = conn.call(ApiKey::EndTxn, &req).await?;
            ClientError::check(
                r.error_code,
                if commit {
                    "committing the transaction"
                } else {
                    "aborting the transaction"
                },
            )
        })
        .await;
        if let Err(e) = r {
            let (e, fatal) = fatal_if_fenced(e);
            if let Some(why) = fatal {
                *st = TxnState::Fatal(why);
            }
            return Err(e);
        }
    }
    let mut acc = inner.acc();
    acc.txn_partitions.clear();
    acc.txn_error = None;
    acc.in_txn = false;
    *st = TxnState::Ready;
    Ok(())
}
