//! Static membership (KIP-345, KIP-814) and `group.max.size`, driven
//! through the coordinator with its clock passed in.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::state::{GroupState, JoinOutcome, SyncOutcome};
use super::store::Committed;
use super::test_support::{config, coordinator_with};
use super::{GroupConfig, GroupCoordinator, JoinRequest, Pending};

const G: &str = "g";
const SESSION_MS: i32 = 30_000;
const FENCED: i16 = 82;

fn cfg(max_size: usize) -> GroupConfig {
    GroupConfig {
        max_size,
        ..config(3_600_000)
    }
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

fn request(member: &str, inst: Option<&str>, names: &[&str], v9: bool) -> JoinRequest {
    JoinRequest {
        group: G.into(),
        member_id: member.into(),
        instance_id: inst.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: true,
        supports_skip_assignment: v9,
    }
}

/// The answer now, or the one a completed rebalance already sent.
fn join_answer(p: Pending<JoinOutcome>) -> Option<JoinOutcome> {
    match p {
        Pending::Ready(o) => Some(o),
        Pending::Wait(mut rx) => rx.try_recv().ok(),
    }
}

fn sync_answer(p: Pending<SyncOutcome>) -> Option<SyncOutcome> {
    match p {
        Pending::Ready(o) => Some(o),
        Pending::Wait(mut rx) => rx.try_recv().ok(),
    }
}

fn state(c: &GroupCoordinator) -> GroupState {
    c.groups.with(G, |g| g.state).expect("group")
}

fn generation(c: &GroupCoordinator) -> i32 {
    c.groups.with(G, |g| g.generation).expect("group")
}

/// A Stable group of static members "a" (leader) and "b", assignments
/// "A" and "B". Returns (a's member id, b's member id).
fn stable_pair(c: &GroupCoordinator, now: Instant) -> (String, String) {
    let names = ["range", "roundrobin"];
    let a = join_answer(c.join_at(request("", Some("a"), &names, false), now)).expect("a joined");
    assert_eq!(a.error, 0);
    let a_id = a.member_id.clone();
    let s = sync_answer(c.sync_at(G, a.generation, &a_id, Some("a"), vec![], now));
    assert_eq!(s.map(|s| s.error), Some(0));
    // b joins: a rebalance that waits for a to rejoin.
    let pb = c.join_at(request("", Some("b"), &names, false), now);
    assert_eq!(state(c), GroupState::PreparingRebalance);
    let a = join_answer(c.join_at(request(&a_id, Some("a"), &names, false), now)).expect("a");
    let b = join_answer(pb).expect("b joined");
    assert_eq!((a.error, b.error), (0, 0));
    assert_eq!(a.leader, a_id);
    assert_eq!(a.members.len(), 2, "the leader sees every member");
    let b_id = b.member_id.clone();
    let gen = a.generation;
    let pb = c.sync_at(G, gen, &b_id, Some("b"), vec![], now);
    let assignments = vec![
        (a_id.clone(), Bytes::from_static(b"A")),
        (b_id.clone(), Bytes::from_static(b"B")),
    ];
    let sa = sync_answer(c.sync_at(G, gen, &a_id, Some("a"), assignments, now)).expect("a sync");
    let sb = sync_answer(pb).expect("b sync");
    assert_eq!(
        (&sa.assignment[..], &sb.assignment[..]),
        (&b"A"[..], &b"B"[..])
    );
    assert_eq!(state(c), GroupState::Stable);
    (a_id, b_id)
}

fn commit(c: &GroupCoordinator, gen: i32, member: &str, inst: &str) -> Result<Vec<i16>, i16> {
    let committed = Committed {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 0,
    };
    c.commit(G, gen, member, Some(inst), vec![("t".into(), 0, committed)])
}

#[test]
fn returning_static_member_gets_its_assignment_without_a_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator_with(dir.path(), cfg(2));
    let t0 = Instant::now();
    let (a_id, b_id) = stable_pair(&c, t0);
    let gen = generation(&c);
    // b's process closes (no LeaveGroup) and a new one comes back within the session.
    let t1 = t0 + Duration::from_secs(10);
    let names = ["range", "roundrobin"];
    let b2 = join_answer(c.join_at(request("", Some("b"), &names, false), t1)).expect("answer now");
    assert_eq!(
        b2.error, 0,
        "a full group still takes a returning static member"
    );
    assert_ne!(b2.member_id, b_id);
    assert_eq!((b2.generation, b2.leader.as_str()), (gen, a_id.as_str()));
    assert!(b2.members.is_empty() && !b2.skip_assignment);
    assert_eq!(state(&c), GroupState::Stable, "no rebalance");
    let s = sync_answer(c.sync_at(G, gen, &b2.member_id, Some("b"), vec![], t1)).expect("sync");
    assert_eq!(
        (s.error, &s.assignment[..]),
        (0, &b"B"[..]),
        "its previous assignment"
    );
    assert_eq!(
        c.heartbeat_at(G, gen, &a_id, Some("a"), t1),
        0,
        "a sees nothing"
    );
    // The old incarnation is fenced everywhere.
    assert_eq!(c.heartbeat_at(G, gen, &b_id, Some("b"), t1), FENCED);
    let s = sync_answer(c.sync_at(G, gen, &b_id, Some("b"), vec![], t1)).expect("sync");
    assert_eq!(s.error, FENCED);
    assert_eq!(commit(&c, gen, &b_id, "b"), Err(FENCED));
    assert_eq!(commit(&c, gen, &b2.member_id, "b"), Ok(vec![0]));
    let j = join_answer(c.join_at(request(&b_id, Some("b"), &names, false), t1)).expect("join");
    assert_eq!(j.error, FENCED);
    // An instance id the group does not know is an unknown member.
    assert_eq!(
        c.heartbeat_at(G, gen, &b_id, Some("zz"), t1),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(state(&c), GroupState::Stable);
}

#[test]
fn returning_static_leader_skips_the_assignment_from_v9_and_is_a_follower_before() {
    for v9 in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = coordinator_with(dir.path(), cfg(usize::MAX));
        let t0 = Instant::now();
        let (a_id, _) = stable_pair(&c, t0);
        let gen = generation(&c);
        let a2 = c.join_at(request("", Some("a"), &["range", "roundrobin"], v9), t0);
        let a2 = join_answer(a2).expect("answer now");
        assert_eq!((a2.error, a2.generation), (0, gen));
        if v9 {
            assert_eq!(a2.leader, a2.member_id, "still the leader");
            assert!(a2.skip_assignment, "KIP-814");
            assert_eq!(a2.members.len(), 2);
        } else {
            assert_eq!(a2.leader, a_id, "answered as a follower");
            assert!(!a2.skip_assignment && a2.members.is_empty());
        }
        let s = sync_answer(c.sync_at(G, gen, &a2.member_id, Some("a"), vec![], t0));
        assert_eq!(s.map(|s| s.assignment), Some(Bytes::from_static(b"A")));
        assert_eq!(state(&c), GroupState::Stable);
    }
}

