//! A connection that only goes quiet between requests stays open until
//! `connections.max.idle.ms` (Kafka's default: 10 minutes), not the 30 s a
//! frame has to arrive once it started. Kafka Streams keeps such connections
//! (its admin client, a thread's coordinator connection) and used to see them
//! cut every 30 s. The clock is paused: the waits cost no real time.

use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;

async fn api_versions(c: &mut Client) {
    let hello = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("it"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &hello).await;
    assert_eq!(r.error_code, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_quiet_connection_outlives_the_frame_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::start(dir.path(), &[]).await;
    let mut c = Client::connect(server.local_addr).await;
    for _ in 0..3 {
        api_versions(&mut c).await;
        // Past the 30 s frame timeout, within the 10-minute idle limit.
        tokio::time::sleep(Duration::from_secs(95)).await;
    }
    api_versions(&mut c).await;
}
