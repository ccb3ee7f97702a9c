"""Kafka Connect 4.4 distributed workers (scripts/kafka connect) with the broker as
their Kafka: two workers in one Connect group, Kafka's FileStreamSource (file ->
topic) and FileStreamSink (topic -> file) connectors created and managed over
the REST API, the worker running the source task SIGKILLed mid-stream while
lines keep coming, and every line found in the sink file afterwards.

This exercises, on the broker: a classic group of protocol type "connect"
(Connect's sessioned/compatible protocols with incremental cooperative
rebalancing), CreateTopics with configs for Connect's compacted internal topics
and DescribeConfigs to verify them, the config topic read to its end, sink
consumer groups, source offsets, AlterConsumerGroupOffsets / DeleteConsumerGroups
through the offsets REST API (KIP-875) and, with exactly.once.source.support,
transactions (KIP-618: producer fencing, offsets committed with the records).

Every REST exchange is kept in tests/interop/connect_rest/ (see connect_worker.py).
"""
import collections
import json
import os
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from connect_worker import KAFKA, Recorder, Worker, rest, wait_for
from kafka_wire import describe_group_v0, list_groups_v0

# The first rebalance at once; the log cleaner looks for work every half second, so
# that Connect's config topic is compacted during the test.
BROKER_SETS = ["group.initial.rebalance.delay.ms=0", "log.cleaner.backoff.ms=500"]
INTERNAL = {"connect-configs": 1, "connect-offsets": 25, "connect-status": 5}
# The topic configs WORKER_SETS ask Connect to create its internal topics with.
ASKED = {"connect-configs": ("max.message.bytes", "2097152"), "connect-offsets": ("segment.bytes", "10485760"),
         "connect-status": ("min.compaction.lag.ms", "1000")}


@pytest.fixture(scope="module", autouse=True)
def connect_installed():
    subprocess.run([str(KAFKA), "install"], check=True)


@pytest.fixture
def cluster(make_broker, tmp_path, request):
    """A broker and a function that starts two Connect workers on it."""
    broker = make_broker(sets=BROKER_SETS)
    workers = []

    def start(*sets):
        ws = [Worker(str(tmp_path), f"worker{i}", broker.bootstrap, sets) for i in (1, 2)]
        for w in ws:  # both JVMs start at once; each waits for its REST API
            w.spawn()
        workers.extend(ws)
        return [w.wait() for w in ws]

    yield broker, start
    for w in workers:
        w.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for w in workers:
            lines = [ln for ln in w.log().splitlines() if " ERROR " in ln or " WARN " in ln]
            print(f"--- last {min(len(lines), 40)} WARN/ERROR lines of worker {w.id}")
            print("\n".join(lines[-40:]))


def expect(code, result):
    """The body of a REST answer that must have this status code."""
    got, body = result
    assert got == code, f"HTTP {got}, expected {code}: {body}"
    return body


def line(i):
    return f"line-{i:06d}"


def append(path, start, end):
    with open(path, "a") as f:
        f.write("".join(line(i) + "\n" for i in range(start, end)))


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def status(worker, name):
    code, body = rest(worker, "GET", f"/connectors/{name}/status")
    return body if code == 200 else None


def in_state(worker, name, state, on=None):
    """The connector and its one task are in `state` (on worker id `on`, if given)."""
    s = status(worker, name)
    if not s or s["connector"]["state"] != state or len(s["tasks"]) != 1:
        return None
    t = s["tasks"][0]
    return s if t["state"] == state and (on is None or t["worker_id"] == on) else None


def placements(worker):
    """The worker ids running the two connectors and their tasks."""
    ids = set()
    for name in ("source", "sink"):
        s = status(worker, name)
        if not s or s["connector"]["state"] != "RUNNING" or [t["state"] for t in s["tasks"]] != ["RUNNING"]:
            return None
        ids |= {s["connector"]["worker_id"], s["tasks"][0]["worker_id"]}
    return ids


