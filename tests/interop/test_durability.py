"""Durability: every record acknowledged with acks=all survives SIGKILL of
the broker and is found at its acknowledged offset after restart."""
from confluent_kafka import Producer

from test_confluent import consume_all, create
from yardstick import AGAINST_KAFKA


def test_acked_records_survive_sigkill(broker):
    create(broker, "dur", 3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    acked = {}

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for i in range(5000):
        p.produce("dur", key=str(i).encode(), value=f"durable-{i}".encode(), on_delivery=on_delivery)
        if i % 500 == 0:
            p.poll(0)
    p.flush(60)
    assert len(acked) == 5000
    broker.kill9()
    broker.restart()
    got = consume_all(broker, "dur", [0, 1, 2], 5000)
    assert {(m.partition(), m.offset()): m.value() for m in got} == acked
    assert AGAINST_KAFKA or "recovered log after unclean shutdown" in broker.read_log()  # Strom's own log line


def test_clean_restart_keeps_topics_and_data(broker):
    create(broker, "clean", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce("clean", partition=i % 2, value=str(i).encode())
    p.flush(30)
    broker.stop()
    broker.restart()
    got = consume_all(broker, "clean", [0, 1], 100)
    assert sorted(int(m.value()) for m in got) == list(range(100))
    assert AGAINST_KAFKA or "recovered log" not in broker.read_log()  # Strom's own log line
