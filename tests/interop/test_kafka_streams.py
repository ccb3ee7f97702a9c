"""Kafka Streams applications (Apache Kafka's kafka-streams 4.4,
tests/interop/kstreams) run unchanged against the broker, with
processing.guarantee=exactly_once_v2: word count (two instances), a windowed
count with suppress(untilWindowCloses) and a stream-table join. In each, an
instance is SIGKILLed while records flow and started again on its state
directory (same process id, so its transactional producer fences the dead
one's and aborts its open transaction). The output, read with read_committed
after the instances closed cleanly, must be exactly what the input implies,
record by record: every state update once, nothing missing, nothing twice.
A fourth test runs the word count over KIP-1071's Streams rebalance protocol
(group.protocol=streams), which Strom does not serve yet.

What this needs from the broker: internal repartition and compacted changelog
topics created by the Admin client, DeleteRecords on repartition topics,
transactions over many partitions with sendOffsetsToTransaction, fetch
isolation (read_committed stops at the last stable offset), the classic group
protocol carrying the StreamsPartitionAssignor's subscription and assignment,
and producer fencing through InitProducerId.
"""
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

import kstreams_app
from kstreams_app import StreamsApp
from yardstick import strom_gap

FAST_GROUPS = ["group.initial.rebalance.delay.ms=0"]
PARTITIONS = 3


@pytest.fixture(scope="module", autouse=True)
def built():
    kstreams_app.build()


@pytest.fixture
def apps(request):
    started = []

    def start(*args):
        app = StreamsApp(*args)
        started.append(app)
        return app

    yield start
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    keep = failed or bool(os.environ.get("KSTREAMS_KEEP_LOGS"))
    for app in started:
        if failed:  # CI keeps only the output: show what the instance logged
            print(f"--- streams instance {app.cmd_args[:3]}, states {app.states}, log {app.err.name}")
            print(app.stderr_tail(80))
        if keep:
            print(f"--- streams instance {app.cmd_args[:3]} log kept: {app.err.name}")
        app.close(keep_log=keep)


def create(broker, *topics):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        f.result(30)


class Feeder(threading.Thread):
    """Produces (key, value, timestamp) records a few at a time, so that the
    applications are mid-transaction when an instance is killed. The last
    `held` records wait for `trickle()` (after all the others went out, so
    each partition's timestamps keep increasing), which keeps records flowing
    however long the kill waits, and for `finish()`. Keys are partitioned as
    the Java client does (murmur2): a stream-table join needs its table
    partitioned as Streams partitions its repartition topic."""

    def __init__(self, broker, topic, records, chunk=5, held=0):
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                                  "partitioner": "murmur2_random", "linger.ms": 1})
        self.topic, self.chunk = topic, chunk
        cut = len(records) - held
        self.records, self.held = records[:cut], list(records[cut:])
        self.error = None
        self.start()

    def _send(self, key, value, ts):
        self.producer.produce(self.topic, key=key, value=value, timestamp=ts or 0)

    def run(self):
        try:
            for i, record in enumerate(self.records):
                self._send(*record)
                if i % self.chunk == self.chunk - 1:
                    self.producer.poll(0)
                    time.sleep(0.02)
            if self.producer.flush(30) != 0:
                self.error = "records left unsent"
        except Exception as e:  # noqa: BLE001 -- reported by finish()
            self.error = repr(e)

    def trickle(self):
        """Sends the next few held records once the others are out."""
        if self.is_alive() or not self.held:
            return
        for record in self.held[:self.chunk]:
            self._send(*record)
        del self.held[:self.chunk]
        self.producer.poll(0)

    def finish(self):
        self.join(120)
        assert not self.is_alive() and self.error is None, self.error
        for record in self.held:
            self._send(*record)
        self.held = []
        assert self.producer.flush(30) == 0, "records left unsent"


def produce(broker, topic, records):
    Feeder(broker, topic, records, chunk=len(records) + 1).finish()


