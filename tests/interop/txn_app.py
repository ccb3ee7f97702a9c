"""A consume-transform-produce application with exactly-once semantics:
reads `input`, writes `<value>-out` to `output`, and commits its consumed
offsets inside the same transaction. Exits after `idle` seconds without input.

usage: txn_app.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID [IDLE_SECONDS]
"""
import sys
import time

from confluent_kafka import Consumer, Producer

bootstrap, src, dst, group, txn_id = sys.argv[1:6]
idle = float(sys.argv[6]) if len(sys.argv) > 6 else 5.0

consumer = Consumer({
    "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
    "enable.auto.commit": False, "isolation.level": "read_committed",
    "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
})
producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
producer.init_transactions(30)
consumer.subscribe([src])
last = time.time()
while time.time() - last < idle:
    msgs = consumer.consume(num_messages=50, timeout=0.5)
    msgs = [m for m in msgs if m.error() is None]
    if not msgs:
        continue
    last = time.time()
    producer.begin_transaction()
    for m in msgs:
        producer.produce(dst, key=m.key(), value=m.value() + b"-out")
    producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                         consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    print(f"committed {len(msgs)}", flush=True)
consumer.close()
