"""Several `strom server` processes as one cluster (issue: cluster, part 1):
a three-voter metadata quorum, partitions spread over the brokers, clients
bootstrapping from any of them, coordinators on different brokers,
transactions whose partitions live on several brokers, the controller
killed with SIGKILL, a broker fenced when it goes silent and after a
controlled shutdown, and a fourth broker joining.

Every node runs broker and controller (`process.roles=broker,controller`)
on loopback, with the short sessions of cluster.FAST."""
import json
import os
import subprocess
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster
from yardstick import AGAINST_KAFKA

pytestmark = pytest.mark.skipif(AGAINST_KAFKA, reason="starts Strom processes of its own")

NODE_DIR = os.path.join(os.path.dirname(__file__), "node")


@pytest.fixture
def cluster(tmp_path, request):
    c = Cluster(str(tmp_path)).start()
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.logs())


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def wait(what, cond, timeout=30, every=0.2):
    deadline = time.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def create(bootstrap, name, partitions):
    a = admin(bootstrap)  # kept alive until the result is in
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    wait(f"{name} to have leaders", lambda: all(
        p.leader >= 0 for p in admin(bootstrap).list_topics(name, timeout=10).topics[name].partitions.values()))


def leaders(bootstrap, topic):
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def produce(bootstrap, topic, values, **conf):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **conf})
    for i, v in enumerate(values):
        p.produce(topic, key=str(i).encode(), value=v.encode())
    assert p.flush(30) == 0


