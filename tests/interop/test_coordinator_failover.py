"""Consumer groups and transactions survive the SIGKILL of the broker that
coordinates them (issue: cluster, part 2). `__consumer_offsets` and
`__transaction_state` have Kafka's replication factor 3; a coordinator
answers a commit or a transaction step only once every in-sync replica has
it, so the broker that takes the partition over loads exactly what the
clients were told. Real `strom server` processes, confluent-kafka clients,
the short sessions of cluster.FAST."""
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cluster import Cluster
from kafka_wire import find_coordinator_v1
from test_cluster import admin, cluster, consume, read_all, wait  # noqa: F401 (cluster: the fixture)
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")

TXN_STATE_PARTITIONS = 6  # cluster.FAST


def java_hash(s):
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def state_partition(txn_id, n=TXN_STATE_PARTITIONS):
    h = java_hash(txn_id)
    return (0 if h == -(1 << 31) else abs(h)) % n


def create_rf3(bootstrap, name, partitions):
    # A cluster just started may not have unfenced every broker yet.
    wait("3 brokers registered", lambda: len(admin(bootstrap).list_topics(timeout=10).brokers) >= 3)
    a = admin(bootstrap)  # kept alive until the result is in
    a.create_topics([NewTopic(name, partitions, 3, config={"min.insync.replicas": "2"})])[name].result(30)
    wait(f"{name} led with full ISRs", lambda: all(
        p.leader >= 0 and len(p.isrs) == 3
        for p in admin(bootstrap).list_topics(name, timeout=10).topics[name].partitions.values()))


