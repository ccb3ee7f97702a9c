"""Apache Kafka's own command-line tools (kafka-tools and kafka_2.13 4.4, run
through scripts/kafka as the distribution's bin/*.sh run them) against the
broker, as an operator would use them: topics, configs, console producer and
consumer, consumer groups (describe, reset-offsets, delete), get-offsets,
delete-records, transactions, producer and consumer perf tests. Each check
reads the tool's output, not only its exit code."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[2]
KAFKA = ROOT / "scripts" / "kafka"
FAST_GROUPS = ["group.initial.rebalance.delay.ms=0"]
# Each tool is a short-lived JVM: the client compiler alone and the serial GC
# start it in about half the time, as KAFKA_JVM_PERFORMANCE_OPTS allows.
TOOL_ENV = {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


@pytest.fixture(scope="module", autouse=True)
def kafka_installed():
    subprocess.run([str(KAFKA), "install"], check=True)


def tool(name, *args, input=None, ok=True, timeout=120):
    """Runs one of Kafka's tools; returns (stdout, stderr)."""
    r = subprocess.run([str(KAFKA), "tool", name, *map(str, args)], input=input, capture_output=True, text=True,
                       timeout=timeout, env=TOOL_ENV)
    if ok:
        assert r.returncode == 0, f"{name} {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}\n{r.stdout}"
    else:
        assert r.returncode != 0, f"{name} should have failed:\n{r.stdout}"
    return r.stdout, r.stderr


def topics(broker, *args, **kw):
    return tool("kafka-topics", "--bootstrap-server", broker.bootstrap, *args, **kw)


def wait_for(what, cond, timeout=20):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting: {what}"
        time.sleep(0.2)


def describe_rows(out):
    """The partition lines of kafka-topics --describe as dicts."""
    rows = []
    for line in out.splitlines():
        if "\tPartition: " in line:
            rows.append(dict(re.findall(r"(\w+): (\S*)", line)))
    return rows


def test_topics_create_describe_alter_delete(broker):
    out, _ = topics(broker, "--create", "--topic", "ops", "--partitions", 3, "--replication-factor", 1,
                    "--config", "retention.ms=3600000")
    assert out.strip() == "Created topic ops."
    _, err = topics(broker, "--create", "--topic", "ops", "--partitions", 3, ok=False)
    assert "Topic 'ops' already exists." in err
    wait_for("ops listed", lambda: "ops" in topics(broker, "--list")[0].split())
    out, _ = topics(broker, "--describe", "--topic", "ops")
    head = out.splitlines()[0]
    assert re.search(r"Topic: ops\tTopicId: \S{22}\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: .*"
                     r"retention.ms=3600000", head), head
    rows = describe_rows(out)
    assert [r["Partition"] for r in rows] == ["0", "1", "2"]
    assert all(r["Leader"] == r["Replicas"] == r["Isr"] for r in rows), rows
    # DescribeTopicPartitions: no eligible leader replicas on one node ("N/A" without the API).
    assert all(r["Elr"] == r["LastKnownElr"] == "" for r in rows), rows
    topics(broker, "--alter", "--topic", "ops", "--partitions", 5)
    wait_for("5 partitions", lambda: len(describe_rows(topics(broker, "--describe", "--topic", "ops")[0])) == 5)
    _, err = topics(broker, "--alter", "--topic", "ops", "--partitions", 2, ok=False)
    assert "InvalidPartitionsException" in err and "5" in err, err
    topics(broker, "--delete", "--topic", "ops")
    wait_for("ops gone", lambda: "ops" not in topics(broker, "--list")[0].split())
    _, err = topics(broker, "--describe", "--topic", "ops", ok=False)
    assert "Topic 'ops' does not exist" in err, err


def configs(broker, *args, **kw):
    return tool("kafka-configs", "--bootstrap-server", broker.bootstrap, *args, **kw)


def dynamic_topic_configs(broker, topic):
    out, _ = configs(broker, "--entity-type", "topics", "--entity-name", topic, "--describe")
    lines = out.splitlines()
    assert lines[0] == f"Dynamic configs for topic {topic} are:", out
    return dict(re.match(r"\s+([^=]+)=(\S*) sensitive=", l).groups() for l in lines[1:])