#[test]
fn returning_static_member_that_changes_the_protocol_rebalances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator_with(dir.path(), cfg(usize::MAX));
    let t0 = Instant::now();
    let (a_id, b_id) = stable_pair(&c, t0);
    let gen = generation(&c);
    // Only roundrobin now: the group's chosen protocol (range) cannot stay.
    let pb = c.join_at(request("", Some("b"), &["roundrobin"], false), t0);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(
        c.heartbeat_at(G, gen, &a_id, Some("a"), t0),
        ResponseError::RebalanceInProgress.code()
    );
    assert_eq!(c.heartbeat_at(G, gen, &b_id, Some("b"), t0), FENCED);
    let a = c.join_at(
        request(&a_id, Some("a"), &["range", "roundrobin"], false),
        t0,
    );
    let (a, b) = (join_answer(a).expect("a"), join_answer(pb).expect("b"));
    assert_eq!((a.generation, b.generation), (gen + 1, gen + 1));
    assert_eq!(a.members.len(), 2);
    assert_eq!(
        c.groups.with(G, |g| g.protocol.clone()).flatten(),
        Some("roundrobin".into())
    );
}

#[test]
fn expired_static_members_are_removed_and_absent_ones_keep_their_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator_with(dir.path(), cfg(usize::MAX));
    let t0 = Instant::now();
    let (a_id, b_id) = stable_pair(&c, t0);
    let gen = generation(&c);
    // A dynamic member joins while b is away: b keeps its place in the next generation.
    let names = ["range", "roundrobin"];
    let pc = c.join_at(request("", None, &names, false), t0);
    let c_id = join_answer(pc).expect("member id required").member_id;
    let pc = c.join_at(request(&c_id, None, &names, false), t0);
    let pa = c.join_at(request(&a_id, Some("a"), &names, false), t0);
    assert_eq!(state(&c), GroupState::PreparingRebalance, "waits for b");
    c.tick_at(t0 + Duration::from_secs(11)); // past the rebalance timeout
    let a = join_answer(pa).expect("a answered");
    assert!(join_answer(pc).is_some());
    assert_eq!(a.generation, gen + 1);
    let ids: Vec<&str> = a.members.iter().map(|(id, _, _)| id.as_str()).collect();
    assert!(
        ids.contains(&b_id.as_str()),
        "absent static member kept: {ids:?}"
    );
    assert_eq!(state(&c), GroupState::CompletingRebalance);
    // Past b's session timeout, counted from the completed join (a and c
    // heartbeat), b is removed and the group rebalances.
    let t2 = t0 + Duration::from_secs(30);
    assert_eq!(c.heartbeat_at(G, gen + 1, &a_id, Some("a"), t2), 0);
    assert_eq!(c.heartbeat_at(G, gen + 1, &c_id, None, t2), 0);
    c.tick_at(t0 + Duration::from_secs(40));
    assert!(c
        .groups
        .with(G, |g| g.by_instance("b").is_some())
        .unwrap_or(false));
    c.tick_at(t0 + Duration::from_secs(42));
    let (b, members, state) = c
        .groups
        .with(G, |g| {
            (g.by_instance("b").is_some(), g.members.len(), g.state)
        })
        .expect("group");
    assert!(!b, "expired static member removed");
    assert_eq!(members, 2);
    assert_eq!(state, GroupState::PreparingRebalance);
}

