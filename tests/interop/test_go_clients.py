"""Go's Kafka clients against the broker: franz-go (kgo and kadm) and IBM's
sarama, pinned in tests/interop/go/go.mod. Produce and consume with groups,
franz-go's GroupTransactSession, the admin clients, and records written by
each client read by every other (Go, librdkafka, the Java client)."""
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from java_client import JavaClient

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = Path(__file__).resolve().parent / "go"
GO_BIN = ROOT / ".tools" / "go" / "bin" / "interop"
FAST_GROUPS = ["group.initial.rebalance.delay.ms=0"]


@pytest.fixture(scope="module", autouse=True)
def go_build():
    subprocess.run([str(GO_DIR / "build")], check=True)


def go(scenario, bootstrap, *args, timeout=180):
    """Runs one Go scenario; returns its finding lines split into words."""
    r = subprocess.run([str(GO_BIN), scenario, bootstrap, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"go {scenario} failed:\n{r.stderr}\n{r.stdout}"
    return [line.split("\t") for line in r.stdout.splitlines()]


def create(broker, name, partitions=1):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    deadline = time.time() + 10  # Kafka's brokers learn of a new topic a moment after CreateTopics answers
    while time.time() < deadline and name not in a.list_topics(timeout=10).topics:
        time.sleep(0.1)


def records_of(lines, count):
    """{key: (partition, value, headers)} of a consume scenario's output, checking its count line."""
    assert lines[-1] == ["count", str(count)], lines[-5:]
    rows = {r[3]: (int(r[1]), r[4], r[5]) for r in lines[:-1]}
    assert len(rows) == count
    return rows


WRITERS = {
    "franz": lambda broker, topic: go("franz-produce", broker.bootstrap, topic, 30, 3),
    "sarama": lambda broker, topic: go("sarama-produce", broker.bootstrap, topic, 30, 3),
}


@pytest.mark.parametrize("writer", ["franz", "sarama"])
@pytest.mark.parametrize("reader", ["franz", "sarama", "confluent"])
def test_go_records_read_across_clients(broker, writer, reader):
    topic = f"go-{writer}-{reader}"
    create(broker, topic, 3)
    sent = WRITERS[writer](broker, topic)
    assert sorted((int(p), int(o)) for _, p, o, _ in sent) == [(p, o) for p in range(3) for o in range(10)]
    if reader == "confluent":
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
        rows, deadline = {}, time.time() + 60
        while len(rows) < 30 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                hdr = "".join(f"{k}={v.decode()};" for k, v in (m.headers() or []))
                rows[m.key().decode()] = (m.partition(), m.value().decode(), hdr)
        c.close()
    elif reader == "franz":
        rows = records_of(go("franz-consume", broker.bootstrap, topic, 30, "read_uncommitted"), 30)
    else:
        rows = records_of(go("sarama-consume", broker.bootstrap, topic, 30), 30)
    assert rows == {f"k{i}": (i % 3, f"{writer}-{i}", f"src={writer};") for i in range(30)}


def test_confluent_and_java_records_read_by_go(broker):
    create(broker, "to-go", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.codec": "zstd"})
    for i in range(20):
        p.produce("to-go", key=f"k{i}", value=f"rdkafka-{i}", partition=i % 2, headers=[("src", b"rdkafka")])
    assert p.flush(30) == 0
    java = JavaClient()
    try:
        assert len(java.run("produce", broker.bootstrap, "to-go", 20, "lz4", 2)) == 20
        # The Java client reads what franz-go wrote, too.
        create(broker, "from-franz", 1)
        go("franz-produce", broker.bootstrap, "from-franz", 10, 1)
        recs = java.run("consume", broker.bootstrap, "from-franz", 10, "read_uncommitted")
        assert [r[4] for r in recs[:-1]] == [f"franz-{i}" for i in range(10)]
    finally:
        java.close()
    for scenario, extra in (("franz-consume", ["read_uncommitted"]), ("sarama-consume", [])):
        lines = go(scenario, broker.bootstrap, "to-go", 40, *extra)
        assert lines[-1] == ["count", "40"]
        values = sorted(r[4] for r in lines[:-1])
        assert values == sorted([f"rdkafka-{i}" for i in range(20)] + [f"java-{i}" for i in range(20)])


def test_franz_group(make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "franz-grp", 4)
    (split,) = go("franz-group", broker.bootstrap, "franz-grp", "franz-g", 4, 200)
    a, b = (int(w.split("=")[1]) for w in split[1:])
    assert a + b == 4 and a > 0 and b > 0


@pytest.mark.parametrize("strategy", ["range", "sticky"])
def test_sarama_group(make_broker, strategy):
    broker = make_broker(FAST_GROUPS)
    topic = f"sarama-grp-{strategy}"
    create(broker, topic, 4)
    (split,) = go("sarama-group", broker.bootstrap, topic, f"sarama-g-{strategy}", 4, 200, strategy)
    a, b = (int(w.split("=")[1]) for w in split[1:3])
    assert a + b == 4 and a > 0 and b > 0 and split[3] == strategy


def test_franz_group_transact_session(make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "gts-in")
    create(broker, "gts-out")
    assert go("franz-txn", broker.bootstrap, "gts-in", "gts-out", "gts-g", 100) == [["txn", "100"]]


def test_kadm(broker):
    (line,) = go("kadm", broker.bootstrap, "kadm")
    assert line[:2] == ["kadm", "ok"] and line[3] == "1"


def test_sarama_cluster_admin(broker):
    assert go("sarama-admin", broker.bootstrap, "sadm") == [["sarama-admin", "ok", "1"]]
