"""Several listeners, as Kafka's users set them up (the Docker pattern of an
INTERNAL listener for brokers and an EXTERNAL one for clients): every
listener in `listeners` is served; a client is told about each broker at
its endpoint for the listener the client's request came in on (Metadata,
DescribeCluster, FindCoordinator); brokers reach each other on
`inter.broker.listener.name`."""
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from cluster import Cluster, Node, free_ports
from kafka_wire import find_coordinator_v1
from conftest import STROM
from test_cluster import read_all, wait
from test_replication import create_replicated, partition
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")

PROTOCOLS = "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"


def brokers_seen(bootstrap):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {b.id: (b.host, b.port) for b in md.brokers.values()}


def test_each_client_sees_the_endpoints_of_the_listener_it_came_in_on(tmp_path):
    internal, external, advertised = free_ports(3)
    log = open(tmp_path / "strom.log", "ab")
    proc = subprocess.Popen([
        STROM, "server", "--data-dir", str(tmp_path / "data"),
        "--set", f"listeners=INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}",
        "--set", f"advertised.listeners=INTERNAL://127.0.0.1:{internal},EXTERNAL://localhost:{advertised}",
        "--set", PROTOCOLS, "--set", "inter.broker.listener.name=INTERNAL",
        "--set", "group.initial.rebalance.delay.ms=0"], stdout=log, stderr=log)
    try:
        wait("the server", lambda: "strom broker started" in (tmp_path / "strom.log").read_text(), timeout=30)
        inside, outside = f"127.0.0.1:{internal}", f"127.0.0.1:{external}"
        assert brokers_seen(inside) == {1: ("127.0.0.1", internal)}
        # Through the EXTERNAL listener the broker is where it is advertised
        # (a port nothing listens on here, so only the answer is checked).
        assert brokers_seen(outside) == {1: ("localhost", advertised)}
        # A group's coordinator through INTERNAL, where a client can use it.
        p = Producer({"bootstrap.servers": inside})
        for i in range(10):
            p.produce("two-doors", value=f"v{i}".encode())
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": inside, "group.id": "doors", "auto.offset.reset": "earliest"})
        c.subscribe(["two-doors"])
        got, deadline = [], time.time() + 30
        while len(got) < 10 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
        c.commit(asynchronous=False)
        c.close()
        assert sorted(got) == sorted(f"v{i}" for i in range(10))
        a = AdminClient({"bootstrap.servers": inside})
        g = a.describe_consumer_groups(["doors"])["doors"].result(10)
        assert (g.coordinator.host, g.coordinator.port) == ("127.0.0.1", internal)
        # FindCoordinator through EXTERNAL names the EXTERNAL endpoint.
        assert find_coordinator_v1(outside, "doors") == (0, 1, "localhost", advertised)
    finally:
        proc.terminate()
        proc.wait(30)


class TwoDoorNode(Node):
    """A node whose clients use EXTERNAL and whose peers use INTERNAL."""

    def args(self):
        out = super().args()
        i = out.index(f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}")
        out[i] = (f"listeners=INTERNAL://127.0.0.1:{self.internal},EXTERNAL://127.0.0.1:{self.port},"
                  f"CONTROLLER://127.0.0.1:{self.controller_port}")
        return out + ["--set", PROTOCOLS, "--set", "inter.broker.listener.name=INTERNAL",
                      # Clients are told of a door that is shut: only the
                      # replica fetchers' way in (INTERNAL) works for them.
                      "--set", f"advertised.listeners=EXTERNAL://127.0.0.1:{self.shut},"
                               f"INTERNAL://127.0.0.1:{self.internal}"]


def test_brokers_replicate_on_the_inter_broker_listener(tmp_path):
    c = Cluster(str(tmp_path))
    nodes = []
    for n in c.nodes:
        t = TwoDoorNode(c, n.node_id, n.port, n.controller_port)
        t.internal, t.shut = free_ports(2)
        nodes.append(t)
    c.nodes = nodes
    c.start()
    try:
        inside = ",".join(f"127.0.0.1:{n.internal}" for n in nodes)
        wait("three brokers", lambda: len(brokers_seen(inside)) == 3)
        assert brokers_seen(nodes[0].bootstrap) == {n.node_id: ("127.0.0.1", n.shut) for n in nodes}
        p = create_replicated(inside, "inside", rf=3)
        assert sorted(p.isrs) == [1, 2, 3], p
        prod = Producer({"bootstrap.servers": inside, "acks": "all", "enable.idempotence": True})
        for i in range(200):
            prod.produce("inside", value=f"r{i}".encode())
        assert prod.flush(30) == 0
        # acks=all answered: the followers fetched it on INTERNAL (EXTERNAL
        # as advertised is shut). The leader dies; a follower has it all.
        leader = c.node(p.leader)
        leader.kill9()
        rest = ",".join(f"127.0.0.1:{n.internal}" for n in nodes if n is not leader)
        wait("a new leader", lambda: partition(rest, "inside").leader not in (-1, leader.node_id))
        assert read_all(rest, "inside", 1) == [f"r{i}" for i in range(200)]
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
