"""`strom produce` (Strom's own producer) read back with librdkafka: keys,
headers, partitions placed like the Java client, every codec, idempotence
on by default, and a transactional run that read_committed consumers see."""
import subprocess

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from conftest import STROM
from test_confluent import create


def produce(broker, topic, lines, *args):
    r = subprocess.run([STROM, "produce", topic, "--bootstrap", broker.bootstrap, *args],
                       input="".join(l + "\n" for l in lines), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr


def consume(broker, topic, partitions, n, isolation="read_uncommitted"):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    for _ in range(200):
        if len(out) >= n:
            break
        for m in c.consume(1000, 0.2):
            assert m.error() is None, m.error()
            out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_lines_with_keys_headers_and_codec(broker, codec):
    create(broker, f"cp-{codec}", 6)
    lines = [f"key-{i % 17}:value {i}" for i in range(3000)]
    rc, err = produce(broker, f"cp-{codec}", lines, "--key-separator", ":", "--header", "source=meter",
                      "--compression", codec)
    assert rc == 0, err
    got = consume(broker, f"cp-{codec}", range(6), 3000)
    assert sorted(m.value().decode() for m in got) == sorted(l.split(":", 1)[1] for l in lines)
    assert all(m.headers() == [("source", b"meter")] for m in got)
    # Same key, same partition, in order.
    by_key = {}
    for m in got:
        by_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(ps) == 1 for ps in by_key.values())


def test_keys_land_where_the_java_client_puts_them(broker):
    create(broker, "java-placement", 6)
    # Partitions from the Java client's murmur2 partitioner for 6 partitions.
    want = {"meter-42": 1, "abc": 3, "Zürich": 1, "hello world!": 0, "a": 4, "ab": 2}
    rc, err = produce(broker, "java-placement", [f"{k}|x" for k in want], "--key-separator", "|")
    assert rc == 0, err
    got = {m.key().decode(): m.partition() for m in consume(broker, "java-placement", range(6), len(want))}
    assert got == want


def test_idempotent_by_default_and_explicit_partition(broker):
    create(broker, "cp-idem", 2)
    rc, err = produce(broker, "cp-idem", [str(i) for i in range(500)], "--partition", "1")
    assert rc == 0, err
    got = consume(broker, "cp-idem", [0, 1], 500)
    assert [m.value() for m in got] == [str(i).encode() for i in range(500)]
    assert {m.partition() for m in got} == {1}
    r = subprocess.run([STROM, "transactions", "describe-producers", "--bootstrap", broker.bootstrap,
                        "--topic", "cp-idem", "--partition", "1"], capture_output=True, text=True, timeout=60)
    rows = r.stdout.splitlines()[1:]
    assert len(rows) == 1 and rows[0].split()[3] == "499", r.stdout  # last sequence of the idempotent producer


def test_transactional_produce_is_all_or_nothing(broker):
    create(broker, "cp-txn", 1)
    rc, err = produce(broker, "cp-txn", [f"invoice {i}" for i in range(100)], "--transactional-id", "billing")
    assert rc == 0, err
    got = consume(broker, "cp-txn", [0], 100, isolation="read_committed")
    assert [m.value() for m in got] == [f"invoice {i}".encode() for i in range(100)]
    rc, err = produce(broker, "cp-txn", ["no separator here"], "--transactional-id", "billing",
                      "--key-separator", ":")
    assert rc != 0 and "no key separator" in err


def test_bad_input_is_a_readable_error(broker):
    rc, err = produce(broker, "x", ["a"], "--compression", "brotli")
    assert rc != 0 and "compression.type" in err
    rc, err = produce(broker, "x", ["a"], "-X", "linger=5")
    assert rc != 0 and "unknown producer property" in err
    rc, err = produce(broker, "x", ["a"], "--partition", "9")
    assert rc != 0 and "partition 9" in err


def test_thousand_keys_partitioned_like_librdkafka_murmur2(broker):
    from confluent_kafka import Producer
    create(broker, "keys-rd", 7)
    create(broker, "keys-strom", 7)
    keys = [f"key-{i}-{'x' * (i % 13)}" for i in range(1000)]
    p = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    for k in keys:
        p.produce("keys-rd", key=k.encode(), value=b"v")
    assert p.flush(30) == 0
    rc, err = produce(broker, "keys-strom", [f"{k}\tv" for k in keys], "--key-separator", "\t")
    assert rc == 0, err
    rd = {m.key(): m.partition() for m in consume(broker, "keys-rd", range(7), 1000)}
    strom = {m.key(): m.partition() for m in consume(broker, "keys-strom", range(7), 1000)}
    assert len(rd) == 1000 and rd == strom