def source_config(src, **extra):
    return {"connector.class": "FileStreamSource", "tasks.max": "1", "file": src, "topic": "lines", **extra}


def sink_config(sink, **extra):
    return {"connector.class": "FileStreamSink", "tasks.max": "1", "file": sink, "topics": "lines", **extra}


def check_internal_topics(broker):
    """Connect's internal topics exist on the broker as Connect created them: compacted,
    with the partition counts and the topic configs it asked for."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = admin.list_topics(timeout=30).topics
    for topic, partitions in INTERNAL.items():
        assert topic in md, f"{topic} not on the broker: {sorted(md)}"
        assert len(md[topic].partitions) == partitions, (topic, len(md[topic].partitions))
        assert all(len(p.replicas) == 1 for p in md[topic].partitions.values())
    res = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in INTERNAL]
    for r, fut in admin.describe_configs(res).items():
        cfg = fut.result(30)
        assert cfg["cleanup.policy"].value == "compact", (r.name, cfg["cleanup.policy"].value)
        key, want = ASKED[r.name]
        assert cfg[key].value == want, (r.name, key, cfg[key].value)
        assert getattr(cfg[key].source, "value", cfg[key].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (
            r.name, key, cfg[key].source)


def connect_group(broker, members):
    """The workers' group as the broker describes it (DescribeGroups v0 by hand:
    kafka-python 2.3 and librdkafka decode consumer groups only): Stable, protocol
    type "connect", Connect's "sessioned" sub-protocol (KIP-507), `members` workers
    each with metadata and an assignment; ListGroups names its protocol type."""
    def described():
        g = describe_group_v0(broker.bootstrap, "connect-cluster")
        return g if g["state"] == "Stable" and len(g["members"]) == members else None
    g = wait_for(f"connect-cluster Stable with {members} members", described, timeout=60)
    assert (g["error"], g["protocol_type"], g["protocol"]) == (0, "connect", "sessioned"), g
    assert all(m["metadata"] and m["assignment"] for m in g["members"]), g["members"]
    assert list_groups_v0(broker.bootstrap).get("connect-cluster") == "connect"
    return g


def walk_before_data(rec, w, src, sink):
    """The plugin and connector-creation calls, each checked for Kafka's status code."""
    expect(200, rec.call("root", w, "GET", "/"))
    expect(200, rec.call("health", w, "GET", "/health"))
    code, plugins = rec.call("connector_plugins", w, "GET", "/connector-plugins")
    assert code == 200
    assert {p["class"] for p in plugins} >= {"org.apache.kafka.connect.file.FileStreamSourceConnector",
                                            "org.apache.kafka.connect.file.FileStreamSinkConnector"}
    expect(200, rec.call("connector_plugins_all", w, "GET", "/connector-plugins?connectorsOnly=false"))
    expect(200, rec.call("plugin_config", w, "GET", "/connector-plugins/FileStreamSourceConnector/config"))
    no_topic = {"name": "bad", "connector.class": "FileStreamSource", "tasks.max": "1", "file": src}
    code, v = rec.call("validate_missing_topic", w, "PUT", "/connector-plugins/FileStreamSourceConnector/config/validate",
                       no_topic)
    assert code == 200 and v["error_count"] == 1, v
    expect(400, rec.call("create_invalid", w, "POST", "/connectors", {"name": "bad", "config": no_topic}))
    code, body = rec.call("create_source", w, "POST", "/connectors", {"name": "source", "config": source_config(src)},
                          volatile=["tasks"])
    assert code == 201 and body["type"] == "source", body
    code, body = rec.call("create_sink", w, "POST", "/connectors", {"name": "sink", "config": sink_config(sink)},
                          volatile=["tasks"])
    assert code == 201 and body["type"] == "sink", body
    expect(409, rec.call("create_again", w, "POST", "/connectors", {"name": "source", "config": source_config(src)}))
    code, names = rec.call("list", w, "GET", "/connectors")
    assert code == 200 and sorted(names) == ["sink", "source"], names