def test_configs_alter_describe_delete(broker):
    topics(broker, "--create", "--topic", "cfg", "--partitions", 1)
    out, _ = configs(broker, "--entity-type", "topics", "--entity-name", "cfg", "--alter",
                     "--add-config", "retention.ms=7200000,cleanup.policy=compact")
    assert out.strip() == "Completed updating config for topic cfg."
    wait_for("both configs set", lambda: dynamic_topic_configs(broker, "cfg") ==
             {"retention.ms": "7200000", "cleanup.policy": "compact"})
    configs(broker, "--entity-type", "topics", "--entity-name", "cfg", "--alter", "--delete-config", "retention.ms")
    wait_for("retention.ms deleted", lambda: dynamic_topic_configs(broker, "cfg") == {"cleanup.policy": "compact"})
    _, err = configs(broker, "--entity-type", "topics", "--entity-name", "cfg", "--alter",
                     "--add-config", "retention.ms=soon", ok=False)
    assert "InvalidConfigurationException" in err or "Invalid value" in err, err
    out, _ = configs(broker, "--entity-type", "brokers", "--entity-name", 1, "--describe", "--all")
    assert out.splitlines()[0] == "All configs for broker 1 are:"
    assert re.search(r"^\s+num\.partitions=1 sensitive=false", out, re.M), out[:2000]
    assert re.search(r"^\s+log\.cleanup\.policy=delete sensitive=false", out, re.M), out[:2000]


def produce_console(broker, topic, lines):
    tool("kafka-console-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
         "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
         input="".join(f"{l}\n" for l in lines))


def consume_console(broker, topic, count, *extra):
    out, err = tool("kafka-console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                    "--from-beginning", "--max-messages", count, "--timeout-ms", 30000,
                    "--formatter-property", "print.key=true", "--formatter-property", "print.partition=true",
                    "--formatter-property", "print.offset=true", *extra)
    assert f"Processed a total of {count} messages" in err, err
    return sorted(out.splitlines())


def test_console_producer_and_consumer(make_broker):
    broker = make_broker(FAST_GROUPS)
    topics(broker, "--create", "--topic", "console", "--partitions", 1)
    produce_console(broker, "console", [f"k{i}:value {i}" for i in range(5)])
    assert consume_console(broker, "console", 5) == [f"Partition:0\tOffset:{i}\tk{i}\tvalue {i}" for i in range(5)]


def group_rows(out):
    """Rows of a kafka-consumer-groups table as dicts keyed by its header."""
    lines = [l for l in out.splitlines() if l.strip()]
    header = next(i for i, l in enumerate(lines) if l.startswith("GROUP "))
    keys = lines[header].split()
    return [dict(zip(keys, l.split())) for l in lines[header + 1:]]


def test_consumer_groups_describe_reset_delete(make_broker):
    broker = make_broker(FAST_GROUPS)
    topics(broker, "--create", "--topic", "cg", "--partitions", 2)
    produce_console(broker, "cg", [f"k{i}:v{i}" for i in range(6)])
    consume_console(broker, "cg", 6, "--group", "ops-group")
    cg = lambda *a, **kw: tool("kafka-consumer-groups", "--bootstrap-server", broker.bootstrap, *a, **kw)
    assert "ops-group" in cg("--list")[0].split()
    out, err = cg("--describe", "--group", "ops-group")
    assert "Consumer group 'ops-group' has no active members." in out + err
    rows = sorted(group_rows(out), key=lambda r: r["PARTITION"])
    assert [r["PARTITION"] for r in rows] == ["0", "1"]
    assert all(r["CURRENT-OFFSET"] == r["LOG-END-OFFSET"] and r["LAG"] == "0" for r in rows), rows
    assert sum(int(r["LOG-END-OFFSET"]) for r in rows) == 6
    out, _ = cg("--describe", "--group", "ops-group", "--state")
    (state,) = group_rows(out)
    assert (state["STATE"], state["#MEMBERS"]) == ("Empty", "0"), state
    out, _ = cg("--reset-offsets", "--group", "ops-group", "--topic", "cg", "--to-earliest", "--dry-run")
    assert {r["NEW-OFFSET"] for r in group_rows(out)} == {"0"}
    out, _ = cg("--describe", "--group", "ops-group")
    assert all(r["LAG"] == "0" for r in group_rows(out)), "a dry run changes nothing"
    out, _ = cg("--reset-offsets", "--group", "ops-group", "--topic", "cg:0", "--to-offset", 1, "--execute")
    assert [(r["PARTITION"], r["NEW-OFFSET"]) for r in group_rows(out)] == [("0", "1")]
    rows = {r["PARTITION"]: r for r in group_rows(cg("--describe", "--group", "ops-group")[0])}
    assert rows["0"]["CURRENT-OFFSET"] == "1" and int(rows["0"]["LAG"]) == int(rows["0"]["LOG-END-OFFSET"]) - 1
    assert rows["1"]["LAG"] == "0"
    out, _ = cg("--delete", "--group", "ops-group")
    assert "Deletion of requested consumer groups ('ops-group') was successful." in out
    assert "ops-group" not in cg("--list")[0].split()


