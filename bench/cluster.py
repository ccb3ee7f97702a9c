#!/usr/bin/env python3
"""What replication costs and how fast a partition fails over, on a local
three-node Strom cluster (every node broker and controller, as `strom dev
cluster` lays it out), on this machine.

Measures:
  1. produce, 1 KiB records, acks=all, linger 5 ms, 1 MiB batches, into one
     partition and into six, with replication factor 1 and 3
     (min.insync.replicas=2), driven by kcat and by `strom perf produce`:
     records/s, and the RF3/RF1 ratio of each pair (all runs in this
     process, so the ratio is free of the machine's speed);
  2. failover: a confluent-kafka producer (idempotent, acks=all) writes
     numbered records to an RF3 partition; its leader is SIGKILLed; the
     time from the kill to the first acknowledgement of a record sent after
     it (with broker.session.timeout.ms=2000 the controller fences the dead
     broker within 2 s; Kafka's default is 9000), and the acknowledged
     records that a read afterwards does not find (must be 0).
The three nodes share this machine's cores with the clients, so RF3 pays
for two more copies with the same CPU: the ratio is an upper bound on what
replication costs. Prints a table and writes target/bench-cluster.json.

usage: scripts/bench --cluster [--rounds 3] [--quick]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, STROM, cell, free_port, kcat_produce, records_file, sh, strom_produce  # noqa: E402

SETS = ["broker.heartbeat.interval.ms=200", "broker.session.timeout.ms=2000",
        "group.initial.rebalance.delay.ms=0"]


class Node:
    def __init__(self, root, node_id, voters, port, controller_port):
        self.node_id, self.port = node_id, port
        self.bootstrap = f"127.0.0.1:{port}"
        self.log = os.path.join(root, f"node-{node_id}.log")
        self.args = [STROM, "server", "--node-id", str(node_id), "--data-dir", os.path.join(root, f"node-{node_id}")]
        for s in [f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                  "controller.listener.names=CONTROLLER", f"controller.quorum.voters={voters}",
                  "process.roles=broker,controller", *SETS]:
            self.args += ["--set", s]
        self.proc = None

    def start(self):
        seen = open(self.log, "rb").read().count(b"strom broker started") if os.path.exists(self.log) else 0
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        return seen

    def wait_started(self, seen, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if open(self.log, "rb").read().count(b"strom broker started") > seen:
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"node {self.node_id} exited; see {self.log}")
            time.sleep(0.02)
        raise SystemExit(f"node {self.node_id} did not start; see {self.log}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)


class Cluster:
    def __init__(self, root, n=3):
        ports = [(free_port(), free_port()) for _ in range(n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        self.nodes = [Node(root, i + 1, voters, p, c) for i, (p, c) in enumerate(ports)]
        self.bootstrap = self.nodes[0].bootstrap

    def __enter__(self):
        seen = [n.start() for n in self.nodes]
        for n, s in zip(self.nodes, seen):
            n.wait_started(s)
        return self

    def __exit__(self, *exc):
        for n in self.nodes:
            n.stop()

    def live(self):
        return ",".join(n.bootstrap for n in self.nodes if n.proc.poll() is None)


class Target:
    """What bench/run.py's drivers need of a broker: a bootstrap address."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap


def placed(bootstrap, topic):
    """(leader, ISR) per partition of `topic`."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    parts = md.topics[topic].partitions
    return [(parts[i].leader, parts[i].isrs) for i in sorted(parts)]


def create(bootstrap, topic, partitions, rf):
    deadline = time.time() + 60
    while True:  # a broker just restarted is fenced until it has caught up
        try:
            sh(STROM, "topics", "create", topic, "--partitions", str(partitions), "--replication-factor", str(rf),
               "--config", "min.insync.replicas=2" if rf > 1 else "min.insync.replicas=1", "--bootstrap", bootstrap)
            break
        except subprocess.CalledProcessError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    while time.time() < deadline:  # every partition led, its ISR full
        parts = placed(bootstrap, topic)
        if len(parts) == partitions and all(leader >= 0 and len(isr) == rf for leader, isr in parts):
            return
        time.sleep(0.2)
    raise SystemExit(f"{topic} did not get a full ISR")


FAILOVER = """
import json, sys, threading, time
from confluent_kafka import Consumer, Producer, TopicPartition
bootstrap, topic = sys.argv[1], sys.argv[2]
acked, lock = {}, threading.Lock()
p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 1,
              "message.timeout.ms": 60000})
def on(err, m):
    if err is None:
        with lock:
            acked[int(m.value())] = time.time()