def read_all(bootstrap, topic, partitions, isolation="read_committed", timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-reader", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof, deadline = [], set(), time.time() + timeout
    try:
        while len(eof) < partitions:
            assert time.time() < deadline, f"read {len(out)} records, {len(eof)} partitions at their end"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            out.append(m.value().decode())
    finally:
        c.close()
    return out


def test_three_brokers_share_the_partitions_and_any_bootstrap_works(cluster):
    a, b, c = cluster.nodes
    md = subprocess.run(["kcat", "-b", a.bootstrap, "-L", "-J"], capture_output=True, text=True, timeout=30)
    assert md.returncode == 0, md.stderr
    listed = json.loads(md.stdout)
    assert sorted(x["id"] for x in listed["brokers"]) == [1, 2, 3]
    assert {x["name"] for x in listed["brokers"]} == {n.bootstrap for n in cluster.nodes}

    create(b.bootstrap, "spread", 6)
    placed = leaders(c.bootstrap, "spread")
    assert sorted(set(placed.values())) == [1, 2, 3], placed
    # Each broker says the same.
    assert leaders(a.bootstrap, "spread") == placed == leaders(b.bootstrap, "spread")

    # confluent-kafka (librdkafka) through each bootstrap broker in turn.
    for n in cluster.nodes:
        produce(n.bootstrap, "spread", [f"confluent-{n.node_id}-{i}" for i in range(200)])
    # kafka-python.
    from kafka import KafkaConsumer, KafkaProducer
    kp = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all")
    for i in range(200):
        kp.send("spread", key=str(i).encode(), value=f"kafka-python-{i}".encode())
    kp.flush(30)
    kp.close()
    # kafkajs (the topic exists: its createTopics is a no-op).
    js = subprocess.run(["node", "produce.js", b.bootstrap, "spread", "300"], cwd=NODE_DIR,
                        capture_output=True, timeout=120)
    assert js.returncode == 0, js.stderr.decode()
    got = Counter(v.rsplit("-", 1)[0] for v in read_all(a.bootstrap, "spread", 6))
    assert got == {"confluent-1": 200, "confluent-2": 200, "confluent-3": 200, "kafka-python": 200,
                   "kafkajs": 300}

    # Consumer groups of kafka-python and kafkajs, each bootstrapping elsewhere.
    kc = KafkaConsumer("spread", bootstrap_servers=b.bootstrap, group_id="kp-group",
                       auto_offset_reset="earliest", consumer_timeout_ms=15000)
    seen = sum(1 for _ in kc)
    kc.close()
    assert seen == 1100
    js = subprocess.run(["node", "consume.js", c.bootstrap, "spread", "js-group", "1100"], cwd=NODE_DIR,
                        capture_output=True, timeout=120)
    assert js.returncode == 0, js.stderr.decode()
    assert len(json.loads(js.stdout)["values"]) == 1100

    # A request for a partition another broker leads is refused with
    # NOT_LEADER_OR_FOLLOWER; the clients above went to the leaders.
    from kafka_wire import RawConnection, batch, record
    other = next(n for n in cluster.nodes if n.node_id != placed[0])
    conn = RawConnection(other.bootstrap)
    try:
        error, *_ = conn.produce("spread", 0, batch(record(0, b"k", b"misdirected"), 1, 0, int(time.time() * 1000)))
    finally:
        conn.close()
    assert error == 6  # NOT_LEADER_OR_FOLLOWER


def test_groups_and_transactions_with_coordinators_on_different_brokers(cluster):
    a, b, c = cluster.nodes
    create(a.bootstrap, "in", 6)
    create(a.bootstrap, "out", 6)
    produce(b.bootstrap, "in", [f"m{i}" for i in range(300)])

    # Groups spread over the brokers' __consumer_offsets partitions.
    coordinators = {}
    for g in [f"group-{i}" for i in range(5)]:
        cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": g, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
        cons.subscribe(["in"])
        n = 0
        deadline = time.time() + 30
        while n < 300:
            assert time.time() < deadline, f"{g} consumed {n}"
            m = cons.poll(0.5)
            if m is not None and not m.error():
                n += 1
        cons.commit(asynchronous=False)
        committed = cons.committed([TopicPartition("in", p) for p in range(6)], timeout=10)
        assert sum(tp.offset for tp in committed) == 300
        cons.close()
        adm = admin(a.bootstrap)
        desc = adm.describe_consumer_groups([g])[g].result(10)
        coordinators[g] = desc.coordinator.id
    assert len(set(coordinators.values())) >= 2, coordinators

    # Consume-transform-produce: the transaction's partitions and its group's
    # offsets partition sit on several brokers; markers cross brokers.
    group = "ctp"
    cons = Consumer({"bootstrap.servers": a.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "isolation.level": "read_committed"})
    cons.subscribe(["in"])
    prod = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "ctp-app"})
    prod.init_transactions(30)
    done, aborted_once = 0, False
    deadline = time.time() + 60
    while done < 300:
        assert time.time() < deadline, f"transformed {done}"
        batch = cons.consume(50, 1.0)
        batch = [m for m in batch if not m.error()]
        if not batch:
            continue
        prod.begin_transaction()
        for m in batch:
            prod.produce("out", key=m.key(), value=m.value().upper())
        if not aborted_once:
            # The first batch is aborted and read again from the committed offsets.
            prod.abort_transaction(30)
            aborted_once = True
            for tp in cons.assignment():
                committed = cons.committed([tp], timeout=10)[0]
                cons.seek(TopicPartition(tp.topic, tp.partition, max(committed.offset, 0)))
            continue
        prod.send_offsets_to_transaction(cons.position(cons.assignment()), cons.consumer_group_metadata(), 30)
        prod.commit_transaction(30)
        done += len(batch)
    cons.close()
    assert sorted(read_all(c.bootstrap, "out", 6)) == sorted(f"M{i}" for i in range(300))
    check = Consumer({"bootstrap.servers": c.bootstrap, "group.id": group})
    committed = check.committed([TopicPartition("in", p) for p in range(6)], timeout=10)
    check.close()
    assert sum(tp.offset for tp in committed) == 300


def controller_of(bootstrap):
    """The controller id `bootstrap` (one broker) reports in DescribeCluster."""
    from admin_wire import describe_cluster
    return describe_cluster(bootstrap.split(",")[0])[3]


def test_sigkill_of_the_controller_another_voter_takes_over_and_it_catches_up(cluster):
    create(cluster.nodes[0].bootstrap, "before", 3)
    old = controller_of(cluster.bootstrap)
    killed = cluster.node(old)
    killed.kill9()
    t0 = time.time()
    rest = [n for n in cluster.nodes if n.running()]
    new = wait("a new controller", lambda: (lambda c: c if c != old else None)(controller_of(rest[0].bootstrap)))
    assert new in {n.node_id for n in rest}
    # Topic creation keeps working (its partitions go to the live brokers:
    # the killed one is fenced once its session ends).
    wait("the killed broker to be fenced", lambda: old not in {
        b.id for b in admin(rest[0].bootstrap).list_topics(timeout=10).brokers.values()})
    create(rest[1].bootstrap, "after", 4)
    took = time.time() - t0
    assert took < 20, f"took {took:.1f} s"
    assert old not in set(leaders(rest[0].bootstrap, "after").values())
    produce(rest[0].bootstrap, "after", [f"a{i}" for i in range(100)])

    # Back from its log: it knows the topic created while it was dead, and
    # leads its partitions of "before" again with their data.
    killed.restart()
    wait("the restarted broker to be listed again", lambda: old in {
        b.id for b in admin(killed.bootstrap).list_topics(timeout=10).brokers.values()})
    assert "after" in admin(killed.bootstrap).list_topics(timeout=10).topics
    assert sorted(read_all(killed.bootstrap, "after", 4)) == sorted(f"a{i}" for i in range(100))
    wait("every partition of 'before' led", lambda: all(
        v >= 0 for v in leaders(killed.bootstrap, "before").values()))


