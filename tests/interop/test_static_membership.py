"""Static membership (KIP-345) with real clients: a member with
group.instance.id that closes (static members send no LeaveGroup) and comes
back as a new process within session.timeout.ms gets exactly its old
partitions, and the other member sees no rebalance at all (no revoke, no
assign callback). Also: an old incarnation fenced by a newer one gets
FENCED_INSTANCE_ID, LeaveGroup by instance id removes a static member, and a
member past group.max.size gets GROUP_MAX_SIZE_REACHED."""
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError
from kafka import KafkaConsumer
from kafka.client_async import KafkaClient
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.protocol.admin import DescribeGroupsRequest
from kafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from kafka.protocol.group import HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest

from test_confluent import create

FAST_GROUPS = ["group.initial.rebalance.delay.ms=300"]
SESSION_MS = 30000
FENCED_INSTANCE_ID = 82
GROUP_MAX_SIZE_REACHED = 81
QUIET_S = 3  # how long a settled group is watched for callbacks that should not come


class Recorder:
    """Every rebalance callback of one consumer, in order."""

    def __init__(self):
        self.events = []

    def assign(self, consumer, partitions):
        self.events.append(("assign", sorted(p.partition for p in partitions)))

    def revoke(self, consumer, partitions):
        self.events.append(("revoke", sorted(p.partition for p in partitions)))

    def lost(self, consumer, partitions):
        self.events.append(("lost", sorted(p.partition for p in partitions)))


def static_consumer(broker, group, topic, instance, strategy, rec, **conf):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.instance.id": instance,
                  "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500,
                  "partition.assignment.strategy": strategy, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **conf})
    c.subscribe([topic], on_assign=rec.assign, on_revoke=rec.revoke, on_lost=rec.lost)
    return c


def owned(c):
    return sorted(tp.partition for tp in c.assignment())


