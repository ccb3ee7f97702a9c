"""kafka-python against strom: produce, consume, admin.

Runs under kafka-python 2.x and 3.x (scripts/test runs this file with both).
kafka-python 3 turns producer idempotence on by default (InitProducerId and
sequence-checked produce); the 2.x run leaves it off, its default.
"""
import kafka
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from yardstick import kafka_differs


def test_idempotent_producer_by_default_in_3x(broker):
    if int(kafka.__version__.split(".")[0]) < 3:
        pytest.skip("kafka-python 2.x has no idempotent producer")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p.config["enable_idempotence"]
    metas = [p.send("kp-idem", value=str(i).encode(), partition=0) for i in range(500)]
    p.flush()
    assert [m.get(timeout=30).offset for m in metas] == list(range(500))
    p.close()
    c = KafkaConsumer("kp-idem", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=3000)
    assert [int(r.value) for r in c] == list(range(500))
    c.close()


def test_produce_consume_and_offsets(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kp", num_partitions=2, replication_factor=1)])
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("kp", num_partitions=2, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip")
    futures = [p.send("kp", key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2, headers=[("n", str(i).encode())]) for i in range(200)]
    p.flush()
    metas = [f.get(timeout=30) for f in futures]
    assert sorted(m.offset for m in metas if m.partition == 0) == list(range(100))
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    tps = [TopicPartition("kp", 0), TopicPartition("kp", 1)]
    c.assign(tps)
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append(m)
        if len(got) == 200:
            break
    assert sorted(m.value.decode() for m in got) == sorted(f"v{i}" for i in range(200))
    assert all(dict(m.headers)["n"] == m.value[1:] for m in got)
    assert c.end_offsets(tps) == {tps[0]: 100, tps[1]: 100}
    assert c.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
    c.close()
    p.close()
    admin.delete_topics(["kp"])
    admin.close()


@kafka_differs("kafka-python 2.3 sends DescribeLogDirs v0, which Kafka 4.0 removed (KIP-896: "
               "IncompatibleBrokerVersion); Strom still serves v0 (as v1) so that client keeps working")
def test_describe_log_dirs_and_cluster(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("ld", num_partitions=2, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        p.send("ld", value=b"x" * 100, partition=0)
    p.flush()
    p.close()
    resp = admin.describe_log_dirs()
    # 2.x returns the response object, 3.x a list of per-dir results.
    text = repr(resp.to_object() if hasattr(resp, "to_object") else resp)
    assert "ld" in text
    admin.close()