sent_at, i = {}, 0
print("ready", flush=True)
deadline = time.time() + float(sys.argv[3])
while time.time() < deadline:
    sent_at[i] = time.time()
    p.produce(topic, str(i).encode(), on_delivery=on)
    p.poll(0)
    i += 1
    time.sleep(0.002)
p.flush(60)
errors = []
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-failover", "enable.auto.commit": False,
              "auto.offset.reset": "error"})
c.assign([TopicPartition(topic, 0, 0)])
# Until every acknowledged record is seen or 30 s pass: an end-of-partition
# event can come early (from metadata that still names the dead leader).
seen, end = set(), time.time() + 30
while time.time() < end and not set(acked) <= seen:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        errors.append(str(m.error()))
        continue  # the dead broker's connection, a leader moving: read on
    seen.add(int(m.value()))
c.close()
print(json.dumps({"sent_at": sent_at, "acked": acked, "lost": len(set(acked) - seen), "read": len(seen),
                  "errors": errors[:5]}))
"""


def failover(c, topic):
    """Seconds from a SIGKILL of the leader to the first acknowledgement of
    a record sent after it and to the metadata naming a new leader, and
    acknowledged records lost."""
    create(c.bootstrap, topic, 1, 3)
    leader = placed(c.bootstrap, topic)[0][0]
    every = ",".join(n.bootstrap for n in c.nodes)  # the reader must not bootstrap from the dead node alone
    proc = subprocess.Popen([sys.executable, "-c", FAILOVER, every, topic, "12"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(4)
    killed_at = time.time()
    node = next(n for n in c.nodes if n.node_id == leader)
    node.stop(signal.SIGKILL)
    # When the metadata names a new leader (fencing plus election).
    elected = None
    while elected is None and time.time() < killed_at + 60:
        try:
            if placed(c.live(), topic)[0][0] not in (-1, leader):
                elected = time.time() - killed_at
        except Exception:  # noqa: BLE001 (a broker going away mid-request)
            pass
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=180)
    r = json.loads(out.strip().splitlines()[-1])
    after = [int(i) for i, t in r["sent_at"].items() if t >= killed_at]
    first = min((r["acked"][str(i)] for i in after if str(i) in r["acked"]), default=None)
    seen = node.start()
    node.wait_started(seen)
    return {"seconds": None if first is None else first - killed_at, "new_leader_in_metadata": elected,
            "lost": r["lost"], "read": r["read"], "acked": len(r["acked"]), "read_errors": r["errors"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer records and one round")
    a = ap.parse_args()
    rounds = 1 if a.quick else a.rounds
    n = 50_000 if a.quick else 200_000
    size = 1024
    tmp = tempfile.mkdtemp(prefix="strom-bench-cluster-", dir=os.environ.get("STROM_BENCH_DIR"))
    results = {"records": n, "record_size": size, "rounds": rounds, "produce": {}, "failover": []}
    try:
        path = records_file(tmp, size, n)
        with Cluster(tmp) as c:
            t = Target(c.bootstrap)
            k = 0
            for parts in (1, 6):
                for rf in (1, 3):
                    for driver in ("kcat", "strom"):
                        runs = []
                        for _ in range(rounds):
                            k += 1
                            topic = f"bench-{k}"
                            create(c.bootstrap, topic, parts, rf)
                            if driver == "kcat":
                                runs.append(kcat_produce(t, topic, path, n, "all", 0 if parts == 1 else None))
                            else:
                                runs.append(strom_produce(t, topic, size, n, "all"))
                        results["produce"][f"{parts}p-rf{rf}-{driver}"] = cell(runs)
                        print(f"produce {parts} partition(s), RF {rf}, {driver}: "
                              f"{statistics.median(runs):,.0f} records/s", flush=True)
            for i in range(rounds):
                f = failover(c, f"failover-{i}")
                results["failover"].append(f)
                print(f"failover: {f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p = results["produce"]
    print("\n| partitions | driver | RF 1 records/s | RF 3 records/s | RF3 / RF1 |")
    print("|---:|---|---:|---:|---:|")
    for parts in (1, 6):
        for driver in ("kcat", "strom"):
            one, three = p[f"{parts}p-rf1-{driver}"]["median"], p[f"{parts}p-rf3-{driver}"]["median"]
            print(f"| {parts} | {driver} | {one:,.0f} | {three:,.0f} | {three / one:.2f} |")
    secs = [f["seconds"] for f in results["failover"] if f["seconds"] is not None]
    if secs:
        print(f"\nfailover (broker.session.timeout.ms=2000): median {statistics.median(secs):.2f} s "
              f"(min {min(secs):.2f}, max {max(secs):.2f}); acknowledged records lost: "
              f"{sum(f['lost'] for f in results['failover'])}")
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench-cluster.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
