#!/usr/bin/env python3
"""Strom beside Apache Kafka 4.4 on this machine, in one run (issue 26).

Both brokers run on the same data disk (a temporary directory, or
$STROM_BENCH_DIR), one at a time, with their defaults for durability (no
fsync per acknowledgement: the page cache) and segment size (1 GiB); Kafka
is one combined-mode KRaft node started by `scripts/kafka start`, with the
JVM settings of Kafka's start scripts (-Xmx1G -Xms1G, G1,
MaxGCPauseMillis=20) unless KAFKA_HEAP_OPTS says otherwise. Each cell runs
on a fresh topic against Kafka and Strom alternately (the order swapped
every round), and every Strom figure is given as a ratio to Kafka's from the
same run:

  produce   100 B and 1 KiB records, 1 and 6 partitions, acks=1 and all,
            linger 5 ms, 1 MiB batches, idempotence off, driven by
            librdkafka (kcat), Kafka's ProducerPerformance (the Java
            client) and `strom perf produce`;
  consume   the records of the acks=all cells from offset 0, by kcat,
            Kafka's ConsumerPerformance and `strom perf consume`;
  cpu       broker CPU-seconds per GB produced (the 1 KiB, 1 partition,
            acks=all cell of each driver), from the broker's threads;
  e2e       produce→consume latency p50/p99/p99.9 at 1,000 and 20,000
            records/s with `strom perf e2e` and with confluent-kafka
            (librdkafka) sending one record at a time;
  memory    broker RSS idle with 1,000 partitions, and after the runs;
  start-up  with 1,000 partitions holding --data-gb GB, after a clean stop
            and after SIGKILL.

usage: scripts/bench --against-kafka [--quick] [--rounds N]
       .tools/venv/bin/python bench/against_kafka.py [--quick] [--rounds N]
Writes target/bench-kafka.json and prints a table.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from run import ROOT, STROM, Broker, cell, fresh_pages, free_port, kcat_consume, kcat_produce, records_file, \
    run_mib, sh, strom_consume, strom_produce
from run import strom_e2e as run_strom_e2e

KAFKA = os.environ.get("STROM_KAFKA_SCRIPT", os.path.join(ROOT, "scripts", "kafka"))


class Kafka:
    """One Apache Kafka broker (combined mode) through scripts/kafka."""

    name = "kafka"

    def __init__(self, data):
        self.data = data
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.pid = None

    def start(self, timeout=600):
        t = time.perf_counter()
        out = sh(KAFKA, "start", "--dir", self.data, "--port", str(self.port),
                 "--controller-port", str(free_port()),
                 env={**os.environ, "KAFKA_START_TIMEOUT": str(timeout)})
        secs = time.perf_counter() - t
        self.pid = int(re.search(r"pid=(\d+)", out).group(1))
        return secs

    def stop(self, sig=signal.SIGTERM):
        if sig == signal.SIGKILL:
            os.kill(self.pid, signal.SIGKILL)
            while os.path.exists(f"/proc/{self.pid}"):
                time.sleep(0.05)
        else:
            sh(KAFKA, "stop", "--dir", self.data)

    def rss_mb(self):
        return _rss(self.pid)

    def cpu_seconds(self):
        return _cpu(self.pid)


def _rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


class Strom(Broker):
    name = "strom"

    def cpu_seconds(self):
        return _cpu(self.proc.pid)


def create(b, topic, partitions):
    """Creates a topic with Strom's CLI (it speaks CreateTopics to either broker)."""
    sh(STROM, "topics", "create", topic, "--partitions", str(partitions), "--bootstrap", b.bootstrap)


def java_produce(b, topic, size, n, acks):
    out = sh(KAFKA, "tool", "kafka-producer-perf-test", "--topic", topic, "--num-records", str(n),
             "--record-size", str(size), "--throughput", "-1", "--producer-props",
             f"bootstrap.servers={b.bootstrap}", f"acks={acks}", "linger.ms=5", "batch.size=1048576",
             "enable.idempotence=false", "buffer.memory=268435456")
    m = re.findall(r"records sent, ([\d.]+) records/sec", out)
    return float(m[-1])


