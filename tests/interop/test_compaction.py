"""Log compaction (issue 16) as users see it through real clients:
confluent-kafka (librdkafka) and kafka-python produce to compacted topics,
the broker's cleaner threads compact them, and consumers from the
beginning read one record per key — the latest, at its original offset.

Segments are small and the cleaner's backoff short so that cleans happen
within seconds; `strom cleaner --json` (read from the data directory while
the broker runs) tells when a clean has happened."""
import json
import os
import random
import re
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from kafka import KafkaProducer

import kafka_wire as wire
from conftest import STROM

FAST = ["log.cleaner.backoff.ms=100"]
# Small segments, everything cleanable at once, rolled on time so that a
# last record closes the segment holding the rest.
COMPACT = {
    "cleanup.policy": "compact",
    "segment.bytes": "16384",
    "min.cleanable.dirty.ratio": "0.01",
    "segment.ms": "300",
}


def create(broker, topic, config, partitions=1):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1, config=config)]).values():
        f.result(30)


def cleaner_status(broker, topic):
    """`strom cleaner --json` for `topic`'s partitions, by partition."""
    out = subprocess.run([STROM, "cleaner", "--data-dir", broker.data_dir, "--topic", topic, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return {s["partition"]: s for s in map(json.loads, out.splitlines())}


def wait_cleaned(broker, topic, past_offset, partition=0, timeout=60):
    """Waits until a clean of `topic` has reached `past_offset` (its first
    dirty offset is beyond it); returns the status."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = cleaner_status(broker, topic).get(partition)
        if s and s["first_dirty_offset"] > past_offset:
            return s
        time.sleep(0.1)
    raise AssertionError(f"{topic} not cleaned past {past_offset}: {cleaner_status(broker, topic)}")


def roll(producer, topic, key=b"roll"):
    """Sends one record after segment.ms has passed so the segment before
    it is closed (the active segment is never cleaned); returns its offset."""
    time.sleep(0.4)
    got = []
    producer.produce(topic, key=key, value=b"r", partition=0,
                     on_delivery=lambda e, m: got.append((e, m.offset())))
    producer.flush(30)
    assert got[0][0] is None
    return got[0][1]


def produce_keyed(producer, topic, items):
    """Produces (key, value) pairs; returns key -> (offset, value) of each key's last write."""
    last, errors = {}, []

    def done(err, msg):
        if err is not None:
            errors.append(err)
        else:
            last[msg.key()] = max(last.get(msg.key(), (-1, None)), (msg.offset(), msg.value()))

    for k, v in items:
        producer.produce(topic, key=k, value=v, partition=0, on_delivery=done)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    return last


def read_all(broker, topic):
    return [(o, k, v) for o, k, v, _ in wire.confluent_read_to_end(broker.bootstrap, topic)]


def test_latest_value_per_key_at_its_offset_confluent_and_kafka_python(make_broker):
    broker = make_broker(FAST)
    create(broker, "meters", COMPACT)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    items = [(b"house-%03d" % (i % 100), b"load-%05d" % i) for i in range(10_000)]
    random.Random(7).shuffle(items)
    last = produce_keyed(p, "meters", items)
    r = roll(p, "meters")
    status = wait_cleaned(broker, "meters", r - 1)
    assert status["bytes_reclaimed"] > 0 and status["cleans"] >= 1

    want = sorted([(o, k, v) for k, (o, v) in last.items()] + [(r, b"roll", b"r")])
    assert read_all(broker, "meters") == want
    kp = [(o, k, v) for o, k, v, _ in wire.kafka_python_read(broker.bootstrap, "meters", len(want))]
    assert kp == want
    # Records written afterwards still land after the cleaned ones.
    more = produce_keyed(p, "meters", [(b"house-000", b"new")])
    assert more[b"house-000"][0] == r + 1


def test_kafka_python_producer_and_compressed_batches(make_broker):
    broker = make_broker(FAST)
    for codec in ("gzip", "zstd"):
        create(broker, f"c-{codec}", COMPACT)
        p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20})
        last = produce_keyed(p, f"c-{codec}", [(b"k%02d" % (i % 30), b"v%05d" % i * 8) for i in range(3000)])
        r = roll(p, f"c-{codec}")
        wait_cleaned(broker, f"c-{codec}", r - 1)
        want = sorted([(o, k, v) for k, (o, v) in last.items()] + [(r, b"roll", b"r")])
        assert read_all(broker, f"c-{codec}") == want

    # kafka-python as the producer, lz4 batches.
    create(broker, "c-kp", COMPACT)
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=10)
    futures = [kp.send("c-kp", key=b"k%d" % (i % 7), value=b"v%d" % i, partition=0) for i in range(700)]
    kp.flush()
    offsets = [f.get(10).offset for f in futures]
    time.sleep(0.4)
    r = kp.send("c-kp", key=b"roll", value=b"r", partition=0).get(10).offset
    kp.close()
    wait_cleaned(broker, "c-kp", r - 1)
    want = sorted([(offsets[i], b"k%d" % (i % 7), b"v%d" % i) for i in range(693, 700)] + [(r, b"roll", b"r")])
    assert read_all(broker, "c-kp") == want


