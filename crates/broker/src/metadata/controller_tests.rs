//! Tests of the controller's decisions (`decide`, fencing, unfencing).
use super::*;
use crate::metadata::records::{Endpoint, PartitionRecord};
use crate::metadata::LeaderEpoch;
use std::collections::BTreeMap;
use uuid::Uuid;

fn registration(id: i32) -> BrokerRegistration {
    BrokerRegistration {
        id: NodeId(id),
        epoch: 0,
        incarnation: Uuid::new_v4(),
        endpoints: BTreeMap::from([(
            "PLAINTEXT".to_string(),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                security_protocol: "PLAINTEXT".into(),
            },
        )]),
        rack: None,
        fenced: false,
    }
}

fn heartbeat(id: i32, epoch: i64, metadata_offset: u64, shutting_down: bool) -> ControllerRequest {
    ControllerRequest::Heartbeat {
        id: NodeId(id),
        epoch,
        metadata_offset,
        shutting_down,
    }
}

/// An image with brokers `ids` registered (unfenced), and the liveness
/// that saw them at `now`.
fn registered(ids: &[i32], now: Instant) -> (MetadataImage, Liveness) {
    let mut live = Liveness::default();
    let mut image = MetadataImage::default();
    for id in ids {
        let d = decide(
            &image,
            &mut live,
            ControllerRequest::Register {
                broker: registration(*id),
                cluster_id: "c".into(),
                fence_first: false,
            },
            now,
        );
        image = applied(&image, &d.records);
    }
    (image, live)
}

/// `image` with topic `t`: one partition on `replicas`, all in sync, led
/// by the first.
fn with_topic(image: &MetadataImage, replicas: &[i32]) -> MetadataImage {
    let topic = Uuid::new_v4();
    let replicas: Vec<NodeId> = replicas.iter().map(|i| NodeId(*i)).collect();
    applied(
        image,
        &[
            MetadataRecord::Topic {
                name: "t".into(),
                id: topic,
            },
            MetadataRecord::Partition(PartitionRecord {
                topic_id: topic,
                partition: 0,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas[0],
                leader_epoch: LeaderEpoch::FIRST,
                partition_epoch: 0,
            }),
        ],
    )
}

fn applied(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    image.apply(image.offset + 1, records).unwrap().0
}

#[test]
fn a_broker_registers_fenced_and_is_unfenced_once_caught_up() {
    let mut live = Liveness::default();
    let now = Instant::now();
    let image = MetadataImage::default();
    let req = ControllerRequest::Register {
        broker: registration(2),
        cluster_id: "abc".into(),
        fence_first: true,
    };
    let d = decide(&image, &mut live, req, now);
    assert!(matches!(d.records[0], MetadataRecord::ClusterId { .. }));
    let ControllerReply::Registered {
        epoch, cluster_id, ..
    } = d.reply
    else {
        panic!("{:?}", d.reply)
    };
    assert_eq!(cluster_id, "abc");
    let image = applied(&image, &d.records);
    assert!(image.broker(NodeId(2)).unwrap().fenced);
    assert_eq!(image.cluster_id.as_deref(), Some("abc"));
    live.registered_at.insert(NodeId(2), 5);

    let hb = |offset, down| heartbeat(2, epoch, offset, down);
    // Not caught up with its registration yet: stays fenced.
    let d = decide(&image, &mut live, hb(4, false), now);
    assert!(d.records.is_empty());
    assert_eq!(
        d.reply,
        ControllerReply::Heartbeat {
            fenced: true,
            stale: false
        }
    );
    let d = decide(&image, &mut live, hb(5, false), now);
    assert_eq!(
        d.reply,
        ControllerReply::Heartbeat {
            fenced: false,
            stale: false
        }
    );
    let image = applied(&image, &d.records);
    assert!(!image.broker(NodeId(2)).unwrap().fenced);
    // A stale epoch is told to register again.
    let d = decide(&image, &mut live, heartbeat(2, epoch + 7, 9, false), now);
    assert_eq!(
        d.reply,
        ControllerReply::Heartbeat {
            fenced: true,
            stale: true
        }
    );
    // The cluster id is written once; a second broker adopts it.
    let d = decide(
        &image,
        &mut live,
        ControllerRequest::Register {
            broker: registration(3),
            cluster_id: "other".into(),
            fence_first: true,
        },
        now,
    );
    assert!(!d
        .records
        .iter()
        .any(|r| matches!(r, MetadataRecord::ClusterId { .. })));
    assert!(
        matches!(d.reply, ControllerReply::Registered { ref cluster_id, .. } if cluster_id == "abc")
    );
}