def consumer(broker, isolation="read_committed", **conf):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kstreams-test-reader",
                     "enable.auto.commit": False, "isolation.level": isolation, **conf})


def wait_output(broker, topic, count, running, timeout=120):
    """Waits until `count` records of `topic` are committed, watching that the
    application instances stay alive meanwhile."""
    c = consumer(broker)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = 0
    deadline = time.time() + timeout
    try:
        while seen < count:
            assert time.time() < deadline, f"{seen} of {count} records committed to {topic}"
            for app in running:
                app.check()
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                seen += 1
    finally:
        c.close()


def read_all(broker, topic, isolation="read_committed", timeout=60):
    """Every record of `topic` up to its end (the last stable offset for
    read_committed), as (partition, key, value) in offset order per partition."""
    c = consumer(broker, isolation, **{"enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out, at_end = [], set()
    deadline = time.time() + timeout
    try:
        while len(at_end) < PARTITIONS:
            assert time.time() < deadline, f"{topic}: partitions {sorted(at_end)} reached their end, not all"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error() is not None:
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                at_end.add(m.partition())
                continue
            at_end.discard(m.partition())
            out.append((m.partition(), m.key().decode(), m.value().decode()))
    finally:
        c.close()
    return out


def committed_to_end(broker, group, topic):
    """Whether `group` has committed offsets at the end of every partition of `topic`."""
    c = consumer(broker, **{"group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        done = c.committed(tps, timeout=10)
        return all(tp.offset == c.get_watermark_offsets(tp, timeout=10)[1] for tp in done)
    finally:
        c.close()


def undecided(admin, topic):
    """The partitions of `topic` holding records of a transaction not yet
    decided (last stable offset below the high watermark), with that offset."""
    def ends(isolation):
        tps = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)}
        return {tp.partition: f.result(10).offset
                for tp, f in admin.list_offsets(tps, isolation_level=isolation).items()}
    stable, high = ends(IsolationLevel.READ_COMMITTED), ends(IsolationLevel.READ_UNCOMMITTED)
    return {p: stable[p] for p in range(PARTITIONS) if stable[p] < high[p]}


def wait_purged(broker, topic, nudge, running, timeout=60):
    """Waits until Streams has deleted consumed records of its repartition
    `topic`: a partition starts past offset 0. Streams purges (DeleteRecords)
    only after a commit that comes at least 500 ms (the interval set here)
    after its last purge, and commits only when it has processed something:
    an instance that caught up within 500 ms of its start never purges. So
    while none has, `nudge()` sends one more record through `topic` and the
    instances get a second to commit it."""
    deadline = time.time() + timeout
    while True:
        c = consumer(broker)
        try:
            lows = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in range(PARTITIONS)]
        finally:
            c.close()
        if any(low > 0 for low in lows):
            return
        assert time.time() < deadline, f"{topic} low watermarks {lows}"
        for app in running:
            app.check()
        nudge()
        time.sleep(1)


def kill_mid_transaction_and_restart(app, broker, topic, feeder, after=1, timeout=60):
    """SIGKILLs the instance, once `after` output records are committed, while
    a transaction of its holds output records in `topic` (records still
    flowing in), then starts it again on its state directory.

    To be sure whose transaction it is and that it stays open to the end, the
    instance is frozen (SIGSTOP) and the output looked at twice, a second
    apart: a partition whose last stable offset stays put below its high
    watermark holds a transaction of the frozen instance (another instance's
    commits every 200 ms move it on, and a commit already sent completes
    meanwhile). If there is none, the instance is thawed and watched again,
    with more of the feeder's held records sent."""
    wait_output(broker, topic, after, [app])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deadline = time.time() + timeout
    while True:
        assert time.time() < deadline, f"no open transaction with output in {topic} seen"
        app.check()
        if undecided(admin, topic):
            app.proc.send_signal(signal.SIGSTOP)
            first = undecided(admin, topic)
            time.sleep(1)
            second = undecided(admin, topic)
            if any(first.get(p) == stable for p, stable in second.items()):
                break
            app.proc.send_signal(signal.SIGCONT)
        feeder.trickle()
        time.sleep(0.05)
    app.kill9()
    app.start()


def read_both(broker, topic):
    """The committed records of `topic`, after checking that the uncommitted
    view holds each of them too plus some the killed instance's aborted
    transaction wrote (which read_committed must skip)."""
    committed = read_all(broker, topic)
    everything = read_all(broker, topic, "read_uncommitted")
    assert not Counter(committed) - Counter(everything)
    assert len(everything) > len(committed), "the killed instance's transaction left no output behind"
    return committed


# The changelogs roll a segment every half second and the broker's cleaner
# looks every 200 ms, so the killed instance restores its counts from a
# compacted changelog holding transaction markers and an aborted transaction.
COMPACTING = ["topic.segment.ms=500", "topic.min.cleanable.dirty.ratio=0.01"]


def text(count, seed=26):
    """`count` lines of words (some upper case), and their words as the word
    count sees them."""
    rng = random.Random(seed)
    vocab = ["kafka", "strom", "stream", "table", "window", "join", "topic", "record", "offset", "epoch",
             "fence", "commit", "abort", "marker", "leader", "replica", "segment", "index"]
    lines = [" ".join(rng.choice(vocab).upper() if rng.random() < 0.1 else rng.choice(vocab)
                      for _ in range(rng.randint(1, 6))) for _ in range(count)]
    return lines, [w.lower() for line in lines for w in line.split()]


def assert_counts(rows, words):
    """Each word's counts are 1, 2, ..., n in output order, all in one partition."""
    updates = defaultdict(list)
    partition_of = {}
    for p, word, count in rows:
        assert partition_of.setdefault(word, p) == p, f"{word} in partitions {partition_of[word]} and {p}"
        updates[word].append(int(count))
    assert dict(updates) == {w: list(range(1, n + 1)) for w, n in Counter(words).items()}


def test_word_count_two_instances_one_killed(make_broker, apps, tmp_path):
    broker = make_broker(FAST_GROUPS + ["log.cleaner.backoff.ms=200"])
    app_id = "wordcount"
    create(broker, f"{app_id}-text", f"{app_id}-counts")
    lines, words = text(1200)

    a = apps("wordcount", broker.bootstrap, app_id, str(tmp_path / "a"), *COMPACTING)
    b = apps("wordcount", broker.bootstrap, app_id, str(tmp_path / "b"), *COMPACTING)
    a.wait_state("RUNNING")
    b.wait_state("RUNNING")
    feeder = Feeder(broker, f"{app_id}-text", [(None, line, None) for line in lines], held=len(lines) // 4)
    kill_mid_transaction_and_restart(a, broker, f"{app_id}-counts", feeder, after=len(words) // 3)
    feeder.finish()
    wait_output(broker, f"{app_id}-counts", len(words), [a, b])

    def nudge():  # a word of its own, counted like the others
        words.append("purge")
        produce(broker, f"{app_id}-text", [(None, "purge", None)])
    wait_purged(broker, f"{app_id}-counts-repartition", nudge, [a, b])
    wait_output(broker, f"{app_id}-counts", len(words), [a, b])
    a.stop()
    b.stop()
    assert_counts(read_both(broker, f"{app_id}-counts"), words)


@strom_gap("group.protocol=streams (KIP-1071) needs StreamsGroupHeartbeat (API 88), which Kafka 4.4 "
           "serves and Strom does not: the client fails with UnsupportedVersionException")
def test_word_count_over_the_streams_rebalance_protocol(make_broker, apps, tmp_path):
    broker = make_broker(FAST_GROUPS)
    app_id = "wordcount-kip1071"
    create(broker, f"{app_id}-text", f"{app_id}-counts")
    lines, words = text(300, seed=1071)
    app = apps("wordcount", broker.bootstrap, app_id, str(tmp_path / "a"), "group.protocol=streams")
    app.wait_state("RUNNING")
    produce(broker, f"{app_id}-text", [(None, line, None) for line in lines])
    wait_output(broker, f"{app_id}-counts", len(words), [app])
    app.stop()
    assert_counts(read_all(broker, f"{app_id}-counts"), words)


def test_windowed_count_with_suppression_killed(make_broker, apps, tmp_path):
    broker = make_broker(FAST_GROUPS)
    app_id = "windowed"
    create(broker, f"{app_id}-readings", f"{app_id}-windows")
    rng = random.Random(27)
    zones = ["north", "south", "east", "west", "up", "down"]
    # Within the broker's accepted timestamp range (at most an hour ahead): an hour ago,
    # on a 10 s window boundary, a record every 50 ms, increasing (none is late).
    base = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    readings = [(rng.choice(zones), f"device-{rng.randrange(50)}", base + 50 * i) for i in range(1200)]
    # One reading per zone a minute after the last closes every window of every task.
    closing = [(zone, "device-closing", base + 120_000) for zone in zones]

    app = apps("windowed", broker.bootstrap, app_id, str(tmp_path / "a"))
    app.wait_state("RUNNING")
    feeder = Feeder(broker, f"{app_id}-readings", readings, held=len(readings) // 4)
    kill_mid_transaction_and_restart(app, broker, f"{app_id}-windows", feeder)
    feeder.finish()
    produce(broker, f"{app_id}-readings", closing)
    expected = Counter(f"{zone}@{ts // 10_000 * 10_000}" for zone, _, ts in readings)
    wait_output(broker, f"{app_id}-windows", len(expected), [app])
    app.stop()

    got = [(key, int(count)) for _, key, count in read_both(broker, f"{app_id}-windows")]
    assert sorted(got) == sorted(expected.items())


def test_stream_table_join_killed(make_broker, apps, tmp_path):
    broker = make_broker(FAST_GROUPS)
    app_id = "join"
    create(broker, f"{app_id}-users", f"{app_id}-orders", f"{app_id}-enriched")
    rng = random.Random(28)
    regions = ["emea", "apac", "amer"]
    users = {f"user-{i}": rng.choice(regions) for i in range(40)}
    # Users 40..49 are not in the table: an inner join drops their orders.
    orders = [(f"order-{i}", f"user-{rng.randrange(50)}") for i in range(800)]
    produce(broker, f"{app_id}-users", [(u, r, None) for u, r in users.items()])

    app = apps("join", broker.bootstrap, app_id, str(tmp_path / "a"))
    app.wait_state("RUNNING")
    deadline = time.time() + 60
    while not committed_to_end(broker, app_id, f"{app_id}-users"):  # the table is loaded
        assert time.time() < deadline, "the application did not read the whole table"
        app.check()
        time.sleep(0.2)
    feeder = Feeder(broker, f"{app_id}-orders", [(o, f"{o}:{u}", None) for o, u in orders], held=len(orders) // 4)
    kill_mid_transaction_and_restart(app, broker, f"{app_id}-enriched", feeder)
    feeder.finish()
    expected = sorted((u, f"{o}@{users[u]}") for o, u in orders if u in users)
    wait_output(broker, f"{app_id}-enriched", len(expected), [app])

    def nudge():  # an order of a user not in the table: repartitioned, then dropped by the join
        produce(broker, f"{app_id}-orders", [("order-nudge", "order-nudge:user-none", None)])
    wait_purged(broker, f"{app_id}-KSTREAM-KEY-SELECT-0000000003-repartition", nudge, [app])
    app.stop()

    assert sorted((u, v) for _, u, v in read_both(broker, f"{app_id}-enriched")) == expected