def test_a_silent_broker_is_fenced_and_a_stopping_one_at_once(cluster):
    a, b, c = cluster.nodes
    create(a.bootstrap, "fence", 6)
    produce(a.bootstrap, "fence", [f"f{i}" for i in range(60)])
    placed = leaders(a.bootstrap, "fence")
    # Controlled shutdown: SIGTERM, and the controller hears before the session ends.
    victim = next(n for n in cluster.nodes if n.node_id != controller_of(a.bootstrap))
    survivor = next(n for n in cluster.nodes if n is not victim)
    victim.stop()
    # Fenced before it exited: offline at once, not a 2 s session later.
    offline = wait("its partitions to go offline", lambda: [
        p for p, l in leaders(survivor.bootstrap, "fence").items() if l < 0], timeout=1.5, every=0.05)
    assert sorted(offline) == sorted(p for p, l in placed.items() if l == victim.node_id)
    # Back: unfenced, leads its partitions again, nothing lost.
    victim.restart()
    wait("its partitions to be led again", lambda: leaders(survivor.bootstrap, "fence") == placed)
    assert sorted(read_all(survivor.bootstrap, "fence", 6)) == sorted(f"f{i}" for i in range(60))


def test_a_fourth_broker_joins_and_new_topics_use_it(cluster):
    d = cluster.add_broker()
    wait("four brokers", lambda: len(admin(d.bootstrap).list_topics(timeout=10).brokers) == 4)
    create(d.bootstrap, "wide", 8)
    assert sorted(set(leaders(cluster.bootstrap, "wide").values())) == [1, 2, 3, 4]
    produce(d.bootstrap, "wide", [f"w{i}" for i in range(80)])
    assert sorted(read_all(cluster.nodes[0].bootstrap, "wide", 8)) == sorted(f"w{i}" for i in range(80))


def move_with_kafka_python(bootstrap, moves, tmp_path):
    """kafka-python 3.x's admin client: AlterPartitionReassignments, then
    ListPartitionReassignments until nothing is in progress."""
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KpTp
    ka = KafkaAdminClient(bootstrap_servers=bootstrap)
    tps = {KpTp(t, p): r for (t, p), r in moves.items()}
    assert ka.alter_partition_reassignments(tps) == {tp: None for tp in tps}
    wait("the moves to complete", lambda: ka.list_partition_reassignments() == {}, timeout=60)
    ka.close()


def reassignment_file(moves, tmp_path):
    f = tmp_path / "plan.json"
    f.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r} for (t, p), r in sorted(moves.items())]}))
    return str(f)


def verified(out, moves):
    done = [f"Reassignment of partition {t}-{p} is completed." for (t, p) in moves]
    return all(line in out for line in done)