def walk_running(rec, workers, src, sink):
    """Reads and lifecycle calls on running connectors: status, config, tasks, topics,
    offsets, reconfiguration, log levels, pause/resume, restarts."""
    w = workers[0]
    expect(200, rec.call("list_expanded", w, "GET", "/connectors?expand=status&expand=info"))
    for name in ("source", "sink"):
        expect(200, rec.call(f"{name}_info", w, "GET", f"/connectors/{name}"))
        expect(200, rec.call(f"{name}_config", w, "GET", f"/connectors/{name}/config"))
        expect(200, rec.call(f"{name}_status", w, "GET", f"/connectors/{name}/status"))
        expect(200, rec.call(f"{name}_tasks", w, "GET", f"/connectors/{name}/tasks"))
        expect(200, rec.call(f"{name}_task_status", w, "GET", f"/connectors/{name}/tasks/0/status"))
        code, topics = rec.call(f"{name}_topics", w, "GET", f"/connectors/{name}/topics")
        assert code == 200 and topics == {name: {"topics": ["lines"]}}, topics
    size = os.path.getsize(src)
    wait_for("source offset committed", lambda: rest(w, "GET", "/connectors/source/offsets")[1]["offsets"] ==
             [{"partition": {"filename": src}, "offset": {"position": size}}])
    expect(200, rec.call("source_offsets", w, "GET", "/connectors/source/offsets"))
    end = [{"partition": {"kafka_topic": "lines", "kafka_partition": 0}, "offset": {"kafka_offset": 200}}]
    wait_for("sink offset committed", lambda: rest(w, "GET", "/connectors/sink/offsets")[1]["offsets"] == end)
    expect(200, rec.call("sink_offsets", w, "GET", "/connectors/sink/offsets"))
    code, body = rec.call("reconfigure_source", w, "PUT", "/connectors/source/config",
                          source_config(src, **{"batch.size": "500"}), volatile=["tasks"])
    assert code == 200 and body["config"]["batch.size"] == "500", body
    code, body = rec.call("patch_source_config", w, "PATCH", "/connectors/source/config", {"batch.size": "400"},
                          volatile=["tasks"])
    assert code == 200 and body["config"]["batch.size"] == "400" and body["config"]["topic"] == "lines", body
    code, body = rec.call("unset_logger_level", w, "GET", "/admin/loggers/org.apache.kafka.connect.file")
    assert code == 404, body
    code, body = rec.call("set_logger_level", w, "PUT", "/admin/loggers/org.apache.kafka.connect.file",
                          {"level": "DEBUG"}, volatile=["*"])  # and its child loggers that this worker has
    assert code == 200 and "org.apache.kafka.connect.file" in body, body
    code, body = rec.call("logger_level", w, "GET", "/admin/loggers/org.apache.kafka.connect.file",
                          volatile=["last_modified"])
    assert code == 200 and body["level"] == "DEBUG", body
    # Cluster-wide (KIP-976): written to the config topic, applied by every worker.
    expect(204, rec.call("set_logger_level_cluster", w, "PUT", "/admin/loggers/org.apache.kafka.connect.file?scope=cluster",
                    {"level": "WARN"}))
    for x in workers:
        wait_for(f"logger level WARN on {x.id}",
                 lambda: rest(x, "GET", "/admin/loggers/org.apache.kafka.connect.file")[1].get("level") == "WARN")
    expect(201, rec.call("create_with_put", w, "PUT", "/connectors/extra/config", sink_config(sink + ".extra"),
                    volatile=["tasks"]))
    expect(204, rec.call("delete_extra", w, "DELETE", "/connectors/extra"))
    wait_for("source running again", lambda: in_state(w, "source", "RUNNING"))
    expect(202, rec.call("pause_sink", w, "PUT", "/connectors/sink/pause"))
    wait_for("sink paused", lambda: in_state(w, "sink", "PAUSED"))
    expect(200, rec.call("sink_status_paused", w, "GET", "/connectors/sink/status"))
    expect(202, rec.call("resume_sink", w, "PUT", "/connectors/sink/resume"))
    wait_for("sink resumed", lambda: in_state(w, "sink", "RUNNING"))
    expect(204, rec.call("restart_sink", w, "POST", "/connectors/sink/restart"))
    # A restarting connector's or task's version is known only while its instance is loaded.
    code, body = rec.call("restart_sink_and_tasks", w, "POST", "/connectors/sink/restart?includeTasks=true&onlyFailed=false",
                          volatile=["connector/version", "tasks/0/version"])
    assert code == 202 and body["connector"]["state"] == "RESTARTING", body
    wait_for("sink running after restart", lambda: in_state(w, "sink", "RUNNING"))
    expect(204, rec.call("restart_sink_task", w, "POST", "/connectors/sink/tasks/0/restart"))
    wait_for("sink task running after restart", lambda: in_state(w, "sink", "RUNNING"))
    expect(404, rec.call("unknown_status", w, "GET", "/connectors/nope/status"))
    expect(404, rec.call("unknown_task_restart", w, "POST", "/connectors/sink/tasks/7/restart"))


