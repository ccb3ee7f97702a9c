"""`strom topics` against topics seen and made by librdkafka's AdminClient."""
import subprocess

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import STROM


def topics(broker, *args):
    r = subprocess.run([STROM, "topics", "--bootstrap", broker.bootstrap, *args], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_create_alter_describe_delete(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    rc, out, err = topics(broker, "create", "orders", "--partitions", "3", "--config", "retention.ms=86400000")
    assert rc == 0, err
    md = admin.list_topics(timeout=10).topics
    assert len(md["orders"].partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    cfg = admin.describe_configs([res])[res].result(30)
    assert cfg["retention.ms"].value == "86400000"

    rc, _, err = topics(broker, "alter", "orders", "--config", "cleanup.policy=compact", "--partitions", "4")
    assert rc == 0, err
    cfg = admin.describe_configs([res])[res].result(30)
    assert cfg["cleanup.policy"].value == "compact"
    assert len(admin.list_topics(timeout=10).topics["orders"].partitions) == 4

    admin.create_topics([NewTopic("made-by-librdkafka", 2, 1)])["made-by-librdkafka"].result(30)
    rc, out, _ = topics(broker, "list")
    assert out.split() == ["made-by-librdkafka", "orders"]
    rc, out, _ = topics(broker, "describe", "orders")
    head = out.splitlines()[0]
    assert "PartitionCount: 4" in head and "cleanup.policy=compact" in head and "retention.ms=86400000" in head
    assert len(out.splitlines()) == 1 + 1 + 4  # header line, table header, one row per partition

    rc, _, err = topics(broker, "create", "orders")
    assert rc != 0 and "already exists" in err
    rc, _, err = topics(broker, "create", "bad", "--config", "no.such.config=1")
    assert rc != 0 and "no.such.config" in err
    rc, _, err = topics(broker, "alter", "orders", "--partitions", "2")
    assert rc != 0

    rc, _, err = topics(broker, "delete", "orders")
    assert rc == 0, err
    assert "orders" not in admin.list_topics(timeout=10).topics


def test_unreachable_broker_is_a_clear_error():
    for args in (["topics", "list"], ["consume", "t", "--count", "1"], ["consume", "t", "--group", "g", "--count", "1"],
                 ["transactions", "list"], ["perf", "produce", "--records", "1"]):
        r = subprocess.run([STROM, *args, "--bootstrap", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, args
        assert "cannot connect to 127.0.0.1:1" in r.stderr, (args, r.stderr)
    r = subprocess.run([STROM, "produce", "t", "--bootstrap", "127.0.0.1:1"], input="a\n", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "cannot connect to 127.0.0.1:1" in r.stderr, r.stderr
