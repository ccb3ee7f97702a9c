"""A network partition (issue: cluster, part 2): the leader of a replicated
partition is cut off from the other brokers and voters while it keeps
running, believing it leads. No two brokers may accept acks=all writes for
one partition: the majority side elects a new leader and goes on
acknowledging; a client on the cut-off side that writes straight to the old
leader is refused; after healing the old leader truncates what it took
meanwhile, catches up and rejoins the ISR, and nothing the cluster
acknowledged is lost, duplicated or reordered. Once with the partition's
leader also the active controller (the quorum must elect a new leader too),
once with a follower of the quorum.

The links are TCP forwarders (netsplit.py); the cluster's short sessions
(cluster.FAST) bound how long the majority waits to fence the lost node."""
import pytest

from netsplit import SplitCluster
from test_cluster import controller_of, wait
from test_replication import (Writer, assert_no_zombie_and_nothing_lost, assert_refuses_zombie,
                              create_replicated, partition)
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")


@pytest.fixture
def split(tmp_path, request):
    c = SplitCluster(str(tmp_path)).start()
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.logs())


@pytest.mark.parametrize("leader_is_controller", [True, False], ids=["controller", "follower-voter"])
def test_a_leader_cut_off_from_the_cluster_acknowledges_no_acks_all_write(split, leader_is_controller):
    active = controller_of(split.nodes[0].bootstrap)
    old = next(n for n in split.nodes if (n.node_id == active) == leader_is_controller)
    others = [n for n in split.nodes if n is not old]
    p = create_replicated(split.bootstrap, "split",
                          assignment=[[old.node_id] + [n.node_id for n in others]])
    assert p.leader == old.node_id, p
    # The producer's requests in flight to the cut-off leader get no answer:
    # it gives up on them after socket.timeout.ms and goes to the new leader.
    conf = {"request.timeout.ms": 5000, "socket.timeout.ms": 10000}
    with Writer(split.bootstrap, "split", **conf) as w:
        w.wait_acked(300)
        split.isolate(old)
        try:
            majority = ",".join(n.bootstrap for n in others)
            after = wait("a new leader on the majority side", lambda: (
                lambda q: q if q.leader not in (-1, old.node_id) else None)(partition(majority, "split")))
            assert old.node_id not in after.isrs, after
            # A client on the old leader's side writes to it directly.
            assert_refuses_zombie(old.direct, "split")
            w.wait_acked(300)
        finally:
            split.heal()
        wait("the healed broker back in the ISR",
             lambda: sorted(partition(split.bootstrap, "split").isrs) == [1, 2, 3], timeout=60)
        w.wait_acked(100)
    assert_no_zombie_and_nothing_lost(split.bootstrap, "split", w)