#[test]
fn leave_group_by_instance_id_removes_the_static_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator_with(dir.path(), cfg(usize::MAX));
    let t0 = Instant::now();
    let (_, b_id) = stable_pair(&c, t0);
    let codes = c.leave_at(
        G,
        &[
            ("".into(), Some("b".into())),
            ("".into(), Some("nope".into())),
        ],
        t0,
    );
    assert_eq!(codes, vec![0, ResponseError::UnknownMemberId.code()]);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(c.groups.with(G, |g| g.member(&b_id).is_some()), Some(false));
}

#[test]
fn the_member_past_group_max_size_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator_with(dir.path(), cfg(2));
    let t0 = Instant::now();
    stable_pair(&c, t0);
    for inst in [None, Some("c")] {
        let r = join_answer(c.join_at(request("", inst, &["range"], false), t0)).expect("answer");
        assert_eq!(r.error, ResponseError::GroupMaxSizeReached.code());
        assert_eq!(r.member_id, "");
    }
    assert_eq!(state(&c), GroupState::Stable, "the group is untouched");
    assert_eq!(c.groups.with(G, |g| g.members.len()), Some(2));
}

#[test]
fn a_coordinator_taking_the_group_over_finds_it_stable_with_its_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator_with(dir.path(), cfg(10));
    let now = Instant::now();
    let (a_id, b_id) = stable_pair(&c, now);
    let gen = generation(&c);
    let index = super::store::partition_for(G, 3);
    // Leadership of the group's partition leaves: the group is dropped.
    c.unload_partition(index);
    assert!(c.groups.with(G, |_| ()).is_none());
    // And comes back (or another broker takes it): read from the log.
    c.load_partition(index, crate::metadata::LeaderEpoch(7));
    assert_eq!(state(&c), GroupState::Stable);
    assert_eq!(generation(&c), gen);
    let sb = sync_answer(c.sync_at(G, gen, &b_id, Some("b"), vec![], now)).expect("b sync");
    assert_eq!((sb.error, &sb.assignment[..]), (0, &b"B"[..]));
    assert_eq!(c.heartbeat_at(G, gen, &a_id, Some("a"), now), 0);
    assert_eq!(commit(&c, gen, &a_id, "a"), Ok(vec![0]));
    let leader = c.groups.with(G, |g| g.leader.clone()).flatten();
    assert_eq!(leader.as_deref(), Some(a_id.as_str()));
}
