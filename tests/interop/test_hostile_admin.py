"""Hostile administration (issue 25, parts 3 and 4): creation requests larger
than Kafka's controller allows are refused whole with POLICY_VIOLATION and
leave nothing on disk; a large allowed creation does not stall other
clients; damaged start-up files stop the broker with a reason; a lost
producer-id-block never hands out a used producer id."""
import os
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from conftest import Broker
from kafka_wire import (RawConnection, api_versions_latency, create_topics_v7_frame, init_producer_id,
                        parse_create_topics_v7)

POLICY_VIOLATION = 44
EXCESSIVE_PARTITIONS = "Excessively large number of partitions per request."
EXCESSIVE_BATCH = "Unable to perform excessively large batch operation."

# The issue's reproduction: CreateTopics v7, topic "big" with 100,000 partitions.
BIG_FRAME = bytes.fromhex("000000230013000700000001000466757a7a000204626967000186a00001010100000927c00000")


def partition_dirs(broker, topic):
    return [n for n in os.listdir(broker.data_dir)
            if n.startswith(topic + "-") and n[len(topic) + 1:].isdigit()]


def send(broker, frame):
    conn = RawConnection(broker.bootstrap)
    try:
        return conn.send_frame(frame)
    finally:
        conn.close()


def test_the_issues_frame_is_refused_and_leaves_nothing(broker):
    assert create_topics_v7_frame([("big", 100_000)], timeout_ms=600000) == BIG_FRAME
    assert parse_create_topics_v7(send(broker, BIG_FRAME)) == [("big", POLICY_VIOLATION, EXCESSIVE_PARTITIONS)]
    # Two topics that together pass the limit, one of them invalid anyway: all refused.
    got = parse_create_topics_v7(send(broker, create_topics_v7_frame([("a", 6000), ("b", 4001), ("c", 0)])))
    assert got == [(n, POLICY_VIOLATION, EXCESSIVE_PARTITIONS) for n in ("a", "b", "c")]
    assert partition_dirs(broker, "big") == [] and partition_dirs(broker, "a") == []
    assert api_versions_latency(broker.bootstrap) < 10


def test_admin_client_gets_policy_violation(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("huge", 100_000, 1)], request_timeout=30)["huge"].result(60)
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION
    assert EXCESSIVE_PARTITIONS in e.value.args[0].str()
    # 5,001 one-partition topics would be 10,002 records for Kafka's controller.
    fs = admin.create_topics([NewTopic(f"many-{i}", 1, 1) for i in range(5001)], request_timeout=60)
    for f in fs.values():
        with pytest.raises(KafkaException) as e:
            f.result(120)
        assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION
    assert partition_dirs(broker, "many-0") == []

    admin.create_topics([NewTopic("grow", 2, 1)])["grow"].result(30)
    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions("grow", 32_770)])["grow"].result(60)
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION
    assert EXCESSIVE_BATCH in e.value.args[0].str()
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 2
    assert sorted(partition_dirs(broker, "grow")) == ["grow-0", "grow-1"]
    admin.create_partitions([NewPartitions("grow", 5)])["grow"].result(30)
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 5


def test_large_creation_does_not_stall_other_clients(broker):
    """5,000 one-partition topics (10,000 records: the most one request may
    write) while fresh connections keep asking ApiVersions."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    probes, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            try:
                probes.append(api_versions_latency(broker.bootstrap, timeout=10))
            except OSError as e:
                probes.append(e)
            time.sleep(0.05)

    t = threading.Thread(target=probe)
    t.start()
    try:
        fs = admin.create_topics([NewTopic(f"t{i}", 1, 1) for i in range(5000)], request_timeout=120,
                                 operation_timeout=120)
        for f in fs.values():
            f.result(180)
    finally:
        stop.set()
        t.join()
    failed = [p for p in probes if not isinstance(p, float)]
    assert probes and not failed, failed
    md = admin.list_topics(timeout=30).topics
    assert sum(1 for n in md if n.startswith("t")) == 5000
    assert len(partition_dirs(broker, "t4999")) == 1
    # The broker holds no descriptor per idle new partition.
    fds = len(os.listdir(f"/proc/{broker.proc.pid}/fd"))
    assert fds < 1000, fds


def start_fails(broker):
    with pytest.raises(RuntimeError) as e:
        broker.restart()
    broker.proc = None
    return str(e.value)


def test_damaged_start_up_files_say_what_is_wrong(make_broker):
    b = make_broker()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(30)
    del admin
    b.stop()
    metadata = os.path.join(b.data_dir, "__cluster_metadata-0", "log")
    good = open(metadata, "rb").read()
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0xFF
    open(metadata, "wb").write(bad)
    log = start_fails(b)
    assert "metadata log cannot start" in log and "is damaged at byte" in log, log
    open(metadata, "wb").write(good)

    # A topics.json from an earlier version is migrated; a damaged one is refused with a reason.
    topics = os.path.join(b.data_dir, "topics.json")
    open(topics, "wb").close()
    log = start_fails(b)
    assert "topics.json is empty" in log and "restore topics.json from a backup" in log, log
    assert "cannot write" not in log
    open(topics, "wb").write(b'[{"name": "kept", "id"')
    log = start_fails(b)
    assert "topics.json is damaged" in log, log
    os.remove(topics)

    block = os.path.join(b.data_dir, "producer-id-block")
    for junk in (b"", b"garbage\n"):
        open(block, "wb").write(junk)
        log = start_fails(b)
        assert "producer-id-block is" in log and "To recover, delete the file" in log, log
        assert "cannot write" not in log
    os.remove(block)
    b.restart()
    assert "kept" in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics


def test_lost_producer_id_block_continues_above_used_ids(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i in range(10):
        p.produce("idem", value=b"before-%d" % i)
    assert p.flush(30) == 0
    used = init_producer_id(broker.bootstrap)
    broker.stop()
    os.remove(os.path.join(broker.data_dir, "producer-id-block"))
    broker.restart()
    assert "producer-id-block is missing" in broker.read_log()
    assert init_producer_id(broker.bootstrap) > used
    # A new idempotent producer writes and everything reads back.
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i in range(10):
        p.produce("idem", value=b"after-%d" % i)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "idem", "enable.partition.eof": True})
    c.assign([TopicPartition("idem", 0, 0)])
    values, deadline = [], time.time() + 30
    while time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF
            break
        values.append(m.value())
    c.close()
    assert values == [b"before-%d" % i for i in range(10)] + [b"after-%d" % i for i in range(10)]
