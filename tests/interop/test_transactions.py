"""Exactly-once with confluent-kafka (librdkafka): idempotent produce through
cut connections and a broker SIGKILL, transactions seen by read_committed and
read_uncommitted consumers, consume-transform-produce surviving a SIGKILL of
the application, fencing of zombie producers, and transaction state that
survives a broker SIGKILL."""
import os
import random
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from proxy import CuttingProxy
from conftest import STROM
from test_confluent import create

HERE = os.path.dirname(__file__)
FAST_TXN = ["transaction.abort.timed.out.transaction.cleanup.interval.ms=500", "group.initial.rebalance.delay.ms=0"]


def read_values(bootstrap, topic, partitions, isolation, quiet=2.0, timeout=60):
    """Every value of the partitions from the beginning, in order per partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = {p: [] for p in partitions}
    deadline = time.time() + timeout
    last = time.time()
    while time.time() - last < quiet and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error() is not None:
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            continue
        out[m.partition()].append(m.value())
        last = time.time()
    c.close()
    return out


def test_idempotent_producer_through_cut_connections_and_broker_kill(make_broker):
    proxy = CuttingProxy()
    broker = make_broker(FAST_TXN, args=["--advertised-listener", proxy.addr])
    proxy.start(broker.port)
    create(broker, "idem", 3)
    # metadata.recovery.strategy=none: with one broker, librdkafka would otherwise
    # re-bootstrap after every cut and spend the run reconnecting.
    p = Producer({"bootstrap.servers": proxy.addr, "enable.idempotence": True, "linger.ms": 2,
                  "batch.num.messages": 500, "retry.backoff.ms": 20, "message.timeout.ms": 120000,
                  "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
                  "metadata.recovery.strategy": "none"})
    errors = []
    stop = threading.Event()
    rng = random.Random(7)

    def cutter():  # random gaps, so the cuts never fall into step with the client's timers
        while not stop.wait(rng.uniform(0.3, 0.9)):
            proxy.cut()

    t = threading.Thread(target=cutter, daemon=True)
    t.start()
    n = 100_000
    for i in range(n):
        if i == n // 2:
            broker.kill9()  # acknowledged batches and producer state must survive
            broker.restart()
        while True:
            try:
                p.produce("idem", value=str(i).encode(), partition=i % 3,
                          on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i % 1000 == 999:
            time.sleep(0.08)  # spread the stream over ~8 s so the cuts land mid-stream
    assert p.flush(120) == 0
    stop.set()
    t.join()
    assert errors == []
    assert proxy.cuts >= 5, "the connections were cut mid-stream"
    got = read_values(proxy.addr, "idem", [0, 1, 2], "read_uncommitted")
    for part in range(3):
        want = [str(i).encode() for i in range(part, n, 3)]
        assert len(got[part]) == len(want), f"partition {part}: {len(got[part])} records, want {len(want)}"
        assert got[part] == want, f"partition {part}: duplicates, gaps or reordering"
    proxy.close()


def test_committed_visible_aborted_hidden(make_broker):
    broker = make_broker(FAST_TXN)
    create(broker, "txv", 3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "txv-app"})
    p.init_transactions(30)
    for label, commit in (("c1", True), ("a1", False), ("c2", True), ("a2", False)):
        p.begin_transaction()
        for i in range(30):
            p.produce("txv", value=f"{label}-{i}".encode(), partition=i % 3)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    # An open transaction holds read_committed consumers back at its first offset.
    p.begin_transaction()
    for i in range(3):
        p.produce("txv", value=f"open-{i}".encode(), partition=i)
    p.flush(30)
    rc = read_values(broker.bootstrap, "txv", [0, 1, 2], "read_committed")
    ru = read_values(broker.bootstrap, "txv", [0, 1, 2], "read_uncommitted")
    rc_all = sorted(v.decode() for vs in rc.values() for v in vs)
    ru_all = sorted(v.decode() for vs in ru.values() for v in vs)
    assert rc_all == sorted([f"c1-{i}" for i in range(30)] + [f"c2-{i}" for i in range(30)])
    assert len(ru_all) == 4 * 30 + 3
    assert any(v.startswith("a1-") for v in ru_all) and any(v.startswith("open-") for v in ru_all)
    p.commit_transaction(30)
    rc = read_values(broker.bootstrap, "txv", [0, 1, 2], "read_committed")
    assert sum(len(v) for v in rc.values()) == 63
    # Within each partition, committed records keep their order.
    for part, vs in rc.items():
        c1 = [v for v in vs if v.startswith(b"c1-")]
        assert c1 == [f"c1-{i}".encode() for i in range(part, 30, 3)]


def test_consume_transform_produce_survives_sigkill_of_the_app(make_broker):
    broker = make_broker(FAST_TXN)
    create(broker, "ctp-in", 3)
    create(broker, "ctp-out", 3)
    n = 6000
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce("ctp-in", key=str(i).encode(), value=str(i).encode())
    assert p.flush(30) == 0
    app = [sys.executable, os.path.join(HERE, "txn_app.py"), broker.bootstrap, "ctp-in", "ctp-out",
           "ctp-group", "ctp-app", "10"]  # idle limit > session timeout: the killed member must time out first
    first = subprocess.Popen(app, stdout=subprocess.PIPE, text=True)
    commits = 0
    while commits < 10:  # let it commit a few transactions, then kill it mid-stream
        line = first.stdout.readline()
        assert line, "the application exited early"
        commits += line.startswith("committed")
    first.kill()
    first.wait()
    second = subprocess.run(app, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    out = read_values(broker.bootstrap, "ctp-out", [0, 1, 2], "read_committed")
    values = sorted(int(v.decode().removesuffix("-out")) for vs in out.values() for v in vs)
    assert values == list(range(n)), "every input record is in the output exactly once"


def test_second_producer_with_same_transactional_id_fences_the_first(make_broker):
    broker = make_broker(FAST_TXN)
    create(broker, "fence", 1)
    zombie = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "fence-app"})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce("fence", value=b"zombie")
    zombie.flush(30)
    fresh = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "fence-app"})
    fresh.init_transactions(30)  # aborts the zombie's open transaction
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(30)
    err = e.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), err
    fresh.begin_transaction()
    fresh.produce("fence", value=b"fresh")
    fresh.commit_transaction(30)
    rc = read_values(broker.bootstrap, "fence", [0], "read_committed")
    assert rc[0] == [b"fresh"]


def test_transactions_survive_broker_sigkill(make_broker):
    broker = make_broker(FAST_TXN)
    create(broker, "txk", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "txk-app",
                  "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(20):
        p.produce("txk", value=f"committed-{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(20):
        p.produce("txk", value=f"aborted-{i}".encode(), partition=i % 2)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(20):
        p.produce("txk", value=f"open-{i}".encode(), partition=i % 2)
    p.flush(30)
    broker.kill9()
    broker.restart()
    # The open transaction is still open after the restart: read_committed stops before it.
    rc = read_values(broker.bootstrap, "txk", [0, 1], "read_committed")
    assert sorted(v.decode() for vs in rc.values() for v in vs) == sorted(f"committed-{i}" for i in range(20))
    p.commit_transaction(60)
    rc = read_values(broker.bootstrap, "txk", [0, 1], "read_committed")
    got = sorted(v.decode() for vs in rc.values() for v in vs)
    assert got == sorted([f"committed-{i}" for i in range(20)] + [f"open-{i}" for i in range(20)])
    # A second restart (clean this time) keeps the aborted transaction hidden.
    broker.stop()
    broker.restart()
    rc = read_values(broker.bootstrap, "txk", [0, 1], "read_committed")
    assert sorted(v.decode() for vs in rc.values() for v in vs) == got


def test_timed_out_transaction_is_aborted(make_broker):
    broker = make_broker(FAST_TXN)
    create(broker, "txt", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "txt-app",
                  "transaction.timeout.ms": 1500})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("txt", value=b"never")
    p.flush(30)
    time.sleep(3)  # the coordinator aborts it and bumps the epoch
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    rc = read_values(broker.bootstrap, "txt", [0], "read_committed")
    ru = read_values(broker.bootstrap, "txt", [0], "read_uncommitted")
    assert rc[0] == [] and ru[0] == [b"never"]


def strom_txn(broker, *args):
    r = subprocess.run([STROM, "transactions", "--bootstrap", broker.bootstrap, *args], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_cli_lists_and_describes_transactions_and_producers(make_broker):
    broker = make_broker(FAST_TXN)
    create(broker, "cli-tx", 2)
    done = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "cli-done"})
    done.init_transactions(30)
    done.begin_transaction()
    done.produce("cli-tx", value=b"x", partition=0)
    done.commit_transaction(30)
    open_ = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "cli-open"})
    open_.init_transactions(30)
    open_.begin_transaction()
    open_.produce("cli-tx", value=b"y", partition=1)
    open_.flush(30)

    rc, out, err = strom_txn(broker, "list")
    assert rc == 0, err
    lines = {l.split()[0]: l.split() for l in out.splitlines()[1:]}
    assert lines["cli-done"][2] == "CompleteCommit" and lines["cli-open"][2] == "Ongoing"
    rc, out, _ = strom_txn(broker, "list", "--state", "Ongoing")
    assert [l.split()[0] for l in out.splitlines()[1:]] == ["cli-open"]

    rc, out, err = strom_txn(broker, "describe", "cli-open")
    assert rc == 0, err
    row = out.splitlines()[1].split()
    assert row[0] == "cli-open" and row[3] == "Ongoing" and row[6] == "cli-tx-1"
    open_pid = row[1]

    rc, out, err = strom_txn(broker, "describe-producers", "--topic", "cli-tx", "--partition", "1")
    assert rc == 0, err
    row = out.splitlines()[1].split()
    assert row[0] == "1" and row[1] == open_pid and row[5] == "0", out  # its open transaction starts at offset 0

    rc, _, err = strom_txn(broker, "describe", "no-such-id")
    assert rc != 0 and "no-such-id" in err
    open_.abort_transaction(30)
