"""`strom consume` (Strom's own consumer) reading what librdkafka wrote:
formats, starting points, read_committed over aborted transactions, and a
consumer group shared with a confluent-kafka consumer."""
import json
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer

from conftest import STROM
from test_confluent import create

FAST_GROUPS = ["group.initial.rebalance.delay.ms=200"]


def consume(broker, topic, *args, timeout=60):
    r = subprocess.run([STROM, "consume", topic, "--bootstrap", broker.bootstrap, *args], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


def fill(broker, topic, n, partitions):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % partitions,
                  headers=[("n", str(i).encode())], timestamp=1_700_000_000_000 + i)
    assert p.flush(30) == 0


def test_formats_and_starting_points(broker):
    create(broker, "cc", 3)
    fill(broker, "cc", 300, 3)
    out = consume(broker, "cc", "--from-beginning", "--count", "300")
    assert sorted(out.split()) == sorted(f"v{i}" for i in range(300))
    rows = [json.loads(l) for l in consume(broker, "cc", "--from-beginning", "--count", "300", "--format", "json").splitlines()]
    assert {(r["partition"], r["offset"]) for r in rows} == {(p, o) for p in range(3) for o in range(100)}
    r0 = next(r for r in rows if r["key"] == "k3")
    assert r0 == {"topic": "cc", "partition": 0, "offset": 1, "timestamp": 1_700_000_000_003, "key": "k3",
                  "value": "v3", "headers": {"n": "3"}}
    out = consume(broker, "cc", "--partition", "2", "--offset", "98", "--count", "2", "-f", r"%p/%o %k=%s\n")
    assert out == "2/98 k296=v296\n2/99 k299=v299\n"
    out = consume(broker, "cc", "--from-time", str(1_700_000_000_000 + 297), "--count", "3", "--format", "kv")
    assert sorted(out.splitlines()) == ["k297\tv297", "k298\tv298", "k299\tv299"]
    # From the end: nothing old, then only what arrives.
    out = consume(broker, "cc", "--idle-timeout-ms", "1500")
    assert out == ""


def test_read_committed_hides_aborted_transactions(broker):
    create(broker, "ccx", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "ccx-app"})
    p.init_transactions(30)
    for label, commit in (("a", False), ("c", True), ("b", False), ("d", True)):
        p.begin_transaction()
        for i in range(5):
            p.produce("ccx", value=f"{label}{i}".encode())
        p.flush(30)
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    rc = consume(broker, "ccx", "--from-beginning", "--read-committed", "--idle-timeout-ms", "1500").split()
    assert rc == [f"c{i}" for i in range(5)] + [f"d{i}" for i in range(5)]
    ru = consume(broker, "ccx", "--from-beginning", "--idle-timeout-ms", "1500").split()
    assert len(ru) == 20


@pytest.mark.parametrize("protocol,strategy", [("classic", "range"), ("classic", "cooperative-sticky"),
                                               ("consumer", None)])
def test_group_shared_with_a_librdkafka_consumer(make_broker, protocol, strategy):
    """Strom's consumer and librdkafka's in one group: eager (range), incremental
    (cooperative-sticky, both members' assignors must agree on the wire format of
    owned partitions) and KIP-848 (the broker assigns)."""
    broker = make_broker(FAST_GROUPS + ["group.consumer.heartbeat.interval.ms=500"])
    topic = f"ccg-{protocol}-{strategy}"
    create(broker, topic, 4)
    fill(broker, topic, 400, 4)
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": f"{topic}-group", "auto.offset.reset": "earliest",
            "group.protocol": protocol}
    props = ["-X", f"group.protocol={protocol}"]
    if strategy:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                     "partition.assignment.strategy": strategy})
        props += ["-X", "heartbeat.interval.ms=500", "-X", "session.timeout.ms=6000",
                  "-X", f"partition.assignment.strategy={strategy}"]
    rd = Consumer(conf)
    rd.subscribe([topic])
    strom = subprocess.Popen([STROM, "consume", topic, "--bootstrap", broker.bootstrap, "--group", f"{topic}-group",
                              "--from-beginning", "--idle-timeout-ms", "8000", *props],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_rd = []
    start = time.time()
    refilled = False
    while time.time() < start + 40 and strom.poll() is None:
        m = rd.poll(0.1)
        if m is not None and m.error() is None:
            seen_rd.append(m.value().decode())
        if not refilled and time.time() > start + 4:
            # Both members have settled: records spread over every partition now reach both.
            p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
            for i in range(400, 800):
                p.produce(topic, value=f"v{i}".encode(), partition=i % 4)
            assert p.flush(30) == 0
            refilled = True
    out, err = strom.communicate(timeout=60)
    rd.close()
    assert strom.returncode == 0, err
    seen_strom = out.split()
    late = {f"v{i}" for i in range(400, 800)}
    assert late & set(seen_strom), "the Strom member got partitions"
    assert late & set(seen_rd), "the librdkafka member got partitions"
    # A partition may change hands before its last commit: at least once.
    assert set(seen_rd + seen_strom) == {f"v{i}" for i in range(800)}, "every record read"


def test_kafka_python_round_trip(broker):
    from kafka import KafkaConsumer, KafkaProducer
    create(broker, "kpx", 2)
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    for i in range(50):
        kp.send("kpx", key=f"k{i}".encode(), value=f"from-kp-{i}".encode(), headers=[("h", b"1")])
    kp.flush()
    kp.close()
    rows = [json.loads(l) for l in consume(broker, "kpx", "--from-beginning", "--count", "50", "--format", "json").splitlines()]
    assert sorted(r["value"] for r in rows) == sorted(f"from-kp-{i}" for i in range(50))
    assert all(r["headers"] == {"h": "1"} and r["key"] == "k" + r["value"].rsplit("-", 1)[1] for r in rows)
    r = subprocess.run([STROM, "produce", "kpy", "--bootstrap", broker.bootstrap, "--key-separator", ":"],
                       input="".join(f"k{i}:from-strom-{i}\n" for i in range(50)), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    c = KafkaConsumer("kpy", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    got = sorted(m.value.decode() for m in c)
    c.close()
    assert got == sorted(f"from-strom-{i}" for i in range(50))


def test_group_consumer_rides_through_a_broker_restart(make_broker):
    broker = make_broker(FAST_GROUPS)
    create(broker, "rst", 2)
    fill(broker, "rst", 100, 2)
    strom = subprocess.Popen([STROM, "consume", "rst", "--bootstrap", broker.bootstrap, "--group", "rst-group",
                              "--from-beginning", "--count", "200", "-X", "heartbeat.interval.ms=300",
                              "-X", "session.timeout.ms=6000", "-X", "auto.commit.interval.ms=200"],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    broker.stop()
    broker.restart()
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100, 200):
        p.produce("rst", value=f"v{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    out, _ = strom.communicate(timeout=90)
    assert strom.returncode == 0
    assert set(out.split()) == {f"v{i}" for i in range(200)}
