"""Consumer groups with real clients: partitions shared disjointly, every
record read, rebalances on leave and join, committed offsets that survive
close, SIGKILL of the broker, and the admin group APIs."""
import json
import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_confluent import create
from yardstick import AGAINST_KAFKA

FAST_GROUPS = ["group.initial.rebalance.delay.ms=300"]
NODE_DIR = os.path.join(os.path.dirname(__file__), "node")


@pytest.fixture
def gbroker(make_broker):
    return make_broker(FAST_GROUPS)


def produce(broker, topic, values, partitions=None):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i, v in enumerate(values):
        if partitions:
            p.produce(topic, value=str(v).encode(), partition=i % partitions)
        else:
            p.produce(topic, value=str(v).encode(), key=str(v).encode())
    assert p.flush(30) == 0


def consumer(broker, group, **conf):
    base = {"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    if conf.get("group.protocol") != "consumer":  # KIP-848 members take timeouts from the broker
        base.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    return Consumer({**base, **conf})


def drain(consumers, want, seen, timeout=60):
    """Polls all consumers round-robin until `want` more values arrive; returns them per consumer index."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.time() + timeout
    start = sum(len(v) for v in seen.values())
    while sum(len(v) for v in seen.values()) - start < want and time.time() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                got[i].append(int(m.value()))
                seen.setdefault(i, []).append(int(m.value()))
    return got


def assignments(consumers):
    return [sorted(tp.partition for tp in c.assignment()) for c in consumers]


def wait_assigned(consumers, total, timeout=60, seen=None):
    """Polls until the consumers hold `total` partitions between them; records what they read into `seen`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None and m.error() is None and seen is not None:
                seen.setdefault(i, []).append(int(m.value()))
        a = assignments(consumers)
        if sum(len(x) for x in a) == total and all(a):
            return a
    raise AssertionError(f"group did not settle: {assignments(consumers)}")


def group_conf(protocol, strategy):
    if protocol == "consumer":  # KIP-848: the broker assigns
        return {"group.protocol": "consumer", "group.remote.assignor": strategy}
    return {"partition.assignment.strategy": strategy}


@pytest.mark.parametrize("protocol,strategy", [("classic", "range"), ("classic", "cooperative-sticky"),
                                               ("consumer", "uniform"), ("consumer", "range")])
def test_three_consumers_share_and_rebalance(make_broker, protocol, strategy):
    gbroker = make_broker(FAST_GROUPS + ["group.consumer.heartbeat.interval.ms=500"])
    create(gbroker, "g6", 6)
    produce(gbroker, "g6", range(600))
    conf = group_conf(protocol, strategy)
    cs = [consumer(gbroker, f"grp-{strategy}", **conf) for _ in range(3)]
    for c in cs:
        c.subscribe(["g6"])
    seen = {}
    drain(cs, 600, seen)
    a = wait_assigned(cs, 6)
    flat = [p for x in a for p in x]
    assert sorted(flat) == list(range(6)), a
    values = [v for vs in seen.values() for v in vs]
    assert sorted(values) == list(range(600)), "every record exactly once"
    # A member leaves: the other two take over its partitions.
    cs[2].close()
    cs = cs[:2]
    wait_assigned(cs, 6)
    produce(gbroker, "g6", range(600, 900))
    got = drain(cs, 300, seen)
    assert sorted(v for vs in got.values() for v in vs if v >= 600) == list(range(600, 900))
    # A member joins: three again, and nothing is lost.
    cs.append(consumer(gbroker, f"grp-{strategy}", **conf))
    cs[2].subscribe(["g6"])
    wait_assigned(cs, 6)
    produce(gbroker, "g6", range(900, 1200))
    got = drain(cs, 300, seen)
    assert set(range(900, 1200)) <= {v for vs in got.values() for v in vs}
    for c in cs:
        c.close()


def test_commit_close_reopen_resumes_and_survives_sigkill(gbroker):
    create(gbroker, "resume", 2)
    produce(gbroker, "resume", range(100), partitions=2)
    c = consumer(gbroker, "resumers", **{"enable.auto.commit": False})
    c.subscribe(["resume"])
    seen = []
    while len(seen) < 40:
        m = c.poll(1)
        if m is not None and m.error() is None:
            seen.append(int(m.value()))
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition("resume", 0), TopicPartition("resume", 1)], timeout=10)}
    c.close()
    assert sum(o for o in committed.values() if o >= 0) == 40
    gbroker.kill9()
    gbroker.restart()
    c = consumer(gbroker, "resumers")
    c.subscribe(["resume"])
    rest = []
    deadline = time.time() + 60
    while len(rest) < 60 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            rest.append(int(m.value()))
    c.close()
    assert sorted(seen + rest) == list(range(100)), "resumed exactly at the committed offsets"
    assert AGAINST_KAFKA or "rebuilt consumer groups from __consumer_offsets" in gbroker.read_log()  # Strom's log


