"""`strom groups` against a running confluent-kafka consumer group: lag,
owners, reset-offsets (dry run and --execute), delete, and errors."""
import subprocess
import time

from confluent_kafka import Consumer, Producer

from conftest import STROM
from test_confluent import create


def strom(broker, *args, check=True):
    r = subprocess.run([STROM, "groups", "--bootstrap", broker.bootstrap, *args], capture_output=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


def rows(out):
    lines = out.decode().splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("GROUP"))
    return [l.split() for l in lines[head + 1:] if l.strip() and not l.startswith("Dry run") and not l.startswith("Offsets")]


def test_describe_shows_lag_of_a_running_group(make_broker):
    broker = make_broker(["group.initial.rebalance.delay.ms=300"])
    create(broker, "lagged", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce("lagged", value=str(i).encode(), partition=i % 2)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "laggers", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": "lag-client"})
    c.subscribe(["lagged"])
    got = 0
    while got < 30:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed(c.assignment(), timeout=10)}
    for _ in range(5):
        c.poll(0.1)  # keep the member alive and heartbeating
    out = strom(broker, "describe", "laggers").stdout
    table = {int(r[2]): r for r in rows(out)}
    assert set(table) == {0, 1}
    for part, r in table.items():
        current = committed.get(part, -1)
        assert r[4] == "50"
        if current >= 0:
            assert (int(r[3]), int(r[5])) == (current, 50 - current)
        assert r[8] == "lag-client" and r[6] != "-"
    assert b"Stable" in out
    listed = strom(broker, "list").stdout.decode()
    assert "laggers" in listed and "Stable" in listed
    # Resetting a group with live members is refused; after close it works.
    r = strom(broker, "reset-offsets", "laggers", "--topic", "lagged", "--to-earliest", "--execute", check=False)
    assert r.returncode != 0 and b"no active members" in r.stderr
    c.close()
    dry = strom(broker, "reset-offsets", "laggers", "--topic", "lagged", "--to-offset", "7")
    assert b"Dry run" in dry.stdout
    assert [r[3] for r in rows(dry.stdout)] == ["7", "7"]
    strom(broker, "reset-offsets", "laggers", "--topic", "lagged", "--to-earliest", "--execute")
    table = {int(r[2]): r for r in rows(strom(broker, "describe", "laggers").stdout)}
    assert [table[0][3], table[1][3]] == ["0", "0"]
    assert [table[0][5], table[1][5]] == ["50", "50"]
    strom(broker, "delete", "laggers")
    r = strom(broker, "describe", "laggers", check=False)
    assert r.returncode != 0 and b"does not exist" in r.stderr


def test_unreachable_broker_is_a_clear_error():
    r = subprocess.run([STROM, "groups", "--bootstrap", "127.0.0.1:1", "list"], capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"cannot connect to 127.0.0.1:1" in r.stderr
