//! Idempotence and transactions: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers,
//! DescribeTransactions, ListTransactions, DescribeProducers. The logic
//! lives in [`crate::txn`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use super::groups::{replicated, to_commit, PartitionCodes};
use super::s;
use crate::broker::Broker;
use crate::replication::coordinator_write::Written;
use crate::replication::Replicated;
use crate::txn::coordinator::write_marker;
use crate::txn::producer_state::Marker;

fn offsets_partitions(broker: &Broker) -> i32 {
    broker
        .topics
        .get(crate::group::store::OFFSETS_TOPIC)
        .map_or(1, |t| t.partition_count() as i32)
}

/// InitProducerId: a producer id for idempotence, or the (fencing) epoch
/// bump of a transactional id.
pub fn init_producer_id(
    broker: &Broker,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let expected =
        (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let txn_id = req.transactional_id.as_ref().map(|t| t.0.to_string());
    match broker.txns.init_producer_id(
        &broker.groups,
        txn_id.as_deref(),
        req.transaction_timeout_ms,
        expected,
        version,
    ) {
        Ok((pid, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// AddPartitionsToTxn v0-3 (v4+ is the broker-to-broker batched form, not served).
pub fn add_partitions(
    broker: &Broker,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let wanted: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let results = broker.txns.add_partitions(
        &req.v3_and_below_transactional_id.0,
        req.v3_and_below_producer_id.0,
        req.v3_and_below_producer_epoch,
        wanted.clone(),
        version,
    );
    let codes: Vec<((String, i32), i16)> = match results {
        Ok(r) => r,
        Err(e) => wanted.into_iter().map(|tp| (tp, e.code())).collect(),
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<(i32, i16)>> = Default::default();
    for ((t, p), c) in codes {
        by_topic.entry(t).or_default().push((p, c));
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(s(t)))
                .with_results_by_partition(
                    ps.into_iter()
                        .map(|(p, c)| {
                            add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

/// AddOffsetsToTxn: the group's offsets partition joins the transaction.
pub fn add_offsets(
    broker: &Broker,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let r = broker.txns.add_offsets(
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        &req.group_id.0,
        offsets_partitions(broker),
        version,
    );
    AddOffsetsToTxnResponse::default().with_error_code(r.err().map_or(0, |e| e.code()))
}

/// EndTxn: commit or abort.
pub fn end_txn(broker: &Broker, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let r = broker.txns.end_txn(
        &broker.groups,
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        version,
    );
    EndTxnResponse::default()
        .with_error_code(r.err().map_or(0, |e| e.code()))
        .with_producer_id(req.producer_id)
        .with_producer_epoch(req.producer_epoch)
}

/// TxnOffsetCommit: consumed offsets that commit with the transaction.
pub async fn txn_offset_commit(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let now = broker.clock().wall_ms();
    let flat = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                to_commit(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    &p.committed_metadata,
                    now,
                )
            })
        })
        .collect();
    let result = broker
        .txns
        .verify_offset_commit(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            &req.group_id.0,
            offsets_partitions(broker),
        )
        .map_err(|e| e.code())
        .and_then(|()| {
            broker.groups.txn_commit(
                &req.group_id.0,
                req.producer_id.0,
                req.producer_epoch,
                req.generation_id,
                &req.member_id,
                req.group_instance_id.as_ref().map(|x| x.as_str()),
                flat,
            )
        });
    let mut codes = PartitionCodes::new(replicated(broker, &req.group_id.0, result).await);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next_code())
                })
                .collect();
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// WriteTxnMarkers: markers sent by a transaction coordinator on another
/// broker (or a tool). Each partition answers once its in-sync replicas
/// have the marker, as Kafka appends markers with acks=all: the
/// coordinator completes the transaction only after that. Every marker is
/// written before any is waited on, so the waits overlap: one replication
/// round trip for the request, not one per partition.
pub async fn write_txn_markers(
    broker: &Broker,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let timeout = broker.txns.write_timeout();
    let written: Vec<_> = req
        .markers
        .into_iter()
        .map(|m| {
            let marker = if m.transaction_result {
                Marker::Commit
            } else {
                Marker::Abort
            };
            let (pid, epoch) = (m.producer_id.0, m.producer_epoch);
            let topics: Vec<_> = m
                .topics
                .into_iter()
                .map(|t| {
                    let parts: Vec<_> = t
                        .partition_indexes
                        .iter()
                        .map(|&i| {
                            let w = write_one_marker(broker, &t.name.0, i, pid, epoch, marker);
                            (i, w)
                        })
                        .collect();
                    (t.name, parts)
                })
                .collect();
            (m.producer_id, topics)
        })
        .collect();
    let mut markers = Vec::with_capacity(written.len());
    for (producer_id, topics) in written {
        let mut topic_results = Vec::with_capacity(topics.len());
        for (name, parts) in topics {
            let mut partitions = Vec::with_capacity(parts.len());
            for (i, w) in parts {
                let code = match w {
                    Err(c) => c,
                    Ok(w) => match w.wait(timeout).await {
                        Replicated::Yes => 0,
                        Replicated::TimedOut => ResponseError::RequestTimedOut.code(),
                        Replicated::NotLeader => ResponseError::NotLeaderOrFollower.code(),
                    },
                };
                partitions.push(
                    write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(i)
                        .with_error_code(code),
                );
            }
            topic_results.push(
                write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            write_txn_markers_response::WritableTxnMarkerResult::default()
                .with_producer_id(producer_id)
                .with_topics(topic_results),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// Appends producer `pid`'s marker to the partition this broker leads: where it ended,
/// to wait on, or the partition's error code.
fn write_one_marker(
    broker: &Broker,
    topic: &str,
    index: i32,
    pid: i64,
    epoch: i16,
    marker: Marker,
) -> Result<Written, i16> {
    let p = broker
        .replicas
        .leader_of(topic, index)
        .map_err(|e| e.code().code())?
        .log;
    match crate::dispatch::off_worker(|| write_marker(&broker.groups, &p, pid, epoch, marker)) {
        Ok(_) => Ok(Written::now(p)),
        Err(e) => {
            tracing::error!(topic, partition = index, error = %e, "cannot write marker");
            Err(ResponseError::KafkaStorageError.code())
        }
    }
}

/// DescribeTransactions.
pub fn describe_transactions(
    broker: &Broker,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let r = describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone());
            match broker.txns.describe(&id.0) {
                None => r
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_transaction_state(s(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
                Some(d) => r
                    .with_transaction_state(s(d.state))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.epoch)
                    .with_topics(
                        d.topics
                            .into_iter()
                            .map(|(t, ps)| {
                                describe_transactions_response::TopicData::default()
                                    .with_topic(TopicName(s(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions (state and producer filters; duration filter from v1).
pub fn list_transactions(
    broker: &Broker,
    version: i16,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let known: Vec<&str> = crate::txn::log::TxnState::ALL
        .iter()
        .map(|s| s.name())
        .collect();
    let (states, unknown): (Vec<String>, Vec<String>) = req
        .state_filters
        .iter()
        .map(|x| x.to_string())
        .partition(|x| known.contains(&x.as_str()));
    if !unknown.is_empty() && states.is_empty() {
        return ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown.into_iter().map(s).collect());
    }
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let txns = broker
        .txns
        .list(&states, &pids, min_duration)
        .into_iter()
        .map(|(id, pid, state)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(pid))
                .with_transaction_state(s(state))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(s).collect())
        .with_transaction_states(txns)
}

/// DescribeProducers: the producer state of partitions.
pub fn describe_producers(
    broker: &Broker,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let r = describe_producers_response::PartitionResponse::default()
                        .with_partition_index(i);
                    let p = match broker.replicas.leader_of(&t.name.0, i) {
                        Ok(led) => led.log,
                        Err(e) => return r.with_error_code(e.code().code()),
                    };
                    let state = p.producers.lock();
                    let mut active: Vec<_> = state
                        .producers()
                        .map(|(pid, e)| {
                            describe_producers_response::ProducerState::default()
                                .with_producer_id(ProducerId(pid))
                                .with_producer_epoch(e.epoch as i32)
                                .with_last_sequence(e.last_sequence())
                                .with_last_timestamp(e.last_timestamp)
                                .with_coordinator_epoch(e.coordinator_epoch)
                                .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
                        })
                        .collect();
                    active.sort_by_key(|a| a.producer_id.0);
                    r.with_active_producers(active)
                })
                .collect();
            describe_producers_response::TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
