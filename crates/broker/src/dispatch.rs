//! Routes a decoded request to its handler and encodes the response.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use strom_protocol::{
    decode_body, decode_body_as, encode_response, fetch_response_parts, versions, DecodeError,
    RequestFrame,
};
use thiserror::Error;

use crate::broker::Broker;
use crate::handlers::*;

/// A request that gets no response and closes the connection, as in Kafka.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The body did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The API or version is not served.
    #[error("unsupported request {0:?} v{1}")]
    Unsupported(ApiKey, i16),
    /// The response could not be encoded (a bug; logged).
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// A response frame to write.
#[derive(Debug)]
pub enum Response {
    /// One buffer.
    Whole(BytesMut),
    /// Buffers written in order with vectored writes: a Fetch response's
    /// record data goes out as read from the log, not copied into a frame.
    Parts(Vec<Bytes>),
}

fn encode<T: Encodable + HeaderVersion>(
    frame: &RequestFrame,
    version: i16,
    body: &T,
) -> Result<Option<Response>, DispatchError> {
    let mut out = BytesMut::new();
    encode_response(&mut out, frame.api_key, version, frame.correlation_id, body)
        .map_err(|e| DispatchError::Encode(format!("{:?} v{version}: {e}", frame.api_key)))?;
    Ok(Some(Response::Whole(out)))
}

