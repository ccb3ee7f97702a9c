"""Dynamic broker configs in a cluster (issue: cluster, part 1): as in
KRaft they are records in the metadata log, so a cluster default set with
Kafka's own `kafka-configs.sh --entity-default` through one broker is seen
by every broker, a per-broker value only by its broker, and both survive a
broker's restart (it replays the log)."""
import os
import subprocess

import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource

from test_cluster import admin, cluster, wait  # noqa: F401 (cluster: the fixture)
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")

KAFKA = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "kafka")


def kafka_configs(bootstrap, *args):
    env = {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}
    r = subprocess.run([KAFKA, "tool", "kafka-configs", "--bootstrap-server", bootstrap,
                        "--entity-type", "brokers", *args],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def entry(bootstrap, broker, name):
    a = admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.BROKER, str(broker))
    return a.describe_configs([res])[res].result(30)[name]


def seen_as(bootstrap, broker, name, value, source):
    e = entry(bootstrap, broker, name)
    return e.value == value and e.source == source.value


def test_a_cluster_default_reaches_every_broker_and_a_broker_value_only_its_own(cluster):
    subprocess.run([KAFKA, "install"], check=True)
    # Set through broker 1 only.
    one = cluster.node(1).bootstrap
    out = kafka_configs(one, "--entity-default", "--alter",
                        "--add-config", "log.retention.ms=7200000,log.cleaner.backoff.ms=20000")
    assert "Completed updating default config for brokers in the cluster." in out, out
    kafka_configs(one, "--entity-name", "2", "--alter", "--add-config", "log.retention.ms=3600000")
    for b in (1, 2, 3):
        boot = cluster.node(b).bootstrap
        wait(f"broker {b} to have the default", lambda: seen_as(
            boot, b, "log.cleaner.backoff.ms", "20000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
    assert seen_as(cluster.node(2).bootstrap, 2, "log.retention.ms", "3600000",
                   ConfigSource.DYNAMIC_BROKER_CONFIG)
    for b in (1, 3):
        assert seen_as(cluster.node(b).bootstrap, b, "log.retention.ms", "7200000",
                       ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
    # Kafka's tool reads the default back from any broker.
    out = kafka_configs(cluster.node(3).bootstrap, "--entity-default", "--describe")
    assert "log.retention.ms=7200000" in out, out
    # A restarted broker replays them from the metadata log.
    cluster.node(3).stop()
    cluster.node(3).restart()
    boot = cluster.node(3).bootstrap
    wait("broker 3 back with the default", lambda: seen_as(
        boot, 3, "log.retention.ms", "7200000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG), timeout=60)
    # Deleting the default through broker 3 removes it everywhere.
    kafka_configs(boot, "--entity-default", "--alter", "--delete-config", "log.cleaner.backoff.ms")
    for b in (1, 2, 3):
        nb = cluster.node(b).bootstrap
        wait(f"broker {b} back on the static value", lambda: seen_as(
            nb, b, "log.cleaner.backoff.ms", "15000", ConfigSource.DEFAULT_CONFIG))
