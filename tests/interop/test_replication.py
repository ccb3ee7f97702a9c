"""Replicated partitions and failover (issue: cluster, part 2) with real
`strom server` processes and real clients: a topic with replication factor
3 and min.insync.replicas=2 keeps every acknowledged record through the
SIGKILL of its leader (twice), the killed broker truncates, catches up and
rejoins the ISR; a diverged tail is cut where the new leader's epoch
says; with two followers down acks=all is refused with NOT_ENOUGH_REPLICAS
and acks=1 still accepted.

The cluster's short sessions (cluster.FAST: broker.session.timeout.ms=2000)
bound how long a dead leader keeps its partitions."""
import os
import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from kafka_wire import RawConnection, batch, offset_for_leader_epoch_v3, record
from test_cluster import admin, cluster, read_all, wait  # noqa: F401 (cluster: the fixture)
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")


def partition(bootstrap, topic, index=0):
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return md.topics[topic].partitions[index]


def high_watermark(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw-reader"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def create_replicated(bootstrap, name, rf=None, assignment=None, min_isr=2):
    want_brokers = len(assignment[0]) if assignment else rf
    # A cluster just started may not have unfenced every broker yet.
    wait(f"{want_brokers} brokers registered", lambda: len(admin(bootstrap).list_topics(timeout=10).brokers) >= want_brokers)
    a = admin(bootstrap)
    config = {"min.insync.replicas": str(min_isr)}
    if assignment:
        t = NewTopic(name, len(assignment), replica_assignment=assignment, config=config)
    else:
        t = NewTopic(name, 1, rf, config=config)
    a.create_topics([t])[name].result(30)
    want = len(assignment[0]) if assignment else rf
    return wait(f"{name} to be led with a full ISR", lambda: (
        lambda p: p if p.leader >= 0 and len(p.isrs) == want else None)(partition(bootstrap, name)))


class Writer:
    """A confluent-kafka producer (idempotent, acks=all) writing numbered
    records as fast as they are acknowledged, remembering which were."""

    def __init__(self, bootstrap, topic, **conf):
        self.acked, self.fatal, self.stop = [], [], threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                           "linger.ms": 2, "message.timeout.ms": 60000,
                           "error_cb": lambda e: e.fatal() and self.fatal.append(str(e)), **conf})
        self.topic = topic
        self.t = threading.Thread(target=self.run)

    def run(self):
        i = 0
        while not self.stop.is_set() and not self.fatal:
            v = f"r{i}"
            self.p.produce(self.topic, value=v.encode(),
                           on_delivery=lambda err, m: err is None and self.acked.append(m.value().decode()))
            self.p.poll(0)
            i += 1
            time.sleep(0.002)
        self.p.flush(60)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(90)

    def wait_acked(self, n, timeout=60):
        target = len(self.acked) + n
        wait(f"{n} more acknowledged records", lambda: len(self.acked) >= target or self.fatal, timeout=timeout)
        assert not self.fatal, self.fatal


