"""Dedicated controllers (`process.roles=controller`), as Kafka's production
layout runs them: three controller-only voters with no broker listener and
no partitions, and brokers (`process.roles=broker`) that register with
them, heartbeat and host every partition. Clients never see a controller:
they are told a broker's id as the controller and admin requests are
forwarded. The active controller's SIGKILL moves the quorum to another
voter and topic creation goes on."""
import signal
import subprocess

import pytest

from cluster import Cluster, Node
from conftest import STROM
from test_cluster import admin, controller_of, create, produce, read_all, wait
from test_replication import create_replicated
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")


class ControllerOnly(Node):
    """A voter whose only listener is its controller listener."""

    def args(self):
        out = []
        for a in super().args():
            if a.startswith("listeners="):
                a = f"listeners=CONTROLLER://127.0.0.1:{self.controller_port}"
            elif a.startswith("process.roles="):
                a = "process.roles=controller"
            out.append(a)
        return out

    started_line = r"strom controller started"


@pytest.fixture
def dedicated(tmp_path, request):
    c = Cluster(str(tmp_path))
    c.nodes = [ControllerOnly(c, n.node_id, n.port, n.controller_port) for n in c.nodes]
    c.start()
    brokers = [c.add_broker() for _ in range(3)]
    yield c, brokers
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.logs())


def test_brokers_run_on_three_dedicated_controllers(dedicated):
    c, brokers = dedicated
    bootstrap = ",".join(b.bootstrap for b in brokers)
    wait("three brokers registered", lambda: sorted(admin(bootstrap).list_topics(timeout=10).brokers) == [4, 5, 6])
    # Clients are told a broker as the controller, never a voter they cannot reach.
    assert controller_of(brokers[0].bootstrap) in (4, 5, 6)
    p = create_replicated(bootstrap, "on-brokers", rf=3)
    assert sorted(p.replicas) == [4, 5, 6], p
    produce(bootstrap, "on-brokers", [f"v{i}" for i in range(100)], acks="all")
    assert read_all(bootstrap, "on-brokers", 1) == [f"v{i}" for i in range(100)]

    # The active controller dies: another voter takes over, and the brokers
    # keep their sessions (they heartbeat to the new one) and create topics.
    first = leader_of(quorum(bootstrap))
    assert first in (1, 2, 3)
    c.node(first).stop(signal.SIGKILL)
    wait("a new quorum leader", lambda: leader_of(quorum(bootstrap)) not in (None, first))
    create(bootstrap, "after", 3)
    produce(bootstrap, "after", [f"a{i}" for i in range(30)])
    assert sorted(read_all(bootstrap, "after", 3)) == sorted(f"a{i}" for i in range(30))
    assert sorted(admin(bootstrap).list_topics(timeout=10).brokers) == [4, 5, 6]
    # Back from its log, it follows again and catches up: with the other
    # follower-voter it is a majority once the new leader dies too, and
    # topic creation goes on.
    c.node(first).restart()
    # DescribeQuorum through a broker is the leader's view (forwarded):
    # the restarted voter's lag goes to 0.
    wait("the restarted voter caught up", lambda: quorum(bootstrap).get(first) == ("follower", "0"), timeout=60)
    second = leader_of(quorum(bootstrap))
    c.node(second).stop(signal.SIGKILL)
    wait("a third quorum leader", lambda: leader_of(quorum(bootstrap)) not in (None, second), timeout=60)
    create(bootstrap, "third", 2)
    produce(bootstrap, "third", [f"t{i}" for i in range(10)])
    assert sorted(read_all(bootstrap, "third", 2)) == sorted(f"t{i}" for i in range(10))


def quorum(bootstrap):
    """id -> (role, lag) of the metadata quorum, as `strom cluster describe` shows it."""
    out = subprocess.run([STROM, "cluster", "describe", "--bootstrap", bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    return {int(r[0]): (r[1], r[3]) for r in rows
            if len(r) > 3 and r[0].isdigit() and r[1] in ("leader", "follower", "observer")}


def leader_of(q):
    return next((i for i, (role, _) in q.items() if role == "leader"), None)