def alter_and_reset(rec, w, name, alter):
    """PATCH a stopped connector's offsets, read them back, DELETE them, read none."""
    path = f"/connectors/{name}/offsets"
    expect(200, rec.call(f"alter_{name}_offsets", w, "PATCH", path, alter))
    code, body = rec.call(f"{name}_offsets_altered", w, "GET", path)
    assert code == 200 and body == alter, body
    expect(200, rec.call(f"reset_{name}_offsets", w, "DELETE", path))
    code, body = rec.call(f"{name}_offsets_reset", w, "GET", path)
    assert code == 200 and body == {"offsets": []}, body


def walk_offsets_and_delete(rec, w, src, total_bytes):
    """KIP-875 on stopped connectors: read, alter and reset offsets, then delete both."""
    for name in ("source", "sink"):
        expect(204, rec.call(f"stop_{name}", w, "PUT", f"/connectors/{name}/stop"))
        wait_for(f"{name} stopped", lambda: (status(w, name) or {}).get("connector", {}).get("state") == "STOPPED"
                 and status(w, name)["tasks"] == [])
        expect(200, rec.call(f"{name}_status_stopped", w, "GET", f"/connectors/{name}/status"))
    code, body = rec.call("source_offsets_final", w, "GET", "/connectors/source/offsets")
    assert code == 200 and body["offsets"] == [{"partition": {"filename": src}, "offset": {"position": total_bytes}}]
    alter_and_reset(rec, w, "source", {"offsets": [{"partition": {"filename": src}, "offset": {"position": 12}}]})
    # The sink's committed offset is the topic's end: past the line count by the source's duplicates.
    code, body = rec.call("sink_offsets_final", w, "GET", "/connectors/sink/offsets", volatile=["offsets"])
    assert code == 200 and body["offsets"][0]["offset"]["kafka_offset"] >= total_bytes // len(line(0) + "\n"), body
    alter_and_reset(rec, w, "sink", {"offsets": [{"partition": {"kafka_topic": "lines", "kafka_partition": 0},
                                                  "offset": {"kafka_offset": 5}}]})
    for name in ("source", "sink"):
        expect(204, rec.call(f"delete_{name}", w, "DELETE", f"/connectors/{name}"))
    expect(404, rec.call("deleted_info", w, "GET", "/connectors/source"))
    code, names = rec.call("list_after_delete", w, "GET", "/connectors")
    assert code == 200 and names == [], names


def kill_mid_stream(workers, src, sink, first, total):
    """Appends lines first..total in small paced batches and SIGKILLs the worker
    that runs the source task once the sink has 300 of them, while the pipeline
    still carries hundreds more; the second half is written after the kill.
    Returns (killed, survivor)."""
    w = workers[0]
    owner = status(w, "source")["tasks"][0]["worker_id"]
    killed = next(x for x in workers if x.id == owner)
    survivor = next(x for x in workers if x is not killed)
    half = (first + total) // 2
    after_kill = threading.Event()

    def writer():
        for start in range(first, total, 10):
            if start >= half:
                after_kill.wait(120)
            append(src, start, min(start + 10, total))
            time.sleep(0.02)

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for("sink past the first lines of the stream", lambda: len(read_lines(sink)) >= first + 300, timeout=60)
        killed.kill9()
    finally:
        after_kill.set()
        t.join()
    return killed, survivor