def internal_partition(bootstrap, topic, index):
    return admin(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions[index]


def live(cluster):
    return ",".join(n.bootstrap for n in cluster.nodes if n.running())


def committed_total(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    finally:
        c.close()
    return sum(max(tp.offset, 0) for tp in got)


def retrying(what, op, timeout=60):
    """`op()` until it stops raising the retriable errors a moving coordinator gives."""
    deadline = time.time() + timeout
    while True:
        try:
            return op()
        except KafkaException as e:
            assert time.time() < deadline, f"{what}: {e}"
            time.sleep(0.5)


def test_a_group_keeps_its_offsets_when_its_coordinator_is_killed(cluster):
    create_rf3(cluster.bootstrap, "events", 3)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(300):
        p.produce("events", key=str(i).encode(), value=f"e{i}".encode())
    assert p.flush(30) == 0

    conf = {"bootstrap.servers": cluster.bootstrap, "group.id": "survivor", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 10000, "heartbeat.interval.ms": 500}
    cons = Consumer(conf)
    cons.subscribe(["events"])
    first = consume(cons, 150)
    retrying("first commit", lambda: cons.commit(asynchronous=False))

    a = admin(cluster.bootstrap)  # kept alive until the result is in
    coordinator = a.describe_consumer_groups(["survivor"])["survivor"].result(30).coordinator.id
    offsets = admin(cluster.bootstrap).list_topics("__consumer_offsets", timeout=10).topics["__consumer_offsets"]
    assert all(len(q.replicas) == 3 for q in offsets.partitions.values()), "offsets.topic.replication.factor"

    killed = cluster.node(coordinator)
    killed.kill9()
    # Another replica of the group's partition leads it once the dead broker
    # is fenced; it loaded the commit the consumer was told about.
    assert wait("the committed offsets on the new coordinator",
                lambda: committed_total(live(cluster), "survivor", "events", 3) == 150, timeout=60)

    # The live member carries on with its assignment and commits to the new coordinator.
    rest = consume(cons, 150, timeout=60)
    assert sorted(first + rest) == sorted(f"e{i}" for i in range(300))
    retrying("commit after the kill", lambda: cons.commit(asynchronous=False))
    cons.close()
    assert committed_total(live(cluster), "survivor", "events", 3) == 300
    b = admin(live(cluster))
    moved = b.describe_consumer_groups(["survivor"])["survivor"].result(30).coordinator.id
    assert moved != coordinator

    # The killed broker comes back and catches up as a follower of the offsets.
    killed.restart()
    wait("the restarted broker back in every __consumer_offsets ISR", lambda: all(
        len(q.isrs) == 3 for q in admin(cluster.bootstrap).list_topics("__consumer_offsets", timeout=10)
        .topics["__consumer_offsets"].partitions.values()), timeout=60)
    assert committed_total(cluster.bootstrap, "survivor", "events", 3) == 300


def test_a_transaction_open_across_the_kill_of_its_coordinator_commits(cluster):
    create_rf3(cluster.bootstrap, "out", 3)
    txn_id = "survivor-txn"
    prod = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": txn_id,
                     "transaction.timeout.ms": 60000})
    prod.init_transactions(30)
    prod.begin_transaction()
    for i in range(10):
        prod.produce("out", key=str(i).encode(), value=f"one{i}".encode())
    prod.commit_transaction(30)

    # A second transaction is open, its records on the partitions' leaders,
    # when the broker coordinating it dies.
    prod.begin_transaction()
    for i in range(10):
        prod.produce("out", key=str(i).encode(), value=f"two{i}".encode())
    assert prod.flush(30) == 0
    state = internal_partition(cluster.bootstrap, "__transaction_state", state_partition(txn_id))
    assert len(state.replicas) == 3, "transaction.state.log.replication.factor"
    killed = cluster.node(state.leader)
    killed.kill9()

    for i in range(10, 20):
        prod.produce("out", key=str(i).encode(), value=f"two{i}".encode())
    prod.commit_transaction(90)
    after = internal_partition(live(cluster), "__transaction_state", state_partition(txn_id))
    assert after.leader not in (-1, killed.node_id), after

    prod.begin_transaction()
    for i in range(10):
        prod.produce("out", key=str(i).encode(), value=f"three{i}".encode())
    prod.commit_transaction(60)
    prod.begin_transaction()
    prod.produce("out", value=b"aborted")
    prod.abort_transaction(60)

    got = read_all(live(cluster), "out", 3, timeout=60)
    want = [f"one{i}" for i in range(10)] + [f"two{i}" for i in range(20)] + [f"three{i}" for i in range(10)]
    assert sorted(got) == sorted(want)

    # A new instance of the application fences the old one through the new coordinator.
    again = Producer({"bootstrap.servers": live(cluster), "transactional.id": txn_id})
    again.init_transactions(60)
    with pytest.raises(KafkaException):
        prod.begin_transaction()
        prod.produce("out", value=b"zombie")
        prod.commit_transaction(30)
    again.begin_transaction()
    again.produce("out", value=b"four")
    again.commit_transaction(60)
    got = read_all(live(cluster), "out", 3, timeout=60)
    assert sorted(got) == sorted(want + ["four"])


def test_the_internal_topics_wait_for_enough_brokers(tmp_path):
    """As in Kafka, `__consumer_offsets` is not created on fewer brokers than
    `offsets.topic.replication.factor`: FindCoordinator answers
    COORDINATOR_NOT_AVAILABLE (15) until the broker that makes it possible
    joins, and the group then works."""
    c = Cluster(str(tmp_path), sets=["offsets.topic.replication.factor=4",
                                     "transaction.state.log.replication.factor=4"]).start()
    try:
        for key_type in (0, 1):
            assert find_coordinator_v1(c.nodes[0].bootstrap, "early", key_type)[:2] == (15, -1)
        assert "__consumer_offsets" not in admin(c.bootstrap).list_topics(timeout=10).topics
        c.add_broker()
        error, node, _, _ = wait("a coordinator once four brokers are registered", lambda: (
            lambda r: r if r[0] == 0 else None)(find_coordinator_v1(c.nodes[0].bootstrap, "early")))
        assert node in (1, 2, 3, 4)
        offsets = admin(c.bootstrap).list_topics("__consumer_offsets", timeout=10).topics["__consumer_offsets"]
        assert all(len(q.replicas) == 4 for q in offsets.partitions.values())
    finally:
        c.stop()
