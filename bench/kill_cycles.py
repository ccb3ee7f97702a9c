"""Random SIGKILL/restart cycles of a three-node cluster (every node a broker
and a controller voter) under produce and consume load, with a checker of
acknowledged writes (issue: cluster, part 2). Not run in CI: a soak.

- A topic of 3 partitions, replication factor 3, min.insync.replicas=2.
- A confluent-kafka producer (idempotent, acks=all) writes numbered records
  as fast as they are acknowledged, remembering which were; a consumer
  group reads along and commits.
- Each cycle SIGKILLs a random node (often the active controller or a
  coordinator), waits 0.5-3 s, restarts it and waits for it to be back in
  every ISR.
- At the end every acknowledged record must be read back exactly once, and
  in each partition in the order it was produced.

Writes target/kill-cycles.json and prints a summary.

usage: scripts/bench --kill-cycles [--cycles 100] [--seed N]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, create, placed  # noqa: E402
from run import ROOT, STROM  # noqa: E402

TOPIC, PARTITIONS = "soak", 3


class Writer(threading.Thread):
    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.acked, self.fatal, self.stop = {}, [], threading.Event()
        self.last_ack = time.time()
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                           "linger.ms": 2, "message.timeout.ms": 120000, "request.timeout.ms": 5000,
                           "error_cb": lambda e: e.fatal() and self.fatal.append(str(e))})

    def on(self, err, m):
        if err is None:
            self.acked[int(m.value())] = (m.partition(), m.offset())
            self.last_ack = time.time()

    def run(self):
        i = 0
        while not self.stop.is_set() and not self.fatal:
            self.p.produce(TOPIC, value=str(i).encode(), on_delivery=self.on)
            self.p.poll(0)
            i += 1
            time.sleep(0.001)
        self.p.flush(120)


class Reader(threading.Thread):
    """A consumer group member reading along (load on the coordinators)."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.read, self.stop = 0, threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-readers",
                           "auto.offset.reset": "earliest", "enable.auto.commit": True,
                           "auto.commit.interval.ms": 500})

    def run(self):
        self.c.subscribe([TOPIC])
        while not self.stop.is_set():
            m = self.c.poll(0.2)
            if m is not None and not m.error():
                self.read += 1
        self.c.close()


def read_back(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-check", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    out, eof, deadline = {p: [] for p in range(PARTITIONS)}, set(), time.time() + 120
    while len(eof) < PARTITIONS and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        out[m.partition()].append(int(m.value()))
    c.close()
    return out


def controller(bootstrap):
    """The metadata quorum's leader as `strom cluster describe` shows it
    (DescribeQuorum), or None while there is none."""
    try:
        out = subprocess.run([STROM, "cluster", "describe", "--bootstrap", bootstrap],
                             capture_output=True, text=True, timeout=30).stdout
    except subprocess.TimeoutExpired:
        return None
    for line in out.splitlines():
        f = line.split()
        if len(f) > 1 and f[0].isdigit() and f[1] == "leader":
            return int(f[0])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed} (replay: scripts/bench --kill-cycles --cycles {a.cycles} --seed {seed})", flush=True)
    tmp = tempfile.mkdtemp(prefix="strom-kill-cycles-", dir=os.environ.get("STROM_BENCH_DIR"))
    cycles, started = [], time.time()
    try:
        with Cluster(tmp) as c:
            every = ",".join(n.bootstrap for n in c.nodes)
            create(c.bootstrap, TOPIC, PARTITIONS, 3)
            w, r = Writer(every), Reader(every)
            w.start()
            r.start()
            time.sleep(3)
            for i in range(a.cycles):
                victim = rng.choice(c.nodes)
                was_controller = controller(c.live()) == victim.node_id
                acked_before = len(w.acked)
                victim.stop(signal.SIGKILL)
                killed_at = time.time()
                time.sleep(rng.uniform(0.5, 3.0))
                seen = victim.start()
                victim.wait_started(seen)
                rejoined = None
                while time.time() < killed_at + 90:
                    try:
                        if all(len(isr) == 3 for _, isr in placed(c.live(), TOPIC)):
                            rejoined = time.time() - killed_at
                            break
                    except Exception:  # noqa: BLE001 (a broker going away mid-request)
                        pass
                    time.sleep(0.2)
                row = {"cycle": i, "victim": victim.node_id, "controller": was_controller,
                       "acked_during": len(w.acked) - acked_before,
                       "back_in_isr_s": None if rejoined is None else round(rejoined, 2)}
                cycles.append(row)
                print(row, flush=True)
                if w.fatal:
                    break
            w.stop.set()
            w.join(180)
            r.stop.set()
            r.join(30)
            got = read_back(c.live())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    flat = [v for vs in got.values() for v in vs]
    lost = sorted(set(w.acked) - set(flat))
    dups = len(flat) - len(set(flat))
    disordered = sum(1 for vs in got.values() for x, y in zip(vs, vs[1:]) if y < x)
    result = {"seed": seed, "cycles": len(cycles), "seconds": round(time.time() - started),
              "acknowledged": len(w.acked), "read": len(flat), "lost": len(lost), "lost_sample": lost[:10],
              "duplicates": dups, "out_of_order": disordered, "fatal_producer_errors": w.fatal,
              "group_read": r.read, "controller_kills": sum(1 for x in cycles if x["controller"]),
              "slowest_rejoin_s": max((x["back_in_isr_s"] or 0) for x in cycles) if cycles else None,
              "never_rejoined": sum(1 for x in cycles if x["back_in_isr_s"] is None),
              "cycles_detail": cycles}
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "kill-cycles.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "cycles_detail"}, indent=1))
    ok = not lost and not dups and not disordered and not w.fatal
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