def move_with_strom_cli(bootstrap, moves, tmp_path):
    """`strom topics reassign --execute`, then `--verify` until completed."""
    from conftest import STROM
    plan = reassignment_file(moves, tmp_path)

    def run(*args):
        r = subprocess.run([STROM, "topics", "reassign", "--bootstrap-server", bootstrap, *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout
    out = run("--reassignment-json-file", plan, "--execute")
    assert "Successfully started partition reassignments for" in out, out
    wait("--verify to say completed", lambda: verified(run("--reassignment-json-file", plan, "--verify"), moves),
         timeout=60)
    assert run("--list").strip() == "No partition reassignments found."


def move_with_kafka_tool(bootstrap, moves, tmp_path):
    """Apache Kafka 4.4's kafka-reassign-partitions.sh, --execute then --verify."""
    kafka = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "kafka")
    subprocess.run([kafka, "install"], check=True)
    plan = reassignment_file(moves, tmp_path)
    env = {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}

    def run(*args):
        r = subprocess.run([kafka, "tool", "kafka-reassign-partitions", "--bootstrap-server", bootstrap,
                            "--reassignment-json-file", plan, *args],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr + r.stdout
        return r.stdout
    out = run("--execute")
    assert "Successfully started partition reassignments for" in out, out
    wait("--verify to say completed", lambda: verified(run("--verify"), moves), timeout=90, every=1)


MOVERS = {"kafka_python": move_with_kafka_python, "strom_cli": move_with_strom_cli,
          "kafka_tool": move_with_kafka_tool}


@pytest.mark.parametrize("mover", list(MOVERS))
def test_partitions_move_to_a_fourth_broker_under_load_with_no_record_lost(cluster, mover, tmp_path):
    """A reassignment (kafka-python's admin, `strom topics reassign`, or
    Kafka's kafka-reassign-partitions) moves every partition of a topic onto
    a new broker while a producer keeps writing: the new replica copies the
    log, joins the ISR, takes over; the old one deletes its copy. Every
    acknowledged record is there once, in order."""
    import threading
    if mover == "kafka_python":
        from kafka import KafkaAdminClient
        if not hasattr(KafkaAdminClient, "alter_partition_reassignments"):
            pytest.skip("this kafka-python has no reassignment calls (3.x has; scripts/test runs it there)")
    create(cluster.bootstrap, "moving", 3)
    produce(cluster.bootstrap, "moving", [f"m{i}" for i in range(3000)])
    d = cluster.add_broker()
    wait("four brokers", lambda: len(admin(d.bootstrap).list_topics(timeout=10).brokers) == 4)
    acked, fatal, stop = [], [], threading.Event()

    def keep_producing():
        p = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 5, "error_cb": lambda e: e.fatal() and fatal.append(str(e))})
        i = 0
        while not stop.is_set() and not fatal:
            v = f"l{i}"
            p.produce("moving", key=v.encode(), value=v.encode(),
                      on_delivery=lambda err, m: err is None and acked.append(m.value().decode()))
            p.poll(0)
            i += 1
            time.sleep(0.002)
        p.flush(30)

    t = threading.Thread(target=keep_producing)
    t.start()
    try:
        time.sleep(1)
        MOVERS[mover](d.bootstrap, {("moving", i): [d.node_id] for i in range(3)}, tmp_path)
        wait("the new broker to lead every partition",
             lambda: set(leaders(cluster.bootstrap, "moving").values()) == {d.node_id}, timeout=30)
        time.sleep(1)
    finally:
        stop.set()
        t.join(60)
    assert not fatal, fatal
    md = admin(d.bootstrap).list_topics("moving", timeout=10).topics["moving"].partitions
    assert all(p.replicas == [d.node_id] and p.isrs == [d.node_id] for p in md.values()), md
    got = read_all(d.bootstrap, "moving", 3)
    assert sorted(v for v in got if v.startswith("m")) == sorted(f"m{i}" for i in range(3000))
    late = [v for v in got if v.startswith("l")]
    assert len(late) == len(set(late)), "a record written twice"
    assert set(acked) <= set(late), f"{len(set(acked) - set(late))} acknowledged records lost"
    assert len(acked) > 100


def consume(cons, n, timeout=30):
    got, deadline = [], time.time() + timeout
    while len(got) < n:
        assert time.time() < deadline, f"consumed {len(got)} of {n}"
        m = cons.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    return got