def test_acks_all_survives_sigkill_of_the_leader_with_no_acknowledged_record_lost(cluster):
    p = create_replicated(cluster.bootstrap, "durable", rf=3)
    assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3], p
    with Writer(cluster.bootstrap, "durable") as w:
        w.wait_acked(500)
        first = cluster.node(p.leader)
        first.kill9()
        # Another ISR member takes over once the dead one is fenced; the
        # producer carries on after its metadata refresh.
        live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
        after = wait("a new leader", lambda: (lambda q: q if q.leader not in (-1, first.node_id) else None)(
            partition(live, "durable")))
        assert first.node_id not in after.isrs, after
        w.wait_acked(500)
        # The killed broker comes back: it cuts what the new leader does
        # not have (by leader epoch), fetches the rest and rejoins the ISR.
        first.restart()
        wait("the restarted broker back in the ISR",
             lambda: sorted(partition(cluster.bootstrap, "durable").isrs) == [1, 2, 3], timeout=60)
        w.wait_acked(300)
        # The second leader dies too; the third (or the first) takes over.
        second = cluster.node(partition(cluster.bootstrap, "durable").leader)
        second.kill9()
        live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
        wait("a third leader", lambda: partition(live, "durable").leader not in (-1, second.node_id))
        w.wait_acked(300)
    assert not w.fatal, w.fatal
    live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
    got = read_all(live, "durable", 1)
    assert len(got) == len(set(got)), "a record written twice"
    missing = set(w.acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    # In the order they were produced.
    numbers = [int(v[1:]) for v in got]
    assert numbers == sorted(numbers)
    assert len(w.acked) >= 1600


def test_a_controlled_shutdown_hands_leadership_over_before_the_broker_stops(cluster):
    """SIGTERM of the leader: it is fenced and its partition led by another
    in-sync replica before it exits, so the producer carries on at once
    (no session timeout to wait out) and nothing acknowledged is lost."""
    p = create_replicated(cluster.bootstrap, "handover", rf=3)
    with Writer(cluster.bootstrap, "handover") as w:
        w.wait_acked(300)
        leaving = cluster.node(p.leader)
        leaving.stop()
        live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
        # Moved during the shutdown, not after a session timeout (2 s).
        after = wait("the new leader in the survivors' metadata", lambda: (
            lambda q: q if q.leader not in (-1, leaving.node_id) else None)(partition(live, "handover")),
            timeout=1.5, every=0.05)
        assert leaving.node_id not in after.isrs, after
        w.wait_acked(300)
        leaving.restart()
        wait("the stopped broker back in the ISR",
             lambda: sorted(partition(cluster.bootstrap, "handover").isrs) == [1, 2, 3], timeout=60)
        w.wait_acked(100)
    assert not w.fatal, w.fatal
    got = read_all(cluster.bootstrap, "handover", 1)
    assert len(got) == len(set(got)), "a record written twice"
    assert not set(w.acked) - set(got)


def test_a_frozen_leader_that_was_replaced_acknowledges_no_acks_all_write(cluster):
    """The leader is frozen (SIGSTOP: cut off from every broker and client,
    its process and its belief that it leads intact) until another in-sync
    replica has taken over. Thawed, it is sent an acks=all write straight
    away, before or after it learns it was replaced: it must not
    acknowledge it (no two brokers accept acks=all writes for one
    partition), and nothing the live leader acknowledged is lost."""
    p = create_replicated(cluster.bootstrap, "zombie", rf=3)
    # A frozen broker keeps its sockets open, so librdkafka only gives up on
    # the produce requests in flight to it after socket.timeout.ms (60 s by
    # default), and an idempotent producer holds the partition until then.
    conf = {"request.timeout.ms": 5000, "socket.timeout.ms": 10000}
    with Writer(cluster.bootstrap, "zombie", **conf) as w:
        w.wait_acked(300)
        old = cluster.node(p.leader)
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            live = ",".join(n.bootstrap for n in cluster.nodes if n is not old)
            after = wait("a new leader", lambda: (lambda q: q if q.leader not in (-1, old.node_id) else None)(
                partition(live, "zombie")))
            assert old.node_id not in after.isrs, after
            w.wait_acked(300)
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)
        assert_refuses_zombie(old.bootstrap, "zombie")
        wait("the thawed broker back in the ISR",
             lambda: sorted(partition(cluster.bootstrap, "zombie").isrs) == [1, 2, 3], timeout=60)
        w.wait_acked(100)
    assert_no_zombie_and_nothing_lost(cluster.bootstrap, "zombie", w)


def assert_no_zombie_and_nothing_lost(bootstrap, topic, w):
    """Reads `topic` back: the replaced leader's "zombie" record is gone,
    and every record `w` had acknowledged is there once, in order."""
    assert not w.fatal, w.fatal
    got = read_all(bootstrap, topic, 1)
    assert "zombie" not in got, "a write the replaced leader took survived"
    assert len(got) == len(set(got)), "a record written twice"
    assert not set(w.acked) - set(got), "an acknowledged record lost"
    numbers = [int(v[1:]) for v in got]
    assert numbers == sorted(numbers)


def assert_refuses_zombie(bootstrap, topic):
    """Sends a record "zombie" with acks=all straight to `bootstrap`, a
    replaced leader, and checks it is not acknowledged: NOT_LEADER_OR_FOLLOWER
    once it knows; REQUEST_TIMED_OUT or NOT_ENOUGH_REPLICAS(_AFTER_APPEND)
    while it still thinks it leads."""
    conn = RawConnection(bootstrap)
    try:
        zombie = batch(record(0, None, b"zombie"), 1, 0, int(time.time() * 1000))
        error = conn.produce(topic, 0, zombie, acks=-1)[0]
    finally:
        conn.close()
    assert error in (6, 7, 19, 20), f"the replaced leader answered {error}"