def poll_until(consumers, done, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            assert m is None or m.error() is None, m.error()
        if done():
            return
    raise AssertionError(f"not reached: {[owned(c) for c in consumers]}")


def poll_quietly(consumers, recorders, seconds):
    """Polls until no callback has fired for `seconds`."""
    last = [len(r.events) for r in recorders]
    quiet_since = time.time()
    while time.time() - quiet_since < seconds:
        for c in consumers:
            c.poll(0.05)
        now = [len(r.events) for r in recorders]
        if now != last:
            last, quiet_since = now, time.time()


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_restarted_static_member_keeps_its_partitions_without_a_rebalance(make_broker, strategy):
    broker = make_broker(FAST_GROUPS)
    topic, group = f"static-{strategy}", f"static-{strategy}-g"
    create(broker, topic, partitions=4)
    recs = {"a": Recorder(), "b": Recorder()}
    members = {i: static_consumer(broker, group, topic, i, strategy, recs[i]) for i in recs}
    poll_until(list(members.values()),
               lambda: sum(len(owned(c)) for c in members.values()) == 4 and all(owned(c) for c in members.values()))
    poll_quietly(list(members.values()), list(recs.values()), QUIET_S)
    # Restart each member in turn, so both the leader and the follower come back.
    for gone, stays in (("b", "a"), ("a", "b")):
        before = {i: owned(c) for i, c in members.items()}
        assert sorted(before["a"] + before["b"]) == [0, 1, 2, 3]
        recs[stays].events.clear()
        members[gone].close()  # static: no LeaveGroup
        recs[gone] = Recorder()
        members[gone] = static_consumer(broker, group, topic, gone, strategy, recs[gone])
        poll_until(list(members.values()), lambda: owned(members[gone]) == before[gone])
        poll_quietly(list(members.values()), list(recs.values()), QUIET_S)
        assert recs[stays].events == [], f"{stays} saw a rebalance while {gone} restarted"
        assert recs[gone].events == [("assign", before[gone])], "exactly its old partitions, once"
        assert owned(members[stays]) == before[stays]
    for c in members.values():
        c.close()


def kip848_static_consumer(broker, group, topic, instance, rec):
    """A KIP-848 (group.protocol=consumer) static member: timeouts come from the broker."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.instance.id": instance,
                  "group.protocol": "consumer", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic], on_assign=rec.assign, on_revoke=rec.revoke, on_lost=rec.lost)
    return c


def test_kip848_static_member_comes_back_to_its_partitions(make_broker):
    """KIP-848: a static member that closes leaves with member epoch -2 and keeps its partitions
    until its session times out; a new process with the same group.instance.id gets exactly them,
    and the other member sees no callback."""
    broker = make_broker(FAST_GROUPS)
    topic, group = "static-848", "static-848-g"
    create(broker, topic, partitions=4)
    recs = {"a": Recorder(), "b": Recorder()}
    members = {i: kip848_static_consumer(broker, group, topic, i, recs[i]) for i in recs}
    poll_until(list(members.values()),
               lambda: sum(len(owned(c)) for c in members.values()) == 4 and all(owned(c) for c in members.values()))
    poll_quietly(list(members.values()), list(recs.values()), QUIET_S)
    before = {i: owned(c) for i, c in members.items()}
    recs["a"].events.clear()
    members["b"].close()
    # Away for longer than a heartbeat interval (Kafka's 5 s): "a" would be handed b's partitions
    # now if the broker had dropped "b".
    poll_quietly([members["a"]], [recs["a"]], 7)
    assert recs["a"].events == [] and owned(members["a"]) == before["a"], recs["a"].events
    recs["b"] = Recorder()
    members["b"] = kip848_static_consumer(broker, group, topic, "b", recs["b"])
    poll_until(list(members.values()), lambda: owned(members["b"]) == before["b"])
    poll_quietly(list(members.values()), list(recs.values()), QUIET_S)
    assert recs["a"].events == [], "a saw a rebalance while b restarted"
    assert recs["b"].events == [("assign", before["b"])], "exactly its old partitions, once"
    assert owned(members["a"]) == before["a"]
    for c in members.values():
        c.close()


class KpRecorder(ConsumerRebalanceListener):
    def __init__(self):
        self.events = []

    def on_partitions_revoked(self, revoked):
        self.events.append(("revoke", sorted(tp.partition for tp in revoked)))

    def on_partitions_assigned(self, assigned):
        self.events.append(("assign", sorted(tp.partition for tp in assigned)))


def test_kafka_python_static_member_restart(make_broker):
    broker = make_broker(FAST_GROUPS)
    topic, group = "static-kp", "static-kp-g"
    create(broker, topic, partitions=4)

    def start(instance, rec):
        c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, group_instance_id=instance,
                          session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500, enable_auto_commit=False,
                          auto_offset_reset="earliest")
        c.subscribe([topic], listener=rec)
        return c

    def kp_owned(c):
        return sorted(tp.partition for tp in c.assignment())

    def poll_all(cs, until, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for c in cs:
                c.poll(timeout_ms=50)
            if until():
                return
        raise AssertionError([kp_owned(c) for c in cs])

    def settle(cs, recs, seconds):
        last, since = [len(r.events) for r in recs], time.time()
        while time.time() - since < seconds:
            for c in cs:
                c.poll(timeout_ms=50)
            now = [len(r.events) for r in recs]
            if now != last:
                last, since = now, time.time()

    recs = {"a": KpRecorder(), "b": KpRecorder()}
    cs = {i: start(i, recs[i]) for i in recs}
    poll_all(list(cs.values()), lambda: sum(len(kp_owned(c)) for c in cs.values()) == 4
             and all(kp_owned(c) for c in cs.values()))
    settle(list(cs.values()), list(recs.values()), QUIET_S)
    before = {i: kp_owned(c) for i, c in cs.items()}
    recs["a"].events.clear()
    cs["b"].close()  # a static member sends no LeaveGroup
    recs["b"] = KpRecorder()
    cs["b"] = start("b", recs["b"])
    poll_all(list(cs.values()), lambda: kp_owned(cs["b"]) == before["b"])
    settle(list(cs.values()), list(recs.values()), QUIET_S)
    assert recs["a"].events == [], "the other member saw a rebalance"
    # kafka-python calls on_partitions_revoked with its (empty) assignment
    # before every join, a fresh process included: that one owns nothing.
    assert [e for e in recs["b"].events if e != ("revoke", [])] == [("assign", before["b"])]
    assert kp_owned(cs["a"]) == before["a"]
    for c in cs.values():
        c.close()


class Wire:
    """Raw group requests through kafka-python's network client, one connection."""

    def __init__(self, broker):
        self.client = KafkaClient(bootstrap_servers=broker.bootstrap)
        self.node = None
        deadline = time.time() + 30
        while self.node is None and time.time() < deadline:
            self.client.poll(timeout_ms=100)
            self.node = self.client.least_loaded_node()
        assert self.client.await_ready(self.node, timeout_ms=30000)

    def call(self, request, timeout_ms=30000):
        f = self.client.send(self.node, request)
        self.client.poll(future=f, timeout_ms=timeout_ms)
        assert f.succeeded(), f.exception
        return f.value

    def join(self, group, member, instance, protocol=b"meta"):
        return self.call(JoinGroupRequest[5](group, SESSION_MS, 10000, member, instance, "consumer",
                                             [("range", protocol)]))

    def close(self):
        self.client.close()


def test_old_incarnation_is_fenced_everywhere(make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "fence-t", partitions=1)
    group = "fence-g"
    w = Wire(broker)
    try:
        j = w.join(group, "", "inst")
        assert j.error_code == 0
        old, gen = j.member_id, j.generation_id
        s = w.call(SyncGroupRequest[3](group, gen, old, "inst", [(old, b"assignment-of-inst")]))
        assert s.error_code == 0
        # A new process with the same group.instance.id: it takes over the
        # member and its assignment, in the same generation (no rebalance).
        j2 = w.join(group, "", "inst")
        assert j2.error_code == 0 and j2.member_id != old and j2.generation_id == gen
        s2 = w.call(SyncGroupRequest[3](group, gen, j2.member_id, "inst", []))
        assert (s2.error_code, s2.member_assignment) == (0, b"assignment-of-inst")
        assert w.call(HeartbeatRequest[3](group, gen, j2.member_id, "inst")).error_code == 0
        # The old one is fenced on every API.
        assert w.call(HeartbeatRequest[3](group, gen, old, "inst")).error_code == FENCED_INSTANCE_ID
        assert w.call(SyncGroupRequest[3](group, gen, old, "inst", [])).error_code == FENCED_INSTANCE_ID
        commit = w.call(OffsetCommitRequest[7](group, gen, old, "inst", [("fence-t", [(0, 5, -1, "")])]))
        assert commit.topics[0][1][0][1] == FENCED_INSTANCE_ID
        assert w.join(group, old, "inst").error_code == FENCED_INSTANCE_ID
        # Admin removal by instance id (kafka-consumer-groups --delete / removeMembersFromConsumerGroup).
        leave = w.call(LeaveGroupRequest[3](group, [("", "inst"), ("", "nobody")]))
        assert [m[2] for m in leave.members] == [0, 25]  # 25: UNKNOWN_MEMBER_ID
        d = w.call(DescribeGroupsRequest[1]([group]))
        assert d.groups[0][5] == [], "no members left"
    finally:
        w.close()


def test_confluent_consumer_fenced_by_a_newer_instance(make_broker):
    broker = make_broker(FAST_GROUPS)
    topic, group = "fence-ck", "fence-ck-g"
    create(broker, topic, partitions=2)
    rec1, rec2 = Recorder(), Recorder()
    first = static_consumer(broker, group, topic, "same", "range", rec1)
    poll_until([first], lambda: owned(first) == [0, 1])
    second = static_consumer(broker, group, topic, "same", "range", rec2)
    deadline, fatal = time.time() + 20, None
    while fatal is None and time.time() < deadline:
        second.poll(0.05)
        m = first.poll(0.05)
        # librdkafka turns FENCED_INSTANCE_ID into a fatal consumer error.
        if m is not None and m.error() is not None and m.error().code() == KafkaError._FATAL:
            fatal = m.error()
    assert fatal is not None, "the old instance was never fenced"
    assert "static consumer fenced" in fatal.str().lower(), fatal
    poll_until([second], lambda: owned(second) == [0, 1])
    second.close()
    first.close()


def test_third_member_past_group_max_size_is_refused(make_broker):
    broker = make_broker(FAST_GROUPS + ["group.max.size=2"])
    topic, group = "full-t", "full-g"
    create(broker, topic, partitions=2)
    recs = [Recorder(), Recorder()]
    cs = [static_consumer(broker, group, topic, f"m{i}", "range", recs[i]) for i in range(2)]
    poll_until(cs, lambda: all(owned(c) for c in cs))
    w = Wire(broker)
    try:
        for instance in (None, "m3"):
            j = w.join(group, "", instance)
            assert (j.error_code, j.member_id) == (GROUP_MAX_SIZE_REACHED, ""), j
        # A returning instance does not grow the group: it is still accepted.
        j = w.join(group, "", "m1")
        assert j.error_code == 0, j
        # DescribeGroups and OffsetFetch naming the same thing many times are answered once.
        d = w.call(DescribeGroupsRequest[1]([group] * 5000))
        assert len(d.groups) == 1 and d.groups[0][2] == "Stable"
        f = w.call(OffsetFetchRequest[5](group, [(topic, [0] * 5000 + [1])]))
        assert [(t, [p[0] for p in ps]) for t, ps in f.topics] == [(topic, [0, 1])]
    finally:
        w.close()
    for c in cs:
        c.close()
