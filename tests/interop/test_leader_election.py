"""Preferred-leader election (issue: cluster, part 2) with real `strom
server` processes: after a failover the partition is led by another
replica; once the preferred (first) replica is back in sync, Kafka's own
`kafka-leader-election.sh`, confluent-kafka's `elect_leaders` and `strom
topics elect-leaders` give it its leadership back, with Kafka's answers for an election not needed and
for a preferred replica not available; with `auto.leader.rebalance.enable`
the controller does it by itself every
`leader.imbalance.check.interval.seconds`."""
import subprocess

import pytest
from confluent_kafka import ElectionType, KafkaError, TopicPartition

from cluster import Cluster
from conftest import STROM
from test_cluster import admin, cluster, wait  # noqa: F401 (cluster: the fixture)
from test_kafka_tools import KAFKA, tool
from test_replication import create_replicated, partition
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")


def strom_cli(c, *args):
    r = subprocess.run([STROM, "topics", "--bootstrap", c.bootstrap, *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def leads(c, node):
    """Waits for every broker's metadata to name `node` leader of pref-0:
    the broker that ran the election answers once its own image has the
    change, the others follow within moments."""
    for n in c.nodes:
        if n.running():
            wait(f"{n.node_id} to see {node} lead", lambda: partition(n.bootstrap, "pref").leader == node, timeout=10)


def code(results, topic):
    """The error code elect_leaders gave partition 0 of `topic`."""
    return results[TopicPartition(topic, 0)].code()


def fail_over(c, topic):
    """Kills the preferred leader 2, waits for another to lead, restarts 2
    and waits for it to be in sync again; returns the leader meanwhile."""
    c.node(2).kill9()
    live = ",".join(n.bootstrap for n in c.nodes if n.running())
    other = wait("another leader", lambda: (lambda p: p.leader if p.leader not in (-1, 2) else None)(
        partition(live, topic)))
    c.node(2).restart()
    wait("2 back in the ISR", lambda: sorted(partition(c.bootstrap, topic).isrs) == [1, 2, 3], timeout=60)
    return other


def test_kafka_leader_election_and_elect_leaders_bring_the_preferred_replica_back(cluster):
    subprocess.run([str(KAFKA), "install"], check=True)
    p = create_replicated(cluster.bootstrap, "pref", assignment=[[2, 3, 1]])
    assert p.leader == 2, p
    # Not needed while 2 leads.
    out, _ = tool("kafka-leader-election", "--bootstrap-server", cluster.bootstrap,
                  "--election-type", "PREFERRED", "--topic", "pref", "--partition", "0")
    assert "Valid replica already elected for partitions pref-0" in out, out
    other = fail_over(cluster, "pref")
    assert partition(cluster.bootstrap, "pref").leader == other
    out, _ = tool("kafka-leader-election", "--bootstrap-server", cluster.bootstrap,
                  "--election-type", "PREFERRED", "--topic", "pref", "--partition", "0")
    assert "Successfully completed leader election (PREFERRED) for partitions pref-0" in out, out
    leads(cluster, 2)

    # confluent-kafka: again after another failover; then not needed.
    fail_over(cluster, "pref")
    a = admin(cluster.bootstrap)
    got = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pref", 0)]).result(30)
    assert got[TopicPartition("pref", 0)] is None, got
    leads(cluster, 2)
    got = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pref", 0)]).result(30)
    assert code(got, "pref") == KafkaError.ELECTION_NOT_NEEDED, got

    # Strom's CLI, the same way.
    fail_over(cluster, "pref")
    out = strom_cli(cluster, "elect-leaders", "--topic", "pref", "--partition", "0")
    assert "Successfully completed leader election (PREFERRED) for partitions pref-0" in out, out
    leads(cluster, 2)
    out = strom_cli(cluster, "elect-leaders", "--election-type", "unclean", "--topic", "pref", "--partition", "0")
    assert "Valid replica already elected for partitions pref-0" in out, out

    # The preferred replica down: not available, and the leader stays.
    cluster.node(2).kill9()
    live = ",".join(n.bootstrap for n in cluster.nodes if n.running())
    wait("another leader", lambda: partition(live, "pref").leader not in (-1, 2))
    a = admin(live)  # kept: a client destroyed early fails its futures
    got = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pref", 0)]).result(30)
    assert code(got, "pref") == KafkaError.PREFERRED_LEADER_NOT_AVAILABLE, got
    got = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("nope", 0)]).result(30)
    assert code(got, "nope") == KafkaError.UNKNOWN_TOPIC_OR_PART, got


def test_the_controller_gives_preferred_replicas_their_leadership_back(tmp_path):
    c = Cluster(str(tmp_path), sets=["leader.imbalance.check.interval.seconds=1"]).start()
    try:
        p = create_replicated(c.bootstrap, "balanced", assignment=[[2, 3, 1]])
        assert p.leader == 2, p
        fail_over(c, "balanced")
        wait("2 to lead again without being asked", lambda: partition(c.bootstrap, "balanced").leader == 2,
             timeout=30)
    except Exception:
        print(c.logs())
        raise
    finally:
        c.stop()