def test_get_offsets_and_delete_records(broker, tmp_path):
    topics(broker, "--create", "--topic", "offs", "--partitions", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("offs", value=f"v{i}", partition=i % 2)
    assert p.flush(30) == 0
    get = lambda *a: sorted(tool("kafka-get-offsets", "--bootstrap-server", broker.bootstrap, *a)[0].split())
    assert get("--topic", "offs") == ["offs:0:5", "offs:1:5"]
    assert get("--topic", "offs", "--time", "-2") == ["offs:0:0", "offs:1:0"]
    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [{"topic": "offs", "partition": 0, "offset": 3}]}))
    out, _ = tool("kafka-delete-records", "--bootstrap-server", broker.bootstrap, "--offset-json-file", spec)
    assert "partition: offs-0\tlow_watermark: 3" in out, out
    assert get("--topic", "offs", "--time", "-2") == ["offs:0:3", "offs:1:0"]
    assert get("--topic", "offs", "--time", "-1", "--partitions", "0") == ["offs:0:5"]


def table(out):
    """A TransactionsCommand table (tab-separated, padded) as dicts."""
    lines = [l for l in out.splitlines() if l.strip()]
    keys = [k.strip() for k in lines[0].split("\t") if k.strip()]
    return [dict(zip(keys, (v.strip() for v in l.split("\t")))) for l in lines[1:]]


def test_transactions_command(make_broker):
    broker = make_broker(FAST_GROUPS)
    topics(broker, "--create", "--topic", "txo", "--partitions", 1)
    done = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "ops-done"})
    done.init_transactions()
    done.begin_transaction()
    done.produce("txo", b"committed")
    done.commit_transaction()
    open_ = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "ops-open",
                      "transaction.timeout.ms": 60000})
    open_.init_transactions()
    open_.begin_transaction()
    open_.produce("txo", b"pending")
    assert open_.flush(30) == 0
    txns = lambda *a: tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, *a)[0]
    listed = {r["TransactionalId"]: r["TransactionState"] for r in table(txns("list"))}
    assert listed == {"ops-done": "CompleteCommit", "ops-open": "Ongoing"}
    (d,) = table(txns("describe", "--transactional-id", "ops-open"))
    assert (d["TransactionState"], d["TopicPartitions"], d["TransactionTimeoutMs"]) == ("Ongoing", "txo-0", "60000")
    (d,) = table(txns("describe", "--transactional-id", "ops-done"))
    assert d["TransactionState"] == "CompleteCommit" and d["TopicPartitions"] == ""
    producers = table(txns("describe-producers", "--topic", "txo", "--partition", 0))
    assert sorted(r["CurrentTransactionStartOffset"] for r in producers) == ["2", "None"], producers
    open_.abort_transaction()
    wait_for("ops-open aborted", lambda: {r["TransactionalId"]: r["TransactionState"] for r in table(txns("list"))}
             .get("ops-open") == "CompleteAbort")


def test_producer_and_consumer_perf(make_broker):
    broker = make_broker(FAST_GROUPS)
    topics(broker, "--create", "--topic", "perf", "--partitions", 2)
    out, _ = tool("kafka-producer-perf-test", "--topic", "perf", "--num-records", 20000, "--record-size", 100,
                  "--throughput", -1, "--bootstrap-server", broker.bootstrap, "--command-property", "acks=all")
    final = out.strip().splitlines()[-1]
    assert re.match(r"20000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency", final), final
    offsets = tool("kafka-get-offsets", "--bootstrap-server", broker.bootstrap, "--topic", "perf")[0].split()
    assert sum(int(o.rsplit(":", 1)[1]) for o in offsets) == 20000
    out, _ = tool("kafka-consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", "perf",
                  "--num-records", 20000, "--timeout", 60000)
    lines = out.strip().splitlines()
    keys = [k.strip() for k in lines[-2].split(",")]
    row = dict(zip(keys, (v.strip() for v in lines[-1].split(","))))
    assert row["data.consumed.in.nMsg"] == "20000", row
    assert abs(float(row["data.consumed.in.MB"]) - 20000 * 100 / 1024 / 1024) < 0.01, row


def test_metadata_quorum_describe(broker):
    """kafka-metadata-quorum reads the metadata quorum through DescribeQuorum: one node is its
    own leader and only voter, and the high watermark moves with every metadata change."""
    def status():
        out, _ = tool("kafka-metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--status")
        return dict(re.findall(r"^(\w+):\s+(.*)$", out, re.M))
    before = status()
    assert before["LeaderId"] == "1", before
    assert int(before["LeaderEpoch"]) >= 1, before
    assert '"id": 1' in before["CurrentVoters"], before
    assert before["CurrentObservers"].strip() == "[]", before
    topics(broker, "--create", "--topic", "quorum-moves", "--partitions", 2)
    after = status()
    assert int(after["HighWatermark"]) > int(before["HighWatermark"]), (before, after)
    out, _ = tool("kafka-metadata-quorum", "--bootstrap-server", broker.bootstrap, "describe", "--replication")
    rows = [l.split() for l in out.strip().splitlines()[1:]]
    assert rows and rows[0][0] == "1" and rows[0][-1] == "Leader", out