#[test]
fn fencing_takes_its_partitions_offline_and_unfencing_brings_them_back() {
    let t0 = Instant::now();
    let (mut image, mut live) = registered(&[1, 2], t0);
    let topic = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: "t".into(),
        id: topic,
    }];
    for (p, leader) in [(0, 1), (1, 2)] {
        records.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: topic,
            partition: p,
            replicas: vec![NodeId(leader)],
            isr: vec![NodeId(leader)],
            leader: NodeId(leader),
            leader_epoch: LeaderEpoch::FIRST,
            partition_epoch: 0,
        }));
    }
    image = applied(&image, &records);
    let epoch2 = image.broker(NodeId(2)).unwrap().epoch;

    // Broker 1 heartbeats, broker 2 goes silent: only 2 expires.
    let session = Duration::from_secs(9);
    assert!(live.expired(&image, t0, session).is_empty());
    let epoch1 = image.broker(NodeId(1)).unwrap().epoch;
    let later = t0 + Duration::from_secs(10);
    decide(&image, &mut live, heartbeat(1, epoch1, 99, false), later);
    assert_eq!(live.expired(&image, later, session), vec![NodeId(2)]);

    image = applied(&image, &fence_records(&image, NodeId(2), epoch2));
    let p1 = image.topic("t").unwrap().partition(1).unwrap().clone();
    assert_eq!(p1.leader, NodeId::NONE);
    assert_eq!(p1.leader_epoch, LeaderEpoch(1));
    assert_eq!(
        image.topic("t").unwrap().partition(0).unwrap().leader,
        NodeId(1)
    );

    let d = decide(&image, &mut live, heartbeat(2, epoch2, 99, false), later);
    image = applied(&image, &d.records);
    let p1 = image.topic("t").unwrap().partition(1).unwrap().clone();
    assert_eq!((p1.leader, p1.leader_epoch), (NodeId(2), LeaderEpoch(2)));

    // Controlled shutdown fences it again at once.
    let d = decide(&image, &mut live, heartbeat(2, epoch2, 99, true), later);
    assert_eq!(
        d.reply,
        ControllerReply::Heartbeat {
            fenced: true,
            stale: false
        }
    );
    image = applied(&image, &d.records);
    assert!(image.broker(NodeId(2)).unwrap().fenced);
}

#[test]
fn a_fenced_broker_leaves_the_isrs_and_its_partitions_go_to_the_next_in_sync_replica() {
    let now = Instant::now();
    let (mut image, _) = registered(&[1, 2, 3], now);
    image = with_topic(&image, &[1, 2, 3]);
    let p = |img: &MetadataImage| img.topic("t").unwrap().partition(0).unwrap().clone();
    let epoch = |img: &MetadataImage, id| img.broker(NodeId(id)).unwrap().epoch;

    image = applied(&image, &fence_records(&image, NodeId(1), epoch(&image, 1)));
    assert_eq!(p(&image).leader, NodeId(2));
    assert_eq!(p(&image).isr, vec![NodeId(2), NodeId(3)]);
    assert_eq!(p(&image).leader_epoch, LeaderEpoch(1));
    // A follower fenced: out of the ISR, the leader and its epoch stay.
    image = applied(&image, &fence_records(&image, NodeId(3), epoch(&image, 3)));
    assert_eq!(p(&image).leader, NodeId(2));
    assert_eq!(p(&image).isr, vec![NodeId(2)]);
    assert_eq!(p(&image).leader_epoch, LeaderEpoch(1));
    // The last in-sync replica fenced: offline, and it stays in the ISR
    // (no unclean election of 1 or 3).
    image = applied(&image, &fence_records(&image, NodeId(2), epoch(&image, 2)));
    assert_eq!(p(&image).leader, NodeId::NONE);
    assert_eq!(p(&image).isr, vec![NodeId(2)]);
    image = applied(
        &image,
        &unfence_records(&image, NodeId(1), epoch(&image, 1)),
    );
    assert_eq!(p(&image).leader, NodeId::NONE, "1 is not in sync");
    image = applied(
        &image,
        &unfence_records(&image, NodeId(2), epoch(&image, 2)),
    );
    assert_eq!(p(&image).leader, NodeId(2));
}

#[test]
fn a_new_process_under_a_registered_id_fences_the_old_one_first() {
    let now = Instant::now();
    let (mut image, mut live) = registered(&[1, 2], now);
    image = with_topic(&image, &[1, 2]);
    // Broker 1 was killed and starts again before its session expired.
    let d = decide(
        &image,
        &mut live,
        ControllerRequest::Register {
            broker: registration(1),
            cluster_id: "c".into(),
            fence_first: true,
        },
        now,
    );
    image = applied(&image, &d.records);
    let p = image.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!((p.leader, p.isr), (NodeId(2), vec![NodeId(2)]));
    assert!(image.broker(NodeId(1)).unwrap().fenced);
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut live = Liveness::default();
    let now = Instant::now();
    let mut image = MetadataImage::default();
    let d = decide(
        &image,
        &mut live,
        ControllerRequest::Register {
            broker: registration(1),
            cluster_id: "c".into(),
            fence_first: false,
        },
        now,
    );
    image = applied(&image, &d.records);
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let d = decide(
            &image,
            &mut live,
            ControllerRequest::AllocateProducerIds {
                broker: NodeId(1),
                count: 1000,
            },
            now,
        );
        let ControllerReply::ProducerIds { first, count } = d.reply else {
            panic!()
        };
        assert_eq!(count, 1000);
        firsts.push(first);
        image = applied(&image, &d.records);
    }
    assert_eq!(firsts, vec![0, 1000, 2000]);
    let d = decide(
        &image,
        &mut live,
        ControllerRequest::AllocateProducerIds {
            broker: NodeId(7),
            count: 1000,
        },
        now,
    );
    assert!(matches!(d.reply, ControllerReply::Refused(_)));
}