def produce_once(bootstrap, topic, acks):
    """One record with `acks`, no retries: the broker's answer."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "retries": 0,
                  "enable.idempotence": False, "message.timeout.ms": 10000})
    out = []
    p.produce(topic, value=b"x", on_delivery=lambda err, m: out.append(err))
    p.flush(20)
    return out[0]


def test_with_two_followers_down_acks_all_is_refused_and_acks_1_accepted(cluster):
    # Followers on broker-only nodes, so the metadata quorum keeps its
    # majority and fences them.
    cluster.add_broker()
    cluster.add_broker()
    wait("five brokers", lambda: len(admin(cluster.bootstrap).list_topics(timeout=10).brokers) == 5)
    p = create_replicated(cluster.bootstrap, "guarded", assignment=[[1, 4, 5]])
    assert p.replicas == [1, 4, 5] and p.leader == 1, p
    assert produce_once(cluster.bootstrap, "guarded", "all") is None
    cluster.node(4).kill9()
    cluster.node(5).kill9()
    wait("the ISR to shrink to the leader", lambda: partition(cluster.bootstrap, "guarded").isrs == [1])
    err = produce_once(cluster.bootstrap, "guarded", "all")
    assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
    assert produce_once(cluster.bootstrap, "guarded", "1") is None
    # One follower back is enough for min.insync.replicas=2.
    cluster.node(4).restart()
    wait("the follower back in the ISR", lambda: sorted(partition(cluster.bootstrap, "guarded").isrs) == [1, 4],
         timeout=60)
    assert produce_once(cluster.bootstrap, "guarded", "all") is None
    got = read_all(cluster.bootstrap, "guarded", 1)
    assert got == ["x", "x", "x"], got


def test_replication_factors_the_cluster_cannot_meet_are_refused(cluster):
    a = admin(cluster.bootstrap)
    f = a.create_topics([NewTopic("too-many", 1, 4)])["too-many"]
    with pytest.raises(KafkaException) as e:
        f.result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert "only 3 broker(s) are registered" in e.value.args[0].str()
    f = a.create_topics([NewTopic("nobody", 1, replica_assignment=[[1, 9]])])["nobody"]
    with pytest.raises(KafkaException) as e:
        f.result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    # Partitions added later get the topic's replication factor.
    create_replicated(cluster.bootstrap, "growing", rf=2, min_isr=1)
    from confluent_kafka.admin import NewPartitions
    a.create_partitions([NewPartitions("growing", 3)])["growing"].result(30)
    md = wait("three partitions", lambda: (lambda t: t if len(t.partitions) == 3 else None)(
        admin(cluster.bootstrap).list_topics("growing", timeout=10).topics["growing"]))
    assert all(len(q.replicas) == 2 and len(set(q.replicas)) == 2 for q in md.partitions.values()), md.partitions


def test_a_replica_with_a_diverged_tail_cuts_it_where_the_new_leader_says(cluster):
    """KIP-101 with real processes: leader 4 takes records follower 5 never
    gets (acks=1 while 5 is stopped), dies, and 5 leads at a new epoch.
    Restarted, 4 keeps its log until 5's answer to its first fetch (the
    diverging epoch) says where the two part; it cuts there, copies 5's
    records and can lead with exactly them. OffsetForLeaderEpoch on 5
    tells a consumer where each epoch ends."""
    cluster.add_broker()
    cluster.add_broker()
    wait("five brokers", lambda: len(admin(cluster.bootstrap).list_topics(timeout=10).brokers) == 5)
    p = create_replicated(cluster.bootstrap, "diverged", assignment=[[4, 5]], min_isr=1)
    assert p.leader == 4, p
    old = Producer({"bootstrap.servers": cluster.node(4).bootstrap, "acks": "1", "linger.ms": 0,
                    "enable.idempotence": False, "retries": 0})
    for i in range(20):
        old.produce("diverged", value=f"base{i}".encode())
    assert old.flush(30) == 0
    wait("follower 5 to have the base records", lambda: high_watermark(cluster.bootstrap, "diverged") == 20)
    # Well inside 5's session (2 s): stopped, 4 takes the tail alone, dies.
    # The wait lets 5's fetch in flight end (replica.fetch.wait.max.ms is
    # 500) so that no answer waiting in its socket carries the tail.
    five = cluster.node(5)
    os.kill(five.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(0.7)
        for i in range(7):
            old.produce("diverged", value=f"tail{i}".encode())
        assert old.flush(5) == 0
        cluster.node(4).kill9()
    finally:
        os.kill(five.proc.pid, signal.SIGCONT)
    live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
    wait("5 to lead", lambda: partition(live, "diverged").leader == 5)
    new = Producer({"bootstrap.servers": five.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(11):
        new.produce("diverged", value=f"new{i}".encode())
    assert new.flush(30) == 0

    # Where each epoch ends, as a consumer would ask after the leader change.
    answers = {offset_for_leader_epoch_v3(five.bootstrap, "diverged", 0, e) for e in range(40)}
    assert (0, -1, -1) in answers, "an epoch newer than any: undefined"
    ends = sorted(end for err, ep, end in answers if err == 0 and ep >= 0)
    assert 20 in ends and 31 in ends, answers

    four = cluster.node(4)
    four.restart()
    wait("4 back in the ISR", lambda: sorted(partition(cluster.bootstrap, "diverged").isrs) == [4, 5], timeout=60)
    assert "diverged from the leader's; truncated" in four.read_log()
    five.kill9()
    live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
    wait("4 to lead again", lambda: partition(live, "diverged").leader == 4)
    got = read_all(live, "diverged", 1)
    assert got == [f"base{i}" for i in range(20)] + [f"new{i}" for i in range(11)], got
