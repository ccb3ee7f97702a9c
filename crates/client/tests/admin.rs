//! Admin calls against an in-process broker: topics, configs, partitions,
//! delete records, cluster description.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::producer::{Producer, ProducerConfig, ProducerRecord};
use strom_client::{Admin, ConfigChange};
use strom_protocol::alloc::GuardedAlloc;

mod common;

#[global_allocator]
static ALLOC: GuardedAlloc = GuardedAlloc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_configs_records_and_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(dir.path(), &[]).await;
    let addr = server.local_addr.to_string();
    let mut admin = Admin::connect(&addr, Duration::from_secs(5))
        .await
        .expect("admin");
    let mut cfg = BTreeMap::new();
    cfg.insert("retention.ms".to_string(), "3600000".to_string());
    admin.create_topic("t", 2, -1, &cfg).await.expect("create");
    assert!(admin.create_topic("t", 2, -1, &cfg).await.is_err());
    admin
        .alter_topic_configs(
            "t",
            &[
                ConfigChange::Set("segment.bytes".into(), "1048576".into()),
                ConfigChange::Delete("retention.ms".into()),
            ],
        )
        .await
        .expect("alter");
    let overrides: Vec<String> = admin
        .topic_configs("t")
        .await
        .expect("configs")
        .into_iter()
        .filter(|c| !c.is_default)
        .map(|c| c.name)
        .collect();
    assert_eq!(overrides, vec!["segment.bytes".to_string()]);
    admin.create_partitions("t", 3).await.expect("grow");
    let d = admin
        .describe_topics(Some(&["t".to_string()]))
        .await
        .expect("describe");
    assert_eq!(d[0].partitions.len(), 3);

    let p = Producer::new(ProducerConfig::new(&addr))
        .await
        .expect("producer");
    for i in 0..10 {
        p.send(ProducerRecord::new("t").partition(0).value(format!("{i}")))
            .await
            .expect("queued");
    }
    p.close().await.expect("flushed");
    assert_eq!(
        admin
            .delete_records("t", 0, 4)
            .await
            .expect("delete records"),
        4
    );
    let earliest = admin
        .list_offsets(&[("t".to_string(), 0)], -2)
        .await
        .expect("earliest");
    assert_eq!(earliest.get(&("t".to_string(), 0)), Some(&4));

    let c = admin.describe_cluster().await.expect("cluster");
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.controller, c.brokers[0].0);
    assert!(!c.cluster_id.is_empty());
    admin.delete_topic("t").await.expect("delete");
    assert!(admin
        .describe_topics(Some(&["t".to_string()]))
        .await
        .is_err());
    server.shutdown().await;
}
