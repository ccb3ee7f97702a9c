//! A minimal raw Kafka client for tests.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    pub stream: TcpStream,
    next: i32,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            next: 1,
        }
    }

    /// Encodes a request frame.
    pub fn frame<T: Encodable>(
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &T,
    ) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("it")))
            .encode(&mut out, key.request_header_version(version))
            .expect("header");
        body.encode(&mut out, version).expect("body");
        let len = (out.len() - 4) as i32;
        out[0..4].copy_from_slice(&len.to_be_bytes());
        out.to_vec()
    }

    pub async fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> i32 {
        let id = self.next;
        self.next += 1;
        self.stream
            .write_all(&Self::frame(key, version, id, body))
            .await
            .expect("write");
        id
    }

    /// Reads one response frame: (correlation id, body after the header).
    pub async fn recv_raw(&mut self, key: ApiKey, version: i16) -> Option<(i32, Bytes)> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        let mut b = Bytes::from(buf);
        let hv = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let h = ResponseHeader::decode(&mut b, hv).expect("response header");
        Some((h.correlation_id, b))
    }

    pub async fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let id = self.send(key, version, body).await;
        let (cid, mut b) = self.recv_raw(key, version).await.expect("response");
        assert_eq!(cid, id);
        let r = Resp::decode(&mut b, version).expect("decode response");
        assert_eq!(b.remaining(), 0, "trailing bytes in {key:?} response");
        r
    }
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub async fn create_topic(c: &mut Client, topic: &str, partitions: i32) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    c.call(ApiKey::CreateTopics, 7, &req).await
}

pub async fn produce(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
    acks: i16,
) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(records))),
            ])]);
    c.call(ApiKey::Produce, 9, &req).await
}

pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}