#[test]
fn a_commit_that_does_not_fit_is_refused() {
    let mut live = Liveness::default();
    let d = decide(
        &MetadataImage::default(),
        &mut live,
        ControllerRequest::Commit(vec![MetadataRecord::RemoveTopic { id: Uuid::new_v4() }]),
        Instant::now(),
    );
    assert!(d.records.is_empty());
    assert!(matches!(d.reply, ControllerReply::Refused(_)));
}

#[test]
fn preferred_and_unclean_elections_follow_kafkas_rules() {
    let now = Instant::now();
    let (mut image, mut live) = registered(&[1, 2, 3], now);
    image = with_topic(&image, &[1, 2, 3]);
    let p = |img: &MetadataImage| img.topic("t").unwrap().partition(0).unwrap().clone();
    let epoch = |img: &MetadataImage, id| img.broker(NodeId(id)).unwrap().epoch;
    let elect = |img: &MetadataImage, live: &mut Liveness, how, partitions| {
        let d = decide(img, live, ControllerRequest::Elect { how, partitions }, now);
        let ControllerReply::Elected { results, .. } = d.reply else {
            panic!("not an election reply: {:?}", d.reply)
        };
        (applied(img, &d.records), results)
    };
    let named = || {
        Some(vec![
            ("t".to_string(), 0),
            ("t".to_string(), 5),
            ("u".to_string(), 0),
        ])
    };
    let (_, results) = elect(&image, &mut live, ElectionType::Preferred, named());
    assert_eq!(
        results,
        vec![
            ("t".to_string(), 0, Err(ElectError::NotNeeded)),
            (
                "t".to_string(),
                5,
                Err(ElectError::UnknownPartition("t".into(), 5))
            ),
            (
                "u".to_string(),
                0,
                Err(ElectError::UnknownTopic("u".into()))
            ),
        ]
    );
    // 1 fenced: 2 leads. Back but not in sync: it cannot lead yet.
    image = applied(&image, &fence_records(&image, NodeId(1), epoch(&image, 1)));
    image = applied(
        &image,
        &unfence_records(&image, NodeId(1), epoch(&image, 1)),
    );
    assert_eq!(p(&image).leader, NodeId(2));
    assert!(election::imbalanced(&image).is_empty());
    let (_, results) = elect(&image, &mut live, ElectionType::Preferred, None);
    assert_eq!(
        results[0].2,
        Err(ElectError::PreferredNotAvailable("t".into(), 0, NodeId(1)))
    );
    // In sync again: the balancing elects it, at a new epoch.
    image = applied(
        &image,
        &[MetadataRecord::PartitionChange(PartitionChange {
            topic_id: image.topic("t").unwrap().id,
            partition: 0,
            isr: Some(vec![NodeId(2), NodeId(3), NodeId(1)]),
            ..Default::default()
        })],
    );
    assert_eq!(election::imbalanced(&image), vec![("t".to_string(), 0)]);
    let before = p(&image).leader_epoch;
    let (next, results) = elect(&image, &mut live, ElectionType::Preferred, None);
    assert_eq!(results, vec![("t".to_string(), 0, Ok(()))]);
    assert_eq!(p(&next).leader, NodeId(1));
    assert!(p(&next).leader_epoch > before);
    // Unclean: not needed while a leader lives; with every in-sync replica
    // gone, a live out-of-sync replica leads alone.
    image = next;
    let (_, results) = elect(&image, &mut live, ElectionType::Unclean, named());
    assert_eq!(results[0].2, Err(ElectError::NotNeeded));
    image = applied(&image, &fence_records(&image, NodeId(3), epoch(&image, 3)));
    image = applied(&image, &fence_records(&image, NodeId(2), epoch(&image, 2)));
    image = applied(&image, &fence_records(&image, NodeId(1), epoch(&image, 1)));
    assert_eq!(p(&image).leader, NodeId::NONE);
    assert_eq!(p(&image).isr, vec![NodeId(1)]);
    image = applied(
        &image,
        &unfence_records(&image, NodeId(3), epoch(&image, 3)),
    );
    assert_eq!(p(&image).leader, NodeId::NONE, "3 is not in sync");
    let (next, results) = elect(&image, &mut live, ElectionType::Unclean, named());
    assert_eq!(results[0].2, Ok(()));
    assert_eq!(
        (p(&next).leader, p(&next).isr.clone()),
        (NodeId(3), vec![NodeId(3)])
    );
}