def test_tombstones_stay_for_delete_retention_then_go(make_broker):
    broker = make_broker(FAST)
    create(broker, "t", {**COMPACT, "delete.retention.ms": "1500"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    last = produce_keyed(p, "t", [(b"a", b"1"), (b"b", b"1"), (b"a", None), (b"c", b"1")])
    r = roll(p, "t")
    wait_cleaned(broker, "t", r - 1)
    # First clean: the tombstone is kept (consumers that were behind must see the delete).
    assert read_all(broker, "t") == [(1, b"b", b"1"), (2, b"a", None), (3, b"c", b"1"), (r, b"roll", b"r")]
    assert last[b"a"] == (2, None)
    # After delete.retention.ms, the next clean removes it.
    time.sleep(1.6)
    r2 = roll(p, "t", key=b"roll-2")
    wait_cleaned(broker, "t", r2 - 1)
    assert read_all(broker, "t") == [(1, b"b", b"1"), (3, b"c", b"1"), (r, b"roll", b"r"), (r2, b"roll-2", b"r")]


def test_keyless_records_are_refused_with_invalid_record(broker):
    create(broker, "keyed", {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    errs = []
    p.produce("keyed", value=b"no key", partition=0, on_delivery=lambda e, m: errs.append(e))
    p.flush(30)
    assert errs[0] is not None and errs[0].code() == KafkaError.INVALID_RECORD, errs
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    with pytest.raises(Exception) as e:
        kp.send("keyed", value=b"no key", partition=0).get(10)
    assert "InvalidRecord" in type(e.value).__name__ or "87" in str(e.value), e.value
    kp.close()
    assert read_all(broker, "keyed") == []


def test_transactions_aborted_data_removed_committed_kept(make_broker):
    broker = make_broker(FAST)
    create(broker, "tx", COMPACT)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "compaction-test"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce("tx", key=b"k%d" % i, value=b"committed", partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce("tx", key=b"k%d" % i, value=b"aborted", partition=0)
    p.flush(30)  # sent and stored: abort_transaction would purge unsent records
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce("tx", key=b"k0", value=b"committed-again", partition=0)
    p.commit_transaction(30)
    time.sleep(0.4)
    p.begin_transaction()
    rolled = []
    p.produce("tx", key=b"roll", value=b"r", partition=0, on_delivery=lambda e, m: rolled.append(m.offset()))
    p.commit_transaction(30)
    assert rolled == [24]  # 10 committed, marker, 10 aborted, marker, 1 committed, marker
    wait_cleaned(broker, "tx", 23)

    def values(isolation):
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "tx-read", "enable.auto.commit": False,
                      "enable.partition.eof": True, "isolation.level": isolation})
        c.assign([TopicPartition("tx", 0, OFFSET_BEGINNING)])
        out = {}
        while True:
            m = c.poll(10)
            assert m is not None
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF
                break
            out.setdefault(m.key(), []).append(m.value())
        c.close()
        return out

    for isolation in ("read_committed", "read_uncommitted"):
        got = values(isolation)
        # The aborted records are gone from the log, not just hidden.
        assert got == {b"k0": [b"committed-again"], **{b"k%d" % i: [b"committed"] for i in range(1, 10)},
                       b"roll": [b"r"]}, isolation
    # The idempotent producer's state survived the clean: it goes on.
    p.begin_transaction()
    p.produce("tx", key=b"k1", value=b"after", partition=0)
    p.commit_transaction(30)


def test_sigkill_while_cleaning_loses_no_latest_value(make_broker):
    # The cleaner is throttled so that kills land in the middle of cleans.
    broker = make_broker(FAST + ["log.cleaner.io.max.bytes.per.second=1000000"])
    create(broker, "crash", {**COMPACT, "segment.bytes": "65536"})
    rng = random.Random(16)
    expected = {}
    for it in range(8):
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        items = [(b"key-%03d" % rng.randrange(200), b"%d-%d-" % (it, i) + b"x" * 200) for i in range(3000)]
        for k, (o, v) in produce_keyed(p, "crash", items).items():
            expected[k] = (o, v)
        o = roll(p, "crash", key=b"roll-%d" % it)
        expected[b"roll-%d" % it] = (o, b"r")
        time.sleep(rng.uniform(0.0, 2.5))
        broker.kill9()
        broker.restart()
        got = {k: (o, v) for o, k, v in read_all(broker, "crash")}
        assert got == expected, f"iteration {it}"
    # And once a clean completes after all those kills, the same again.
    wait_cleaned(broker, "crash", expected[b"roll-7"][0] - 1)
    assert {k: (o, v) for o, k, v in read_all(broker, "crash")} == expected


def test_runtime_policy_change_and_compact_delete(make_broker):
    broker = make_broker(FAST + ["log.retention.check.interval.ms=200"])
    create(broker, "later", {k: v for k, v in COMPACT.items() if k != "cleanup.policy"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    last = produce_keyed(p, "later", [(b"k%d" % (i % 5), b"v%d" % i) for i in range(500)])
    r = roll(p, "later")
    time.sleep(1)
    assert len(read_all(broker, "later")) == 501  # policy delete: nothing compacted
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, "later",
                         incremental_configs=[ConfigEntry("cleanup.policy", "compact",
                                                          incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result(30)
    wait_cleaned(broker, "later", r - 1)
    assert read_all(broker, "later") == sorted([(o, k, v) for k, (o, v) in last.items()] + [(r, b"roll", b"r")])

    # compact,delete: compacted, and old segments still deleted by retention.ms.
    create(broker, "both", {**COMPACT, "cleanup.policy": "compact,delete", "retention.ms": "3000"})
    produce_keyed(p, "both", [(b"k%d" % (i % 5), b"v%d" % i) for i in range(500)])
    r = roll(p, "both")
    wait_cleaned(broker, "both", r - 1)
    assert [k for _, k, _ in read_all(broker, "both")] == [b"k0", b"k1", b"k2", b"k3", b"k4", b"roll"][-6:]
    # Once retention.ms has passed, the segments go whatever their keys.
    time.sleep(3.2)
    last = roll(p, "both", key=b"after")
    deadline = time.time() + 30
    while time.time() < deadline:
        got = read_all(broker, "both")
        if got == [(last, b"after", b"r")]:
            break
        time.sleep(0.2)
    assert got == [(last, b"after", b"r")]


def test_consumer_offsets_stay_bounded(make_broker):
    broker = make_broker(FAST + ["offsets.topic.num.partitions=1", "offsets.topic.segment.bytes=16384"])
    create(broker, "work", {})
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "committer", "enable.auto.commit": False})
    for i in range(6000):
        c.commit(offsets=[TopicPartition("work", 0, i)], asynchronous=False)
    c.close()
    offsets_dir = os.path.join(broker.data_dir, "__consumer_offsets-0")
    deadline = time.time() + 60
    while time.time() < deadline:
        size = sum(os.path.getsize(os.path.join(offsets_dir, f)) for f in os.listdir(offsets_dir) if f.endswith(".log"))
        if size < 100_000:
            break
        time.sleep(0.2)
    # 6000 commits are ~600 KB uncompacted; the compacted log keeps one per key
    # plus at most the active segment and one not yet cleaned.
    assert size < 100_000, size
    broker.stop()
    broker.start()
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "committer"})
    assert c.committed([TopicPartition("work", 0)], timeout=30)[0].offset == 5999
    c.close()


def test_strom_cleaner_command_shows_each_log(make_broker):
    broker = make_broker(FAST)
    create(broker, "shown", COMPACT)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    produce_keyed(p, "shown", [(b"k%d" % (i % 3), b"x" * 100) for i in range(300)])
    r = roll(p, "shown")
    wait_cleaned(broker, "shown", r - 1)
    out = subprocess.run([STROM, "cleaner", "--data-dir", broker.data_dir], check=True,
                         capture_output=True, text=True).stdout
    header, *rows = out.splitlines()
    assert header.split() == ["TOPIC", "PARTITION", "SIZE", "DIRTY-RATIO", "FIRST-DIRTY", "LAST-CLEAN",
                              "CLEAN-MS", "RECLAIMED", "CLEANS"]
    row = [m for m in (re.fullmatch(r"shown\s+0\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)s ago\s+(\d+)\s+(\d+)\s+(\d+)",
                                    line.strip()) for line in rows) if m]
    assert len(row) == 1, out
    size, ratio, first_dirty, ago, _ms, reclaimed, cleans = row[0].groups()
    assert int(first_dirty) == r and int(ago) < 60 and int(cleans) >= 1
    assert int(reclaimed) > 20_000  # ~30 KB written, 3 keys kept
    assert int(size) < 10_000 and float(ratio) < 0.5


def test_deleted_groups_leave_no_trace_in_consumer_offsets(make_broker):
    """DeleteGroups writes tombstones for the group and its offsets; once
    cleans pass delete.retention.ms, nothing of it is left in the log and a
    restart does not bring it back."""
    broker = make_broker(FAST + ["offsets.topic.num.partitions=1", "offsets.topic.segment.bytes=4096",
                                 "log.cleaner.delete.retention.ms=500"])
    create(broker, "work", {}, partitions=3)
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    def commit(group, n):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
        for i in range(n):
            c.commit(offsets=[TopicPartition("work", i % 3, i)], asynchronous=False)
        c.close()

    commit("doomed-group", 30)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.delete_consumer_groups(["doomed-group"]).values():
        f.result(30)

    def offsets_keys():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader", "enable.auto.commit": False,
                      "enable.partition.eof": True})
        c.assign([TopicPartition("__consumer_offsets", 0, OFFSET_BEGINNING)])
        keys = []
        while True:
            m = c.poll(10)
            assert m is not None
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF
                break
            keys.append(m.key())
        c.close()
        return keys

    deadline = time.time() + 60
    while time.time() < deadline:
        commit("busy-group", 200)  # new dirty data: cleans go on and pass the delete horizon
        if not any(b"doomed-group" in k for k in offsets_keys()):
            break
        time.sleep(0.6)
    assert not any(b"doomed-group" in k for k in offsets_keys())
    broker.stop()
    broker.start()
    groups = a.list_consumer_groups().result(30)
    ids = {g.group_id for g in groups.valid}
    assert "doomed-group" not in ids and "busy-group" in ids
