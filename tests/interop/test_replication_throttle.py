"""Replication throttles (issue: cluster, part 2) as Kafka's operators use
them: `kafka-reassign-partitions.sh --execute --throttle` (or `strom topics
reassign`, which does the same) sets
`leader.replication.throttled.rate` / `follower.replication.throttled.rate`
on the brokers and the topic's `*.replication.throttled.replicas`, the new
replica copies the log within that rate, and `--verify` removes the
throttle once the move is done."""
import os
import subprocess
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import STROM
from test_cluster import admin, cluster, read_all, reassignment_file, verified, wait  # noqa: F401 (cluster: the fixture)
from test_replication import create_replicated, partition
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")

KAFKA = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "kafka")
RATE = 200_000
RECORDS, SIZE = 1000, 10_000


def reassign(tool, bootstrap, plan, *args):
    env = {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}
    command = [KAFKA, "tool", "kafka-reassign-partitions"] if tool == "kafka" else [STROM, "topics", "reassign"]
    r = subprocess.run([*command, "--bootstrap-server", bootstrap, "--reassignment-json-file", plan, *args],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def configs(bootstrap, kind, name):
    a = admin(bootstrap)
    res = ConfigResource(kind, name)
    return {k: v.value for k, v in a.describe_configs([res])[res].result(30).items()}


@pytest.mark.parametrize("tool", ["kafka", "strom"])
def test_a_throttled_reassignment_copies_within_the_rate_until_verify_lifts_it(cluster, tool, tmp_path):
    if tool == "kafka":
        subprocess.run([KAFKA, "install"], check=True)
    boot = cluster.bootstrap
    create_replicated(boot, "heavy", assignment=[[1]], min_isr=1)
    p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        p.produce("heavy", value=(f"{i:06d}".encode() + b"x" * SIZE))
    assert p.flush(60) == 0
    moves = {("heavy", 0): [1, 2]}
    plan = reassignment_file(moves, tmp_path)
    out = reassign(tool, boot, plan, "--execute", "--throttle", str(RATE))
    assert f"The inter-broker throttle limit was set to {RATE} B/s" in out, out
    started = time.time()
    # What the tool set, read back as Kafka's admin clients read it.
    for broker in ("1", "2"):
        got = configs(boot, ConfigResource.Type.BROKER, broker)
        assert got["leader.replication.throttled.rate"] == str(RATE), got
        assert got["follower.replication.throttled.rate"] == str(RATE), got
    topic = configs(boot, ConfigResource.Type.TOPIC, "heavy")
    assert topic["leader.replication.throttled.replicas"] == "0:1", topic
    assert topic["follower.replication.throttled.replicas"] == "0:2", topic
    # 10 MB at 200 kB/s (after the first fetches, which the rate's ten-
    # second floor lets through) takes well over 20 s: a few seconds in,
    # the new replica is still behind, and not in the ISR.
    time.sleep(max(0.0, started + 6 - time.time()))
    assert "is still in progress" in reassign(tool, boot, plan, "--verify")
    assert partition(boot, "heavy").isrs == [1]
    copied = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cluster.node(2).dir)
                 for f in fs if f.endswith(".log") and "heavy-0" in d)
    assert copied < RECORDS * SIZE * 0.7, f"{copied} bytes copied in {time.time() - started:.1f} s"
    # Unthrottling the replicas lets it finish; --verify then clears every
    # throttle, the brokers' rates too.
    a = admin(boot)
    res = ConfigResource(ConfigResource.Type.TOPIC, "heavy", incremental_configs=[
        deleted("leader.replication.throttled.replicas"),
        deleted("follower.replication.throttled.replicas")])
    a.incremental_alter_configs([res])[res].result(30)
    out = wait("--verify to say completed", lambda: (lambda o: o if verified(o, moves) else None)(
        reassign(tool, boot, plan, "--verify")), timeout=90, every=1)
    assert "Clearing broker-level throttles on brokers 1,2,3" in out, out
    assert "Clearing topic-level throttles on topic heavy" in out, out
    for broker in ("1", "2"):
        got = configs(boot, ConfigResource.Type.BROKER, broker)
        assert got["leader.replication.throttled.rate"] == str(2 ** 63 - 1), got
        assert got["follower.replication.throttled.rate"] == str(2 ** 63 - 1), got
    assert "leader.replication.throttled.replicas" not in {
        k for k, v in configs(boot, ConfigResource.Type.TOPIC, "heavy").items() if v}
    wait("both replicas in the ISR", lambda: sorted(partition(boot, "heavy").isrs) == [1, 2])
    got = read_all(cluster.node(2).bootstrap, "heavy", 1)
    assert [v[:6] for v in got] == [f"{i:06d}" for i in range(RECORDS)]


def deleted(name):
    return ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)