def test_admin_group_operations(gbroker):
    create(gbroker, "adm-g", 3)
    produce(gbroker, "adm-g", range(30), partitions=3)
    c = consumer(gbroker, "admins", **{"enable.auto.commit": False})
    c.subscribe(["adm-g"])
    n = 0
    while n < 30:
        m = c.poll(1)
        if m is not None and m.error() is None:
            n += 1
    c.commit(asynchronous=False)
    a = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    listed = a.list_consumer_groups().result(30)
    assert "admins" in [g.group_id for g in listed.valid]
    d = a.describe_consumer_groups(["admins"])["admins"].result(30)
    assert d.state.name == "STABLE" and len(d.members) == 1
    assert sorted(tp.partition for tp in d.members[0].assignment.topic_partitions) == [0, 1, 2]
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("admins")])["admins"].result(30)
    assert {tp.partition: tp.offset for tp in offs.topic_partitions} == {0: 10, 1: 10, 2: 10}
    # Deleting a group with members is refused; after close it works.
    with pytest.raises(Exception):
        a.delete_consumer_groups(["admins"])["admins"].result(30)
    c.close()
    a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("admins", [TopicPartition("adm-g", 0, 3)])])["admins"].result(30)
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("admins")])["admins"].result(30)
    assert {tp.partition: tp.offset for tp in offs.topic_partitions}[0] == 3
    a.delete_consumer_groups(["admins"])["admins"].result(30)
    assert "admins" not in [g.group_id for g in a.list_consumer_groups().result(30).valid]


def test_member_that_stops_heartbeating_is_removed(gbroker):
    create(gbroker, "hb", 4)
    script = (
        "import sys, time\n"
        "from confluent_kafka import Consumer\n"
        f"c = Consumer({{'bootstrap.servers': '{gbroker.bootstrap}', 'group.id': 'hb-group', 'session.timeout.ms': 6000}})\n"
        "c.subscribe(['hb'])\n"
        "while not c.assignment():\n    c.poll(0.2)\n"
        "print('assigned', flush=True)\n"
        "while True:\n    c.poll(0.2)\n"
    )
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    survivor = consumer(gbroker, "hb-group")
    survivor.subscribe(["hb"])
    assert victim.stdout.readline().strip() == b"assigned"
    deadline = time.time() + 30
    while time.time() < deadline and len(survivor.assignment()) not in (1, 2, 3):
        survivor.poll(0.1)
    assert 0 < len(survivor.assignment()) < 4, "partitions were shared"
    victim.kill()  # SIGKILL: no LeaveGroup, no more heartbeats
    victim.wait()
    deadline = time.time() + 40
    while time.time() < deadline and len(survivor.assignment()) != 4:
        survivor.poll(0.1)
    assert len(survivor.assignment()) == 4, "the dead member's partitions were reassigned"
    survivor.close()
    assert AGAINST_KAFKA or "session expired; removing member" in gbroker.read_log()  # Strom's own log line


def test_kafka_python_group(gbroker):
    from kafka import KafkaConsumer
    create(gbroker, "kpg", 2)
    produce(gbroker, "kpg", range(100), partitions=2)
    c = KafkaConsumer("kpg", bootstrap_servers=gbroker.bootstrap, group_id="kp-group", auto_offset_reset="earliest",
                      consumer_timeout_ms=20000, session_timeout_ms=10000)
    got = []
    for m in c:
        got.append(int(m.value))
        if len(got) == 100:
            break
    c.commit()
    c.close()
    assert sorted(got) == list(range(100))
    a = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("kp-group")])["kp-group"].result(30)
    assert sum(tp.offset for tp in offs.topic_partitions) == 100


def test_kafkajs_group_consume(gbroker):
    create(gbroker, "jsg", 2)
    produce(gbroker, "jsg", range(200), partitions=2)
    r = subprocess.run(["node", "consume.js", gbroker.bootstrap, "jsg", "js-group", "200"], cwd=NODE_DIR, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(int(v) for v in json.loads(r.stdout)["values"]) == list(range(200))


def test_mixed_clients_in_one_group(gbroker):
    from kafka import KafkaConsumer
    create(gbroker, "mixed", 4)
    produce(gbroker, "mixed", range(400), partitions=4)
    rd = consumer(gbroker, "mixed-group", **{"partition.assignment.strategy": "range"})
    rd.subscribe(["mixed"])
    kp = KafkaConsumer("mixed", bootstrap_servers=gbroker.bootstrap, group_id="mixed-group", auto_offset_reset="earliest",
                       session_timeout_ms=10000, enable_auto_commit=True)
    seen = set()
    deadline = time.time() + 60
    both = False
    while time.time() < deadline and (len(seen) < 400 or not both):  # one member may read all before the split
        m = rd.poll(0.05)
        if m is not None and m.error() is None:
            seen.add(int(m.value()))
        for recs in kp.poll(timeout_ms=50).values():
            seen.update(int(r.value) for r in recs)
        if rd.assignment() and kp.assignment() and len(rd.assignment()) + len(kp.assignment()) == 4:
            both = True
    assert seen == set(range(400))
    assert both, "librdkafka and kafka-python members shared the partitions"
    kp.close()
    rd.close()


def test_fifty_members_stabilise(gbroker):
    create(gbroker, "fifty", 50)
    produce(gbroker, "fifty", range(500), partitions=50)
    cs = [consumer(gbroker, "fifty-group") for _ in range(50)]
    for c in cs:
        c.subscribe(["fifty"])
    seen = {}
    a = wait_assigned(cs, 50, timeout=120, seen=seen)
    assert sorted(p for x in a for p in x) == list(range(50))
    drain(cs, 500 - sum(len(v) for v in seen.values()), seen, timeout=60)
    assert sorted(v for vs in seen.values() for v in vs) == list(range(500))
    for c in cs:
        c.close()