def test_coordinators_follow_their_partitions_to_a_new_broker(cluster, tmp_path):
    """Every __consumer_offsets and __transaction_state partition moves its
    leadership to a new broker: its coordinators load the groups and transactions from the
    copied logs (the old ones drop theirs). Committed offsets are there, a
    live consumer commits on, and a transaction open across the move
    commits."""
    create(cluster.bootstrap, "in", 3)
    create(cluster.bootstrap, "out", 3)
    produce(cluster.bootstrap, "in", [f"a{i}" for i in range(100)])
    conf = {"bootstrap.servers": cluster.bootstrap, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    done = Consumer({**conf, "group.id": "finished"})
    done.subscribe(["in"])
    consume(done, 100)
    done.commit(asynchronous=False)
    done.close()
    live = Consumer({**conf, "group.id": "live"})
    live.subscribe(["in"])
    consume(live, 100)
    live.commit(asynchronous=False)
    prod = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": "across-the-move"})
    prod.init_transactions(30)
    prod.begin_transaction()
    for i in range(10):
        prod.produce("out", value=f"t{i}".encode())
    prod.flush(30)

    d = cluster.add_broker()
    wait("four brokers", lambda: len(admin(d.bootstrap).list_topics(timeout=10).brokers) == 4)
    # Each internal partition keeps three replicas (min.insync.replicas of
    # __transaction_state is 2): the new broker first, and the two that do
    # not lead it now, so leadership moves to the new broker.
    moves = {}
    for t in ["__consumer_offsets", "__transaction_state"]:
        for p, leader in leaders(cluster.bootstrap, t).items():
            moves[(t, p)] = [d.node_id] + [n.node_id for n in cluster.nodes[:3] if n.node_id != leader]
    move_with_strom_cli(cluster.bootstrap, moves, tmp_path)
    for t in ["__consumer_offsets", "__transaction_state"]:
        wait(f"the new broker to lead {t}", lambda: set(leaders(cluster.bootstrap, t).values()) == {d.node_id})

    for i in range(10, 20):
        prod.produce("out", value=f"t{i}".encode())
    prod.commit_transaction(30)
    assert sorted(read_all(cluster.bootstrap, "out", 3)) == sorted(f"t{i}" for i in range(20))

    check = Consumer({**conf, "group.id": "finished"})
    committed = check.committed([TopicPartition("in", p) for p in range(3)], timeout=30)
    check.close()
    assert sum(tp.offset for tp in committed) == 100, committed

    produce(cluster.bootstrap, "in", [f"b{i}" for i in range(50)])
    assert sorted(consume(live, 50)) == sorted(f"b{i}" for i in range(50))
    live.commit(asynchronous=False)
    committed = live.committed([TopicPartition("in", p) for p in range(3)], timeout=30)
    live.close()
    assert sum(tp.offset for tp in committed) == 150, committed
    a = admin(d.bootstrap)  # kept alive until the result is in
    desc = a.describe_consumer_groups(["finished"])["finished"].result(30)
    assert desc.coordinator.id == d.node_id


def test_strom_cluster_describe_shows_brokers_controller_and_quorum(cluster):
    from conftest import STROM
    a, b, c = cluster.nodes
    out = subprocess.run([STROM, "cluster", "describe", "--bootstrap", b.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    controller = controller_of(a.bootstrap)
    assert f"Controller: {controller}" in text
    for n in cluster.nodes:
        assert f"{n.bootstrap}" in text
    roles = {line.split()[0]: line.split()[1] for line in text.splitlines()
             if line.split()[:1] in (["1"], ["2"], ["3"]) and len(line.split()) > 2
             and line.split()[1] in ("leader", "follower", "observer")}
    assert roles == {str(controller): "leader", **{str(n.node_id): "follower" for n in cluster.nodes
                                                  if n.node_id != controller}}, text
    # A stopped broker is listed as fenced (DescribeCluster v2).
    c.stop()
    out = wait("the stopped broker shown fenced", lambda: (lambda r: r if "fenced" in r.stdout else None)(
        subprocess.run([STROM, "cluster", "describe", "--bootstrap", a.bootstrap],
                       capture_output=True, text=True, timeout=30)))
    line = next(l for l in out.stdout.splitlines() if l.startswith("3 "))
    assert line.split()[-1] == "fenced", out.stdout


def consecutive_free_ports(n):
    import socket
    for base in range(20000, 60000, 97):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def test_strom_dev_cluster_starts_three_nodes_and_stops_on_ctrl_c(tmp_path):
    import signal
    from conftest import STROM
    port = consecutive_free_ports(6)  # three client ports, then three quorum ports
    proc = subprocess.Popen([STROM, "dev", "cluster", "--brokers", "3", "--dir", str(tmp_path / "dev"),
                             "--port", str(port), "--controller-port", str(port + 3)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        bootstrap = f"127.0.0.1:{port + 1}"
        wait("three brokers", lambda: len(admin(bootstrap).list_topics(timeout=5).brokers) == 3, timeout=60)
        create(bootstrap, "dev", 3)
        produce(f"127.0.0.1:{port}", "dev", [f"d{i}" for i in range(30)])
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    for i in (1, 2, 3):
        assert "shutdown complete" in (tmp_path / "dev" / f"node-{i}.log").read_text()
