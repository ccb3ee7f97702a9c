"""The Java client (Apache Kafka's kafka-clients 4.4, tests/interop/java)
against the broker: idempotent and transactional producers, classic groups
(eager range, cooperative-sticky, static membership) and KIP-848 groups, the
Admin client, consume-transform-produce with sendOffsetsToTransaction, and
records crossing between the Java client and librdkafka (confluent-kafka).
The Java scenarios check Kafka's behaviour themselves; see java/src."""
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from java_client import JavaClient

FAST_GROUPS = ["group.initial.rebalance.delay.ms=0", "group.consumer.heartbeat.interval.ms=500"]


@pytest.fixture(scope="module")
def java():
    client = JavaClient()
    yield client
    client.close()


def create(broker, name, partitions=1):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def confluent_read(broker, topic, partitions, expected, isolation="read_committed"):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    deadline = time.time() + 60
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    end = time.time() + 1
    while time.time() < end:  # nothing more than expected
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_java_produces_confluent_reads(java, broker, codec):
    topic = f"j2c-{codec}"
    create(broker, topic, 3)
    sent = java.run("produce", broker.bootstrap, topic, 60, codec, 3)
    assert len(sent) == 60
    offsets = {}
    for _, p, o, key in sent:
        offsets.setdefault(int(p), []).append(int(o))
    assert offsets == {p: list(range(20)) for p in range(3)}
    got = confluent_read(broker, topic, 3, 60)
    assert len(got) == 60
    by_key = {m.key().decode(): m for m in got}
    for i in range(60):
        m = by_key[f"k{i}"]
        assert m.value() == f"java-{i}".encode()
        assert m.partition() == i % 3
        assert m.headers() == [("src", b"java")]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_produces_java_reads(java, broker, codec):
    topic = f"c2j-{codec}"
    create(broker, topic, 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.codec": codec, "linger.ms": 5})
    for i in range(40):
        p.produce(topic, key=f"k{i}", value=f"rdkafka-{i}", partition=i % 2, headers=[("src", b"rdkafka")])
    assert p.flush(30) == 0
    recs = java.run("consume", broker.bootstrap, topic, 40, "read_uncommitted")
    assert recs[-1] == ["count", "40"]
    rows = {r[3]: r for r in recs[:-1]}
    assert len(rows) == 40
    for i in range(40):
        _, part, _, key, value, headers = rows[f"k{i}"]
        assert (int(part), value, headers) == (i % 2, f"rdkafka-{i}", "src=rdkafka;")
    for part in range(2):
        assert sorted(int(r[2]) for r in recs[:-1] if int(r[1]) == part) == list(range(20))


def test_idempotent_producer_in_order(java, broker):
    create(broker, "idem")
    assert java.run("idempotent", broker.bootstrap, "idem", 2000) == [["acked", "2000"]]
    got = confluent_read(broker, "idem", 1, 2000)
    assert [m.value() for m in got] == [f"idem-{i}".encode() for i in range(2000)]


def test_transactions_commit_and_abort(java, make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "jtxn")
    (committed,) = java.run("transactions", broker.bootstrap, "jtxn")
    want = committed[1].split(",")
    # librdkafka's read_committed sees what the Java producer committed, and not what it aborted.
    assert [m.value().decode() for m in confluent_read(broker, "jtxn", 1, 10)] == want
    assert len(confluent_read(broker, "jtxn", 1, 15, isolation="read_uncommitted")) == 15


def test_transactional_fencing(java, make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "jfence")
    (fenced,) = java.run("fencing", broker.bootstrap, "jfence")
    assert fenced[0] == "fenced"


def test_consume_transform_produce(java, make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "ctp-in")
    create(broker, "ctp-out")
    (line,) = java.run("ctp", broker.bootstrap, "ctp-in", "ctp-out", "ctp-group", 50)
    assert line[:2] == ["ctp", "50"] and int(line[3]) > 0
    assert [m.value().decode() for m in confluent_read(broker, "ctp-out", 1, 50)] == [f"V{i}" for i in range(50)]


@pytest.mark.parametrize("protocol,assignor", [
    ("classic", "range"),
    ("classic", "cooperative-sticky"),
    ("consumer", "uniform"),
    ("consumer", "range"),
])
def test_consumer_group(java, make_broker, protocol, assignor):
    broker = make_broker(FAST_GROUPS)
    topic = f"grp-{protocol}-{assignor}"
    create(broker, topic, 4)
    split, described = java.run("group", broker.bootstrap, topic, f"g-{protocol}-{assignor}", protocol, assignor, 4, 200)
    a, b = (int(w.split("=")[1]) for w in split[1:])
    assert a + b == 4 and a > 0 and b > 0
    if protocol == "classic":
        assert described == ["described", "Classic", assignor]


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_kip848_group_described(java, make_broker, assignor):
    broker = make_broker(FAST_GROUPS)
    topic = f"grp848-{assignor}"
    create(broker, topic, 2)
    _, described = java.run("group", broker.bootstrap, topic, f"g848-{assignor}", "consumer", assignor, 2, 20)
    assert described == ["described", "Consumer", assignor]


def test_static_membership(java, make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "static", 4)
    (line,) = java.run("static-member", broker.bootstrap, "static", "g-static", 4)
    assert line[0] == "static"


def test_admin_topics(java, broker):
    (line,) = java.run("admin-topics", broker.bootstrap, "adm")
    assert line[:2] == ["topics", "ok"]


def test_admin_configs(java, broker):
    (line,) = java.run("admin-configs", broker.bootstrap, "admcfg")
    assert line[:2] == ["configs", "ok"] and int(line[2]) > 10


def test_admin_offsets_and_delete_records(java, broker):
    assert java.run("admin-offsets", broker.bootstrap, "admoff") == [["offsets", "ok"]]


def test_admin_groups(java, make_broker):
    broker = make_broker(FAST_GROUPS)
    assert java.run("admin-groups", broker.bootstrap, "admgrp", "admgrp-g") == [["groups", "ok"]]


def test_admin_describe_cluster(java, broker):
    (line,) = java.run("admin-cluster", broker.bootstrap)
    assert line[0] == "cluster" and line[1]