def check_sink(sink, total, timeout=120):
    """Every line reached the sink file (at least once); returns the duplicate count."""
    want = [line(i) for i in range(total)]
    got = wait_for("every line in the sink file", lambda: (lambda ls: ls if set(ls) >= set(want) else None)(
        read_lines(sink)), timeout=timeout)
    assert set(got) == set(want), f"lines that were never written: {sorted(set(got) - set(want))[:5]}"
    counts = collections.Counter(got)
    return sum(c - 1 for c in counts.values())


def test_file_pipeline_survives_a_sigkilled_worker(cluster, tmp_path):
    broker, start = cluster
    tmp = str(tmp_path)
    src, sink = os.path.join(tmp, "source.txt"), os.path.join(tmp, "sink.txt")
    open(src, "w").close()
    workers = start()
    w = workers[0]
    rec = Recorder("file_pipeline", tmp)
    walk_before_data(rec, w, src, sink)
    wait_for("both connectors running", lambda: in_state(w, "source", "RUNNING") and in_state(w, "sink", "RUNNING"))
    check_internal_topics(broker)
    append(src, 0, 200)
    wait_for("the first 200 lines in the sink", lambda: len(read_lines(sink)) >= 200)
    walk_running(rec, workers, src, sink)
    group = connect_group(broker, 2)
    assert {m["client_id"] for m in group["members"]} == {f"connect-{x.id}" for x in workers}, group["members"]

    total = 3000
    killed, survivor = kill_mid_stream(workers, src, sink, 200, total)
    wait_for("source and sink tasks moved to the survivor", lambda: in_state(survivor, "source", "RUNNING", on=survivor.id)
             and in_state(survivor, "sink", "RUNNING", on=survivor.id), timeout=90)
    dupes = check_sink(sink, total)
    connect_group(broker, 1)
    print(f"killed worker {killed.id}; sink file has all {total} lines, {dupes} duplicates (at least once)")

    # The broker's cleaner compacts the config topic: of the source's three configs
    # (POST, PUT, PATCH) only the last is left. The killed worker comes back and
    # reads the compacted topic to its end; the group rebalances cooperatively and
    # hands it part of the load (Connect's incremental cooperative assignor, KIP-415).
    wait_for("connect-configs compacted", lambda: collections.Counter(
        k for k, _ in read_partition(broker, "connect-configs", "read_uncommitted")[0])[b"connector-source"] == 1)
    killed.spawn().wait()
    # (A worker that has just started may answer 404 until it has caught up with the
    # config offset of its first assignment.)
    wait_for("the restarted worker has the source's last config", lambda: (lambda r: r[0] == 200 and r[1].get(
        "batch.size") == "400")(rest(killed, "GET", "/connectors/source/config")), timeout=30)
    connect_group(broker, 2)
    wait_for("connectors and tasks spread over both workers", lambda: placements(survivor) == {killed.id, survivor.id})
    append(src, total, total + 100)
    total += 100
    check_sink(sink, total)
    walk_offsets_and_delete(rec, survivor, src, total * len(line(0) + "\n"))
    rec.save()
    assert not rec.mismatches(), "REST answers differ from connect_rest/file_pipeline.json:\n" + "\n".join(
        rec.mismatches())


def read_partition(broker, topic, isolation="read_committed"):
    """(key, value) of each record of the topic's partition 0 that a consumer with
    this isolation level reads, in offset order, and the partition's high watermark."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "connect-check", "isolation.level": isolation,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + 60
    while time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            out.append((m.key(), m.value()))
        elif m is None and c.position([TopicPartition(topic, 0)])[0].offset >= high:
            break
    c.close()
    return out, high


def read_committed(broker, topic):
    """The lines of the topic's committed records, in offset order, and its high watermark."""
    records, high = read_partition(broker, topic)
    return [json.loads(v)["payload"] for _, v in records], high