def java_consume(b, topic, n):
    out = sh(KAFKA, "tool", "kafka-consumer-perf-test", "--bootstrap-server", b.bootstrap, "--topic", topic,
             "--num-records", str(n), "--timeout", "120000", "--group", f"perf-{time.time_ns()}")
    header, row = [line for line in out.splitlines() if line.strip()][-2:]
    cols = dict(zip([c.strip() for c in header.split(",")], [c.strip() for c in row.split(",")]))
    return float(cols["fetch.nMsg.sec"])  # excludes the group join, the same for both brokers


def strom_e2e(b, topic, rate, n):
    r = run_strom_e2e(b, topic, rate, n)
    return {"p50_ms": r["p50"], "p99_ms": r["p99"], "p99_9_ms": r["p99_9"]}


PY_E2E_CONSUMER = """
import sys, time
from confluent_kafka import Consumer, TopicPartition
b, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": b, "group.id": "e2e", "enable.auto.commit": False, "fetch.wait.max.ms": 100})
c.assign([TopicPartition(topic, 0, 0)])
c.poll(0.5)
print("ready", flush=True)
lat = []
while len(lat) < n:
    m = c.poll(0.1)  # one at a time: consume(N, t) would wait for N records
    if m is not None and m.error() is None:
        lat.append((time.perf_counter_ns() - int(m.value())) / 1e6)
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(q(0.5), q(0.99), q(0.999))
"""

PY_E2E_PRODUCER = """
import sys, time
from confluent_kafka import Producer
b, topic, rate, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = Producer({"bootstrap.servers": b, "linger.ms": 0, "acks": "all", "enable.idempotence": False})
start = time.perf_counter()
for i in range(n):
    wait = start + i / rate - time.perf_counter()
    if wait > 0:
        time.sleep(wait)
    p.produce(topic, str(time.perf_counter_ns()).encode(), partition=0)
    p.poll(0)
p.flush(60)
"""


def py_e2e(b, topic, rate, n):
    """confluent-kafka, one record at a time: producer and consumer in two
    processes (one clock: CLOCK_MONOTONIC), so neither waits on the other's GIL."""
    c = subprocess.Popen([sys.executable, "-c", PY_E2E_CONSUMER, b.bootstrap, topic, str(n)],
                         stdout=subprocess.PIPE, text=True)
    assert c.stdout.readline().strip() == "ready"
    sh(sys.executable, "-c", PY_E2E_PRODUCER, b.bootstrap, topic, str(rate), str(n))
    out, _ = c.communicate(timeout=120)
    p50, p99, p999 = map(float, out.split())
    return {"p50_ms": p50, "p99_ms": p99, "p99_9_ms": p999}


