"""confluent-kafka (librdkafka) against strom: records of every shape, codecs,
offsets, admin operations and Kafka error codes."""
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic)

from yardstick import AGAINST_KAFKA, settle


def producer(broker, **conf):
    return Producer({"bootstrap.servers": broker.bootstrap, **conf})


def consume_all(broker, topic, partitions, expected, **conf):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    deadline = time.time() + 60
    while len(out) < expected and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    c.close()
    assert len(out) == expected
    return out


def create(broker, name, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(30)
    return a


def test_record_shapes(broker):
    create(broker, "shapes", config={"retention.ms": "-1"})
    p = producer(broker, **{"message.max.bytes": 2_000_000})
    big = b"B" * 1_000_000
    records = [
        dict(key=b"k1", value=b"v1", headers=[("h1", b"x"), ("h2", None)], timestamp=1_600_000_000_123),
        dict(key=None, value=None),
        dict(key=b"k3", value=b""),
        dict(key=b"", value=b"empty key"),
        dict(key=b"big", value=big),
    ]
    acked = []
    for r in records:
        p.produce("shapes", partition=0, on_delivery=lambda err, msg: acked.append(err), **r)
        p.flush(30)
    assert acked == [None] * len(records)
    got = consume_all(broker, "shapes", [0], len(records), **{"fetch.message.max.bytes": 2_000_000})
    assert [m.offset() for m in got] == list(range(5))
    assert got[0].key() == b"k1" and got[0].value() == b"v1"
    assert got[0].headers() == [("h1", b"x"), ("h2", None)]
    assert got[0].timestamp() == (1, 1_600_000_000_123)
    assert got[1].key() is None and got[1].value() is None
    assert got[2].value() == b""
    assert got[3].key() == b""
    assert got[4].value() == big


def test_ten_thousand_records_keep_order(broker):
    create(broker, "order")
    p = producer(broker, **{"linger.ms": 5, "batch.num.messages": 1000})
    for i in range(10_000):
        p.produce("order", value=str(i).encode(), partition=0)
    assert p.flush(60) == 0
    got = consume_all(broker, "order", [0], 10_000)
    assert [int(m.value()) for m in got] == list(range(10_000))
    assert [m.offset() for m in got] == list(range(10_000))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_codecs(broker, codec):
    create(broker, f"c-{codec}", 2)
    p = producer(broker, **{"compression.type": codec, "linger.ms": 20})
    for i in range(2000):
        p.produce(f"c-{codec}", key=str(i % 13).encode(), value=(f"{codec}-{i}-" + "y" * (i % 100)).encode())
    assert p.flush(60) == 0
    got = consume_all(broker, f"c-{codec}", [0, 1], 2000)
    assert sorted(m.value().decode() for m in got) == sorted(f"{codec}-{i}-" + "y" * (i % 100) for i in range(2000))


def test_list_offsets_and_offsets_for_times(broker):
    create(broker, "times", config={"retention.ms": "-1"})
    p = producer(broker)
    for i in range(10):
        p.produce("times", partition=0, value=b"t", timestamp=1_000_000 + i * 1000)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition("times", 0), timeout=10) == (0, 10)
    found = c.offsets_for_times([TopicPartition("times", 0, 1_004_500)], timeout=10)
    assert found[0].offset == 5
    found = c.offsets_for_times([TopicPartition("times", 0, 9_999_999)], timeout=10)
    assert found[0].offset == -1
    c.close()