def test_exactly_once_source_survives_a_sigkilled_worker(cluster, tmp_path):
    """KIP-618: with exactly.once.source.support=enabled the source task writes records
    and its offsets in one transaction, so after the SIGKILL the topic holds every
    line exactly once for read_committed consumers (the sink stays at least once)."""
    broker, start = cluster
    tmp = str(tmp_path)
    src, sink = os.path.join(tmp, "source.txt"), os.path.join(tmp, "sink.txt")
    open(src, "w").close()
    workers = start("exactly.once.source.support=enabled", "consumer.isolation.level=read_committed")
    w = workers[0]
    code, body = rest(w, "POST", "/connectors", {"name": "source", "config": source_config(
        src, **{"exactly.once.support": "required", "transaction.boundary": "poll"})})
    assert code == 201, body
    expect(201, rest(w, "POST", "/connectors", {"name": "sink", "config": sink_config(sink)}))
    wait_for("both connectors running", lambda: in_state(w, "source", "RUNNING") and in_state(w, "sink", "RUNNING"))
    append(src, 0, 200)
    wait_for("the first 200 lines in the sink", lambda: len(read_lines(sink)) >= 200)

    total = 2000
    killed, survivor = kill_mid_stream(workers, src, sink, 200, total)
    wait_for("source task moved to the survivor", lambda: in_state(survivor, "source", "RUNNING", on=survivor.id),
             timeout=90)
    dupes = check_sink(sink, total)
    committed, high = wait_for("every line committed to the topic", lambda: (
        lambda r: r if len(r[0]) >= total else None)(read_committed(broker, "lines")))
    # Each transaction ends in a control record (a commit or abort marker) that takes an offset.
    assert high > len(committed), f"no transaction markers: {high} offsets for {len(committed)} records"
    markers = high - len(committed)
    assert committed == [line(i) for i in range(total)], (
        f"{len(committed)} committed records; duplicates: "
        f"{[v for v, n in collections.Counter(committed).items() if n > 1][:5]}")
    # The broker restarts under the running workers: Connect's transactional producers,
    # its compacted internal topics and the sink's group carry on where they were.
    broker.stop()
    broker.restart()
    append(src, total, total + 200)
    total += 200
    check_sink(sink, total)
    committed, _ = wait_for("the new lines committed after the broker restart", lambda: (
        lambda r: r if len(r[0]) >= total else None)(read_committed(broker, "lines")))
    assert committed == [line(i) for i in range(total)], f"{len(committed)} committed records after the restart"
    wait_for("both connectors running after the broker restart",
             lambda: in_state(survivor, "source", "RUNNING") and in_state(survivor, "sink", "RUNNING"))

    # Altering an exactly-once source's offsets fences its tasks' transactional producers
    # (Admin.fenceProducers) and writes the offsets in a transaction of the worker's own.
    expect(204, rest(survivor, "PUT", "/connectors/source/stop"))
    wait_for("source stopped", lambda: (status(survivor, "source") or {}).get("connector", {}).get("state") == "STOPPED")
    offsets = [{"partition": {"filename": src}, "offset": {"position": total * len(line(0) + "\n")}}]
    assert rest(survivor, "GET", "/connectors/source/offsets") == (200, {"offsets": offsets})
    rewound = {"offsets": [{"partition": {"filename": src}, "offset": {"position": 0}}]}
    code, body = rest(survivor, "PATCH", "/connectors/source/offsets", rewound)
    assert code == 200, body
    assert rest(survivor, "GET", "/connectors/source/offsets") == (200, rewound)
    print(f"killed worker {killed.id}; topic has each of {total} lines exactly once (read_committed; "
          f"{markers} offsets of markers and aborted records before the broker restart), sink file {dupes} duplicates")