/// Runs `f`, which waits for an fsync (the transaction coordinator makes
/// its state durable before answering), without stalling the other
/// connections served by this worker thread: on the multi-threaded runtime
/// the worker hands its queue to another thread first.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Handles one request from `peer`, which connected to `listener`.
/// `Ok(None)` means no response is due (acks=0 produce).
pub async fn dispatch(
    broker: &Broker,
    frame: RequestFrame,
    peer: &str,
    listener: &str,
) -> Result<Option<Response>, DispatchError> {
    let v = frame.api_version;
    if frame.api_key == ApiKey::ApiVersions {
        if versions::supports(ApiKey::ApiVersions, v) {
            let req: ApiVersionsRequest = decode_body(&frame)?;
            if v >= 3 && !api_versions::names_valid(&req) {
                return encode(&frame, v, &api_versions::invalid_names());
            }
            return encode(&frame, v, &api_versions::handle(true));
        }
        // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges.
        return encode(&frame, 0, &api_versions::handle(false));
    }
    if !versions::supports(frame.api_key, v) {
        return Err(DispatchError::Unsupported(frame.api_key, v));
    }
    match frame.api_key {
        ApiKey::Produce => {
            let req: ProduceRequest = decode_body(&frame)?;
            let acks = req.acks;
            let resp = produce::handle(broker, v, req).await;
            if acks == 0 {
                return Ok(None);
            }
            encode(&frame, v, &resp)
        }
        ApiKey::Fetch => {
            let req: FetchRequest = decode_body(&frame)?;
            let resp = fetch::handle(broker, v, req).await;
            match fetch_response_parts(frame.correlation_id, v, &resp) {
                Some(parts) => Ok(Some(Response::Parts(parts))),
                None => encode(&frame, v, &resp),
            }
        }
        ApiKey::ListOffsets => encode(
            &frame,
            v,
            &list_offsets::handle(broker, v, decode_body(&frame)?),
        ),
        ApiKey::OffsetForLeaderEpoch => encode(
            &frame,
            v,
            &offset_for_leader_epoch::handle(broker, decode_body(&frame)?),
        ),
        ApiKey::Metadata => encode(
            &frame,
            v,
            &metadata::handle(broker, v, decode_body(&frame)?, listener).await,
        ),
        ApiKey::CreateTopics => encode(
            &frame,
            v,
            &topics_admin::create(broker, v, decode_body(&frame)?).await,
        ),
        ApiKey::DeleteTopics => encode(
            &frame,
            v,
            &topics_admin::delete(broker, v, decode_body(&frame)?).await,
        ),
        ApiKey::CreatePartitions => encode(
            &frame,
            v,
            &topics_admin::create_partitions(broker, decode_body(&frame)?).await,
        ),
        ApiKey::DescribeConfigs => encode(
            &frame,
            v,
            &describe_configs::describe(broker, v, decode_body(&frame)?),
        ),
        ApiKey::AlterConfigs => encode(
            &frame,
            v,
            &alter_configs::alter(broker, decode_body(&frame)?),
        ),
        ApiKey::IncrementalAlterConfigs => encode(
            &frame,
            v,
            &alter_configs::incremental(broker, decode_body(&frame)?),
        ),
        ApiKey::DeleteRecords => encode(
            &frame,
            v,
            &delete_records::handle(broker, decode_body(&frame)?),
        ),
        ApiKey::DescribeCluster => encode(
            &frame,
            v,
            &cluster::describe_cluster(broker, v, decode_body(&frame)?, listener),
        ),
        ApiKey::DescribeQuorum => encode(
            &frame,
            v,
            // The leader's view may take a controller round trip.
            &off_worker(|| decode_body(&frame).map(|req| describe_quorum::handle(broker, req)))?,
        ),
        ApiKey::DescribeTopicPartitions => encode(
            &frame,
            v,
            &describe_topic_partitions::handle(broker, decode_body(&frame)?),
        ),
        ApiKey::ElectLeaders => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            off_worker(|| elect_leaders::handle(broker, v, req))
        }),
        ApiKey::AlterPartitionReassignments => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            off_worker(|| partitions_admin::alter_reassignments(broker, req))
        }),
        ApiKey::ListPartitionReassignments => encode(
            &frame,
            v,
            &partitions_admin::list_reassignments(broker, decode_body(&frame)?),
        ),
        ApiKey::DescribeAcls => {
            let _req: DescribeAclsRequest = decode_body(&frame)?;
            encode(&frame, v, &acls::describe())
        }
        ApiKey::CreateAcls => encode(&frame, v, &acls::create(decode_body(&frame)?)),
        ApiKey::DescribeUserScramCredentials => encode(
            &frame,
            v,
            &scram_credentials::describe(broker, decode_body(&frame)?),
        ),
        ApiKey::AlterUserScramCredentials => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            // Committed through the controller.
            off_worker(|| scram_credentials::alter(broker, req))
        }),
        ApiKey::DeleteAcls => encode(&frame, v, &acls::delete(decode_body(&frame)?)),
        ApiKey::AlterReplicaLogDirs => encode(
            &frame,
            v,
            &cluster::alter_replica_log_dirs(broker, decode_body(&frame)?),
        ),
        ApiKey::DescribeLogDirs => {
            let cv = versions::codec_version(ApiKey::DescribeLogDirs, v);
            let req = decode_body_as(&frame, cv)?;
            encode(&frame, cv, &cluster::describe_log_dirs(broker, cv, req))
        }
        ApiKey::FindCoordinator => encode(
            &frame,
            v,
            &groups::find_coordinator(broker, v, decode_body(&frame)?, listener),
        ),
        ApiKey::JoinGroup => {
            let req = decode_body(&frame)?;
            let client = frame.client_id().to_string();
            encode(
                &frame,
                v,
                &groups::join(broker, v, &client, peer, req).await,
            )
        }
        ApiKey::SyncGroup => {
            let req = decode_body(&frame)?;
            encode(&frame, v, &groups::sync(broker, v, req).await)
        }
        ApiKey::Heartbeat => encode(&frame, v, &groups::heartbeat(broker, decode_body(&frame)?)),
        ApiKey::LeaveGroup => encode(&frame, v, &groups::leave(broker, v, decode_body(&frame)?)),
        ApiKey::OffsetCommit => encode(
            &frame,
            v,
            &groups::offset_commit(broker, decode_body(&frame)?).await,
        ),
        ApiKey::OffsetFetch => encode(
            &frame,
            v,
            &groups::offset_fetch(broker, v, decode_body(&frame)?),
        ),
        ApiKey::ListGroups => encode(
            &frame,
            v,
            &groups::list_groups(broker, v, decode_body(&frame)?),
        ),
        ApiKey::DescribeGroups => encode(
            &frame,
            v,
            &groups::describe_groups(broker, v, decode_body(&frame)?),
        ),
        ApiKey::DeleteGroups => encode(
            &frame,
            v,
            &groups::delete_groups(broker, decode_body(&frame)?),
        ),
        ApiKey::OffsetDelete => encode(
            &frame,
            v,
            &groups::offset_delete(broker, decode_body(&frame)?),
        ),
        ApiKey::ConsumerGroupHeartbeat => {
            let client = frame.client_id().to_string();
            encode(
                &frame,
                v,
                &groups::consumer_heartbeat(broker, &client, peer, decode_body(&frame)?),
            )
        }
        ApiKey::ConsumerGroupDescribe => encode(
            &frame,
            v,
            &consumer_group_describe::handle(broker, decode_body(&frame)?),
        ),
        ApiKey::InitProducerId => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            off_worker(|| txn::init_producer_id(broker, v, req))
        }),
        ApiKey::AddPartitionsToTxn => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            off_worker(|| txn::add_partitions(broker, v, req))
        }),
        ApiKey::AddOffsetsToTxn => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            off_worker(|| txn::add_offsets(broker, v, req))
        }),
        ApiKey::EndTxn => encode(&frame, v, &{
            let req = decode_body(&frame)?;
            off_worker(|| txn::end_txn(broker, v, req))
        }),
        ApiKey::TxnOffsetCommit => encode(
            &frame,
            v,
            &txn::txn_offset_commit(broker, decode_body(&frame)?).await,
        ),
        ApiKey::WriteTxnMarkers => encode(
            &frame,
            v,
            &txn::write_txn_markers(broker, decode_body(&frame)?).await,
        ),
        ApiKey::DescribeTransactions => encode(
            &frame,
            v,
            &txn::describe_transactions(broker, decode_body(&frame)?),
        ),
        ApiKey::ListTransactions => encode(
            &frame,
            v,
            &txn::list_transactions(broker, v, decode_body(&frame)?),
        ),
        ApiKey::DescribeProducers => encode(
            &frame,
            v,
            &txn::describe_producers(broker, decode_body(&frame)?),
        ),
        other => Err(DispatchError::Unsupported(other, v)),
    }
}