def test_admin_topics_and_configs(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("adm", 2, 1, config={"retention.ms": "3600000"})])["adm"].result(30)
    md = settle(lambda: a.list_topics(timeout=10), lambda md: "adm" in md.topics)
    assert len(md.topics["adm"].partitions) == 2
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm")
    describe = lambda: a.describe_configs([res])[res].result(30)
    cfg = describe()
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["cleanup.policy"].value == "delete"
    a.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])])[res].result(30)
    assert settle(describe, lambda c: c["retention.ms"].value == "7200000")["retention.ms"].value == "7200000"
    # Legacy AlterConfigs replaces the whole override set.
    a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, "adm", set_config={"segment.bytes": "1048576"})])[res].result(30)
    cfg = settle(describe, lambda c: c["segment.bytes"].value == "1048576")
    assert cfg["segment.bytes"].value == "1048576"
    assert cfg["retention.ms"].value == "604800000", "retention.ms override was replaced"
    a.create_partitions([NewPartitions("adm", 4)])["adm"].result(30)
    md = settle(lambda: a.list_topics(timeout=10), lambda md: len(md.topics["adm"].partitions) == 4)
    assert len(md.topics["adm"].partitions) == 4
    broker_res = ConfigResource(ConfigResource.Type.BROKER, "1")
    bcfg = a.describe_configs([broker_res])[broker_res].result(30)
    assert bcfg["num.partitions"].value == "1"
    a.delete_topics(["adm"])["adm"].result(30)
    assert "adm" not in settle(lambda: a.list_topics(timeout=10), lambda md: "adm" not in md.topics).topics


def error_of(future):
    with pytest.raises(KafkaException) as e:
        future.result(30)
    return e.value.args[0].code()


def test_admin_error_codes(broker):
    a = create(broker, "dup")
    assert error_of(a.create_topics([NewTopic("dup", 1, 1)])["dup"]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert error_of(a.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"]) == KafkaError.TOPIC_EXCEPTION
    assert error_of(a.create_topics([NewTopic("x" * 250, 1, 1)])["x" * 250]) == KafkaError.TOPIC_EXCEPTION
    assert error_of(a.create_topics([NewTopic("rf", 1, 3)])["rf"]) == KafkaError.INVALID_REPLICATION_FACTOR
    assert error_of(a.create_topics([NewTopic("cfg", 1, 1, config={"retention.ms": "x"})])["cfg"]) == KafkaError.INVALID_CONFIG
    assert error_of(a.delete_topics(["nope"])["nope"]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    res = ConfigResource(ConfigResource.Type.TOPIC, "nope")
    assert error_of(a.describe_configs([res])[res]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_unknown_topic_and_record_too_large(make_broker):
    broker = make_broker(["auto.create.topics.enable=false"])
    errors = []
    p = producer(broker, **{"message.timeout.ms": 3000})
    p.produce("missing", value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT)
    create(broker, "small", config={"max.message.bytes": "1000"})
    errors.clear()
    p = producer(broker, **{"message.timeout.ms": 10000})
    p.produce("small", value=b"z" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_delete_records_moves_low_watermark(broker):
    a = create(broker, "dr")
    p = producer(broker)
    for i in range(20):
        p.produce("dr", partition=0, value=b"r")
    p.flush(30)
    res = a.delete_records([TopicPartition("dr", 0, 12)])
    low = res[TopicPartition("dr", 0, 12)].result(30)
    assert low.low_watermark == 12
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition("dr", 0), timeout=10) == (12, 20)
    c.close()


def test_describe_cluster(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    d = a.describe_cluster().result(30)
    assert len(d.nodes) == 1 and d.nodes[0].port == broker.port
    assert d.controller.id == 1


def test_retention_deletes_expired_records(make_broker):
    broker = make_broker(["log.retention.check.interval.ms=300"])
    create(broker, "ret", config={"retention.ms": "60000"})
    p = producer(broker)
    old = int(time.time() * 1000) - 3_600_000
    for i in range(50):
        p.produce("ret", partition=0, value=b"old", timestamp=old + i)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    deadline = time.time() + 30
    while time.time() < deadline:
        low, high = c.get_watermark_offsets(TopicPartition("ret", 0), timeout=10)
        if low == high == 50:
            break
        time.sleep(0.2)
    c.close()
    assert (low, high) == (50, 50)
    assert AGAINST_KAFKA or "deleted segments past retention" in broker.read_log()  # Strom's own log line