def both(tmp, r):
    """Kafka and Strom, in the order of round r."""
    pair = [Kafka(os.path.join(tmp, f"kafka-{r}")), Strom(os.path.join(tmp, f"strom-{r}"))]
    return pair if r % 2 == 0 else pair[::-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer records, 1 GB for start-up")
    ap.add_argument("--data-gb", type=float, default=None)
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end latency rows")
    a = ap.parse_args()
    sh(KAFKA, "install")
    n_small, n_large = (200_000, 50_000) if a.quick else (1_000_000, 300_000)
    gb = a.data_gb or (1 if a.quick else 5)
    tmp = tempfile.mkdtemp(prefix="strom-vs-kafka-", dir=os.environ.get("STROM_BENCH_DIR"))
    result = {"commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(), "rounds": a.rounds,
              "kafka_heap": os.environ.get("KAFKA_HEAP_OPTS", "-Xmx1G -Xms1G"), "produce": [], "consume": [],
              "e2e": []}
    cells = {}  # (kind, key) -> {"kafka": [...], "strom": [...]}

    def add(kind, key, broker, value):
        cells.setdefault((kind, key), {"kafka": [], "strom": []})[broker.name].append(value)

    started = time.time()
    try:
        for r in range(a.rounds):
            for b in both(tmp, r):
                b.start()
                for size, n in () if a.e2e_only else ((100, n_small), (1024, n_large)):
                    path = records_file(tmp, size, n)
                    for partitions in (1, 6):
                        for acks in ("1", "all"):
                            pin = 0 if partitions == 1 else None
                            drivers = (("librdkafka (kcat)", lambda t: kcat_produce(b, t, path, n, acks, pin)),
                                       ("java (perf-test)", lambda t: java_produce(b, t, size, n, acks)),
                                       ("strom perf", lambda t: strom_produce(b, t, size, n, acks)))
                            for name, run in drivers:
                                topic = f"p-{size}-{partitions}-{acks}-{name.split()[0]}"
                                create(b, topic, partitions)
                                fresh_pages(tmp, run_mib(size, n))
                                cpu = b.cpu_seconds()
                                rate = run(topic)
                                cpu = b.cpu_seconds() - cpu
                                add("produce", (size, partitions, acks, name), b, rate)
                                if size == 1024 and partitions == 1 and acks == "all":
                                    add("cpu", name, b, cpu / (n * size / 1e9))
                                if acks == "all":
                                    for cname, crun in (("librdkafka (kcat)", lambda: kcat_consume(b, topic, n)),
                                                        ("java (perf-test)", lambda: java_consume(b, topic, n)),
                                                        ("strom perf", lambda: strom_consume(b, topic, n))):
                                        if cname == name:
                                            add("consume", (size, partitions, cname), b, crun())
                print(f"round {r} {b.name}: produce/consume done ({time.time() - started:.0f} s)", flush=True)
                for rate in (1000, 20000):
                    secs = 3 if a.quick else 5
                    for name, run in (("strom perf", strom_e2e), ("confluent-kafka", py_e2e)):
                        topic = f"e2e-{rate}-{name.split()[0]}"
                        create(b, topic, 1)
                        add("e2e", (rate, name), b, run(b, topic, rate, rate * secs))
                add("rss_after_runs_mb", "", b, b.rss_mb())
                b.stop()
                shutil.rmtree(b.data, ignore_errors=True)

        # Memory idle with 1,000 partitions; start-up with them holding gb GB.
        for b in () if a.e2e_only else both(tmp, 0):
            b.start()
            for t in range(10):
                create(b, f"idle-{t}", 100)
            time.sleep(5)
            add("rss_idle_1000_partitions_mb", "", b, b.rss_mb())
            chunk = records_file(tmp, 1024, 500_000)
            for i in range(int(gb * 2)):
                kcat_produce(b, f"idle-{i % 10}", chunk, 500_000, "1")
            b.stop(signal.SIGKILL)
            add("startup_after_kill9_s", "", b, b.start())
            b.stop()
            add("startup_clean_s", "", b, b.start())
            b.stop()
            shutil.rmtree(b.data, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def summary(kind, key, higher_is_better):
        c = cells[(kind, key)]
        k, s = cell(c["kafka"]), cell(c["strom"])
        return {"kafka": k, "strom": s, "strom_to_kafka": s["median"] / k["median"] if k["median"] else None,
                "higher_is_better": higher_is_better}

    print(f"\n{'row':<58} {'kafka':>12} {'strom':>12} {'strom/kafka':>11}")
    out = {}
    for (kind, key) in cells:
        if kind == "e2e":
            rate, name = key
            for q in ("p50_ms", "p99_ms", "p99_9_ms"):
                vals = {w: [x[q] for x in cells[(kind, key)][w]] for w in ("kafka", "strom")}
                k, s = statistics.median(vals["kafka"]), statistics.median(vals["strom"])
                out.setdefault("e2e", []).append({"rate": rate, "driver": name, "quantile": q, "kafka": k,
                                                  "strom": s, "strom_to_kafka": s / k if k else None})
                print(f"{f'e2e {rate}/s {name} {q}':<58} {k:>12.2f} {s:>12.2f} {s / k if k else 0:>11.2f}")
            continue
        higher = kind in ("produce", "consume")
        row = summary(kind, key, higher)
        label = f"{kind} {' '.join(map(str, key)) if isinstance(key, tuple) else key}".strip()
        out.setdefault(kind, []).append({"key": list(key) if isinstance(key, tuple) else key, **row})
        print(f"{label:<58} {row['kafka']['median']:>12,.2f} {row['strom']['median']:>12,.2f} "
              f"{row['strom_to_kafka']:>11.2f}")
    result.update(out)
    result["seconds"] = time.time() - started
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench-kafka.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"done in {result['seconds']:.0f} s; target/bench-kafka.json written")


if __name__ == "__main__":
    main()
