#!/usr/bin/env python3
"""Strom against this machine's limits, in one run (see shared/BENCHMARKS.md).

Measures, in this order and on this machine:
  1. limits (the best of a few tries each): loopback TCP (iperf3),
     sequential 1 GiB writes into the page cache, with one final fdatasync
     and with O_DSYNC per MiB (dd), the 4 KiB fdatasync rate; and the
     produce floor for 1 KiB records (bench/floor: the unavoidable steps of
     a produce path at once, on the same cores; median of --rounds);
  2. produce: 100 B and 1 KiB records, 1 and 6 partitions, acks=1 and all,
     linger 5 ms, 1 MiB batches, driven by librdkafka (kcat) and by
     `strom perf produce`; for the 1-partition acks=all cells also by
     confluent-kafka (librdkafka under Python), the client issue 5 names;
  3. consume from offset 0 (records on disk, in page cache) by the same drivers;
  4. end-to-end latency at 1,000 and 20,000 records/s (acks=all, linger 0);
  5. the log cleaner (bench/cleaner.py): bytes cleaned per second against the
     disk's read+write bound, and produce to another partition while it cleans;
  6. broker memory idle with 1,000 partitions and after the runs, and start-up
     time with 1,000 partitions holding 5 GB (after a clean stop and after kill -9).
Each throughput cell is the median of --rounds runs (min and max kept in the
JSON) with its ratio to the limit that binds it. In a VM that hands free
memory back to its host (see balloon_reports_free_pages) every write-heavy
run, the limits' included, starts on recently freed memory (fresh_pages). Prints a table and writes
target/bench.json.

usage: scripts/bench            (installs kcat/iperf3/confluent-kafka, builds, runs this)
       .tools/venv/bin/python bench/run.py [--rounds 3] [--quick]
       .tools/venv/bin/python bench/run.py --validation-cost BASELINE_STROM [--rounds 5]
           (only the broker's produce CPU against a baseline build; docs/PERFORMANCE.md)
       .tools/venv/bin/python bench/run.py --cleaner [--quick]   (only the cleaner's row)
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STROM = os.environ.get("STROM_BIN", os.path.join(ROOT, "target", "release", "strom"))
FLOOR = os.path.join(ROOT, "target", "release", "strom-bench-floor")
MIB = 1 << 20


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A strom server on a temporary data directory."""

    def __init__(self, data, extra=(), binary=None):
        self.data, self.extra, self.binary = data, list(extra), binary or STROM
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=600):
        """Starts the broker; returns the seconds until it logs that it serves
        (after it opened and, after a crash, recovered every partition)."""
        path = os.path.join(os.path.dirname(self.data), f"strom-{self.port}.log")
        seen = open(path, "rb").read().count(b"strom broker started") if os.path.exists(path) else 0
        log = open(path, "ab")
        t = time.perf_counter()
        self.proc = subprocess.Popen([self.binary, "server", "--listen", self.bootstrap, "--data-dir", self.data,
                                      *self.extra], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if open(path, "rb").read().count(b"strom broker started") > seen:
                return time.perf_counter() - t
            if self.proc.poll() is not None:
                raise SystemExit(f"broker exited; see {path}")
            time.sleep(0.005)
        raise SystemExit("broker did not start")

    def rss_mb(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self):
        """CPU the broker's threads have run so far (nanosecond schedstat,
        summed over its threads; clock ticks are too coarse for one run)."""
        total = 0
        for path in glob.glob(f"/proc/{self.proc.pid}/task/*/schedstat"):
            try:
                total += int(open(path).read().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that just ended
        return total / 1e9

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)


# ---------------------------------------------------------------- limits

def loopback_mb_s():
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # the server needs a moment to listen
            r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "3", "-J"],
                               capture_output=True, text=True)
            out = json.loads(r.stdout or "{}")
            if "sum_received" in out.get("end", {}):
                return out["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
            time.sleep(0.1)
        raise SystemExit("iperf3 did not run")
    finally:
        server.kill()
        server.wait()


def disk_limits(directory, mib):
    path = os.path.join(directory, "dd.bin")
    def dd(*flags, count=mib):
        # A limit is the best the machine does: the fastest of 3, each
        # starting with no dirty pages left from earlier writes.
        best = 0.0
        for _ in range(3):
            sh("sync")
            fresh_pages(directory, count * 1.2)
            t = time.perf_counter()
            sh("dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={count}", *flags)
            secs = time.perf_counter() - t
            os.unlink(path)
            best = max(best, count * MIB / secs / 1e6)
        return best
    write_buffered = dd()  # into the page cache (what acks wait for under the default flush policy)
    write_fdatasync = dd("conv=fdatasync")
    write_dsync = dd("oflag=dsync", count=max(64, mib // 4))
    fresh_pages(directory, 64)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    block, n, t = b"\0" * 4096, 0, time.perf_counter()
    while time.perf_counter() - t < 2:
        os.write(fd, block)
        os.fdatasync(fd)
        n += 1
    rate = n / (time.perf_counter() - t)
    os.close(fd)
    os.unlink(path)
    return {"write_buffered_mb_s": write_buffered, "write_fdatasync_mb_s": write_fdatasync, "write_dsync_per_mib_mb_s": write_dsync,
            "fdatasync_4k_per_s": rate}


def floor_mb_s(directory, size, n):
    """The produce-path floor (bench/floor): record copy, CRC32C on both
    sides, loopback TCP and an append into the page cache, and nothing
    else. What it reaches bounds any Kafka-compatible produce path here."""
    sh("sync")
    fresh_pages(directory, run_mib(size, n))
    out = sh(FLOOR, "--bytes", str(size * n), "--record-size", str(size), "--dir", directory)
    return json.loads(out)["mb_s"]


def balloon_reports_free_pages():
    """True in a VM whose virtio balloon reports free pages to the host
    (VIRTIO_BALLOON_F_REPORTING, feature bit 5 of device 0x0005).

    There a guest page left free for about 2 s is handed back to the host,
    and the first write into it afterwards faults on the host: on the
    machines we measure on, writing 300 MB into the page cache runs at
    2.7-3.1 GB/s into memory freed a moment before and at 0.3-0.5 GB/s into
    memory freed 5 s before (dd, three times each). Which of the two a run
    meets depends on when the host last took pages back, and it decides
    the run more than the software under test does."""
    for dev in glob.glob("/sys/bus/virtio/devices/*"):
        try:
            with open(os.path.join(dev, "device")) as f:
                device = f.read().strip()
            with open(os.path.join(dev, "features")) as f:
                features = f.read().strip()
        except OSError:
            continue
        if device == "0x0005" and features[5:6] == "1":
            return True
    return False


REPORTING = balloon_reports_free_pages()


def fresh_pages(directory, mib):
    """Before a run that writes about `mib` MiB: makes that much guest
    memory recently freed (written into a scratch file, which is deleted),
    after waiting out a report the host may have scheduled, so every driver,
    the floor and dd meet the memory the way dd's best run does. Does
    nothing where free pages are not reported."""
    if not REPORTING:
        return
    time.sleep(2.5)
    path = os.path.join(directory, "fresh-pages.bin")
    sh("dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={int(mib)}")
    os.unlink(path)


def run_mib(size, n):
    """Memory a produce run of n records of `size` bytes may take fresh:
    its log, with room for record overheads and the processes' buffers."""
    return n * size * 1.2 / MIB + 64


# ---------------------------------------------------------------- drivers

def records_file(directory, size, n):
    path = os.path.join(directory, f"records-{size}-{n}.txt")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write((b"x" * (size - 1) + b"\n") * n)  # the newline is kcat's delimiter
    return path


def create(broker, topic, partitions):
    sh(STROM, "topics", "create", topic, "--partitions", str(partitions), "--bootstrap", broker.bootstrap)


def delete(broker, topic):
    subprocess.run([STROM, "topics", "delete", topic, "--bootstrap", broker.bootstrap], capture_output=True)


def kcat_produce(broker, topic, path, n, acks, partition=None):
    # One partition: name it (-p 0), as librdkafka then skips its partitioner.
    pin = ["-p", str(partition)] if partition is not None else []
    t = time.perf_counter()
    with open(path, "rb") as f:
        subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-q", *pin, "-X", f"acks={acks}",
                        "-X", "linger.ms=5", "-X", "batch.size=1048576", "-X", "enable.idempotence=false",
                        "-X", "queue.buffering.max.messages=1000000", "-X", "queue.buffering.max.kbytes=2097151"],
                       stdin=f, check=True)
    return n / (time.perf_counter() - t)


def strom_produce(broker, topic, size, n, acks, codec="none"):
    out = sh(STROM, "perf", "--bootstrap", broker.bootstrap, "produce", "--topic", topic, "--records", str(n),
             "--record-size", str(size), "--acks", acks, "-X", "linger.ms=5", "-X", "batch.size=1048576",
             "-X", "enable.idempotence=false", "-X", f"compression.type={codec}", "--json")
    return json.loads(out)["records_per_sec"]


PY_PRODUCE = """
import sys, time
from confluent_kafka import Producer
b, topic, size, n, acks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
p = Producer({"bootstrap.servers": b, "acks": acks, "linger.ms": 5, "batch.size": 1048576,
              "enable.idempotence": False, "queue.buffering.max.messages": 1000000,
              "queue.buffering.max.kbytes": 2097151})
v = b"x" * size
t = time.perf_counter()
for _ in range(n):
    while True:
        try:
            p.produce(topic, v)
            break
        except BufferError:
            p.poll(0.001)
assert p.flush(120) == 0
print(n / (time.perf_counter() - t))
"""

PY_CONSUME = """
import sys, time
from confluent_kafka import Consumer, TopicPartition
b, topic, parts, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Consumer({"bootstrap.servers": b, "group.id": "bench", "enable.auto.commit": False,
              "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
got, t = 0, time.perf_counter()
while got < n:
    got += len(c.consume(10000, 5.0))
print(n / (time.perf_counter() - t))
c.close()
"""


def py_produce(broker, topic, size, n, acks):
    return float(sh(sys.executable, "-c", PY_PRODUCE, broker.bootstrap, topic, str(size), str(n), acks))


def py_consume(broker, topic, partitions, n):
    return float(sh(sys.executable, "-c", PY_CONSUME, broker.bootstrap, topic, str(partitions), str(n)))


def kcat_consume(broker, topic, n):
    t = time.perf_counter()
    out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                          "-f", "\n", "-X", "fetch.max.bytes=52428800"], capture_output=True, check=True).stdout
    secs = time.perf_counter() - t
    assert out.count(b"\n") == n, (out.count(b"\n"), n)
    return n / secs


def strom_consume(broker, topic, n):
    out = sh(STROM, "perf", "--bootstrap", broker.bootstrap, "consume", "--topic", topic, "--records", str(n), "--json")
    return json.loads(out)["records_per_sec"]


def strom_e2e(broker, topic, rate, n):
    out = sh(STROM, "perf", "--bootstrap", broker.bootstrap, "e2e", "--topic", topic, "--records", str(n),
             "--rate", str(rate), "--record-size", "100", "-X", "linger.ms=0", "-X", "acks=all", "--json")
    return json.loads(out)["latency_ms"]


def cell(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


# ---------------------------------------------------------------- validation cost

def validation_cost(a, tmp, baseline):
    """The broker's CPU per produced GB and the produce rate of this build
    and of `baseline` (a build without record validation), 100 B and 1 KiB
    records, uncompressed and zstd, runs of the two alternating (the order
    swapped every round), each on a fresh broker and recently freed memory.
    The driver is this build's `strom perf` for both."""
    n_small, n_large = (500_000, 100_000) if a.quick else (5_000_000, 1_000_000)
    rows = []
    only = getattr(a, "only", None)
    for size, n in ((100, n_small), (1024, n_large)):
        for codec in ("none", "zstd"):
            if only and only != f"{size}:{codec}":
                continue
            runs = {"baseline": [], "this build": []}
            for r in range(a.rounds):
                order = [("baseline", baseline), ("this build", STROM)]
                for name, binary in order if r % 2 == 0 else order[::-1]:
                    data = os.path.join(tmp, f"vc-{len(rows)}-{r}-{name.split()[0]}")
                    broker = Broker(data, binary=binary)
                    broker.start()
                    create(broker, "vc", 1)
                    fresh_pages(tmp, run_mib(size, n))
                    cpu = broker.cpu_seconds()
                    rate = strom_produce(broker, "vc", size, n, "all", codec)
                    cpu = broker.cpu_seconds() - cpu
                    broker.stop()
                    shutil.rmtree(data, ignore_errors=True)
                    runs[name].append({"records_per_sec": rate, "broker_cpu_s_per_gb": cpu / (n * size / 1e9)})
            row = {"size": size, "codec": codec}
            for name, rs in runs.items():
                row[name] = {k: cell([x[k] for x in rs]) for k in ("records_per_sec", "broker_cpu_s_per_gb")}
            base, this = (row[k]["broker_cpu_s_per_gb"]["median"] for k in ("baseline", "this build"))
            row["cpu_ratio"] = this / base
            rows.append(row)
            print(f"validation {size:>5} B {codec:<4}  broker CPU-s/GB {base:.3f} -> {this:.3f} ({row['cpu_ratio']:.3f}); "
                  f"records/s {row['baseline']['records_per_sec']['median']:,.0f} -> "
                  f"{row['this build']['records_per_sec']['median']:,.0f}", flush=True)
    return rows


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer records and 1 GB instead of 5 GB (a smoke run)")
    ap.add_argument("--validation-cost", metavar="BASELINE_STROM",
                    help="only compare the broker's produce cost with a baseline build's (writes target/bench-validation.json)")
    ap.add_argument("--only", metavar="SIZE:CODEC",
                    help="with --validation-cost: one row only, e.g. 1024:zstd (100 or 1024; none or zstd)")
    ap.add_argument("--cleaner", action="store_true",
                    help="only the log cleaner's row: cleaning speed against the disk, produce while cleaning "
                         "(writes target/bench-cleaner.json)")
    a = ap.parse_args()
    if a.cleaner:
        from cleaner import cleaner_rows
        tmp = tempfile.mkdtemp(prefix="strom-bench-", dir=os.environ.get("STROM_BENCH_DIR"))
        try:
            write = disk_limits(tmp, 256 if a.quick else 1024)["write_buffered_mb_s"]
            rows = cleaner_rows(a, tmp, write)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with open(os.path.join(ROOT, "target", "bench-cleaner.json"), "w") as f:
            json.dump({"rounds": a.rounds, **rows}, f, indent=1)
        return
    if a.validation_cost:
        tmp = tempfile.mkdtemp(prefix="strom-bench-", dir=os.environ.get("STROM_BENCH_DIR"))
        try:
            rows = validation_cost(a, tmp, a.validation_cost)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with open(os.path.join(ROOT, "target", "bench-validation.json"), "w") as f:
            json.dump({"rounds": a.rounds, "rows": rows}, f, indent=1)
        return
    for tool in ("kcat", "iperf3", "dd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (scripts/bench installs it)")
    if not os.path.exists(FLOOR):
        raise SystemExit(f"{FLOOR} not found (scripts/bench builds it)")
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="strom-bench-", dir=os.environ.get("STROM_BENCH_DIR"))
    n_small, n_large = (200_000, 50_000) if a.quick else (1_000_000, 300_000)
    result = {"machine": {"nproc": os.cpu_count(), "mem_gb": os.sysconf("SC_PAGE_SIZE") *
                          os.sysconf("SC_PHYS_PAGES") / 1e9, "kernel": os.uname().release,
                          "balloon_reports_free_pages": REPORTING},
              "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(), "rounds": a.rounds}
    try:
        print(f"limits ... (free pages reported to the host: {REPORTING})", flush=True)
        limits = {"loopback_mb_s": max(loopback_mb_s() for _ in range(3)),
                  **disk_limits(tmp, 256 if a.quick else 1024)}
        result["limits"] = limits
        print(json.dumps(limits, indent=1), flush=True)
        # Under the default flush policy (Kafka's: no fsync per acknowledgement)
        # an acknowledged record is in the page cache; with flush.messages=1
        # it is on disk, and the fdatasync write rate binds.
        produce_limit = min(limits["loopback_mb_s"], limits["write_buffered_mb_s"])
        durable_limit = min(limits["loopback_mb_s"], limits["write_fdatasync_mb_s"])
        # The same steps at once on the same cores: the 1 KiB produce floor.
        floor = cell([floor_mb_s(tmp, 1024, n_large) for _ in range(a.rounds)])
        floor["ratio_to_limit"] = floor["median"] / produce_limit
        result["floor_1k"] = floor
        print(f"floor    1024 B  {floor['median']:8.1f} MB/s (min {floor['min']:.0f}, max {floor['max']:.0f})  "
              f"{floor['ratio_to_limit']:.2f} of limit", flush=True)

        broker = Broker(os.path.join(tmp, "data"))
        broker.start()
        result["produce"], result["consume"] = [], []
        kcat_produce(broker, "warmup", records_file(tmp, 100, n_small), n_small, "all")
        delete(broker, "warmup")
        keep = {}
        for size, n in ((100, n_small), (1024, n_large)):
            path = records_file(tmp, size, n)
            for partitions in (1, 6):
                for acks in ("1", "all"):
                    pin = 0 if partitions == 1 else None
                    drivers = [("librdkafka (kcat)", lambda t: kcat_produce(broker, t, path, n, acks, pin)),
                               ("strom perf", lambda t: strom_produce(broker, t, size, n, acks))]
                    if partitions == 1 and acks == "all":
                        drivers.append(("confluent-kafka", lambda t: py_produce(broker, t, size, n, acks)))
                    for name, run in drivers:
                        rates = []
                        for r in range(a.rounds):
                            topic = f"p-{size}-{partitions}-{acks}-{len(rates)}-{name.split()[0]}"
                            create(broker, topic, partitions)
                            fresh_pages(tmp, run_mib(size, n))
                            rates.append(run(topic))
                            if r == 0 and acks == "all" and name.startswith("librdkafka"):
                                keep[(size, partitions)] = (topic, n)
                            else:
                                delete(broker, topic)
                        c = cell(rates)
                        mb = c["median"] * size / 1e6
                        row = {"size": size, "partitions": partitions, "acks": acks, "driver": name, **c,
                               "mb_s": mb, "ratio_to_limit": mb / produce_limit}
                        of_floor = ""
                        if size == 1024:
                            row["ratio_to_floor"] = mb / floor["median"]
                            of_floor = f", {row['ratio_to_floor']:.2f} of floor"
                        result["produce"].append(row)
                        print(f"produce {size:>5} B  p={partitions} acks={acks:<3} {name:<18} "
                              f"{c['median']:>12,.0f} rec/s {mb:8.1f} MB/s  {row['ratio_to_limit']:.2f} of limit"
                              f"{of_floor}", flush=True)
        # Acknowledged only once on disk: flush.messages=1 (group commit), 1 KiB, one partition.
        path = records_file(tmp, 1024, n_large)
        for name, run in (("librdkafka (kcat)", lambda t: kcat_produce(broker, t, path, n_large, "all", 0)),
                          ("strom perf", lambda t: strom_produce(broker, t, 1024, n_large, "all"))):
            rates = []
            for r in range(a.rounds):
                topic = f"durable-{r}-{name.split()[0]}"
                sh(STROM, "topics", "create", topic, "--partitions", "1", "--config", "flush.messages=1",
                   "--bootstrap", broker.bootstrap)
                fresh_pages(tmp, run_mib(1024, n_large))
                rates.append(run(topic))
                delete(broker, topic)
            c = cell(rates)
            mb = c["median"] * 1024 / 1e6
            row = {"size": 1024, "partitions": 1, "acks": "all", "flush_messages": 1, "driver": name, **c,
                   "mb_s": mb, "ratio_to_limit": mb / durable_limit}
            result["produce"].append(row)
            print(f"produce  1024 B  p=1 acks=all flush.messages=1 {name:<18} {c['median']:>10,.0f} rec/s "
                  f"{mb:8.1f} MB/s  {row['ratio_to_limit']:.2f} of fdatasync limit", flush=True)
        for (size, partitions), (topic, n) in keep.items():
            drivers = [("librdkafka (kcat)", lambda: kcat_consume(broker, topic, n)),
                       ("strom perf", lambda: strom_consume(broker, topic, n))]
            if partitions == 1:
                drivers.append(("confluent-kafka", lambda: py_consume(broker, topic, partitions, n)))
            for name, run in drivers:
                c = cell([run() for _ in range(a.rounds)])
                mb = c["median"] * size / 1e6
                row = {"size": size, "partitions": partitions, "driver": name, **c, "mb_s": mb,
                       "ratio_to_limit": mb / limits["loopback_mb_s"]}
                result["consume"].append(row)
                print(f"consume {size:>5} B  p={partitions} {name:<18} {c['median']:>12,.0f} rec/s {mb:8.1f} MB/s  "
                      f"{row['ratio_to_limit']:.2f} of loopback", flush=True)
        result["e2e"] = []
        for rate, secs in ((1000, 5), (20000, 5)):
            runs = [strom_e2e(broker, f"e2e-{rate}-{i}", rate, rate * secs) for i in range(a.rounds)]
            row = {"rate": rate, **{k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "p99_9", "max")},
                   "runs": runs}
            result["e2e"].append(row)
            print(f"e2e {rate:>6}/s  p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} ms  p99.9 {row['p99_9']:.2f} ms  "
                  f"max {row['max']:.2f} ms (medians of {a.rounds})", flush=True)
        result["rss_after_runs_mb"] = broker.rss_mb()
        broker.stop()

        from cleaner import cleaner_rows
        result["cleaner"] = cleaner_rows(a, tmp, limits["write_buffered_mb_s"])

        # Memory idle with 1,000 partitions, then start-up with them holding 5 GB.
        idle = Broker(os.path.join(tmp, "idle"))
        idle.start()
        for t in range(10):
            create(idle, f"idle-{t}", 100)
        time.sleep(3)
        result["rss_idle_1000_partitions_mb"] = idle.rss_mb()
        gb = 1 if a.quick else 5
        chunk = records_file(tmp, 1024, 500_000)  # 512 MB
        for i in range(gb * 2):
            kcat_produce(idle, f"idle-{i % 10}", chunk, 500_000, "1")
        # kill -9 while the logs are dirty: the next start scans every segment written.
        idle.stop(signal.SIGKILL)
        result["startup_after_kill9_s"] = idle.start()
        idle.stop()
        result["startup_clean_s"] = idle.start()
        result["data_gb"] = gb * 2 * 500_000 * 1024 / 1e9
        idle.stop()
        print(f"rss idle 1000 partitions {result['rss_idle_1000_partitions_mb']:.1f} MB, after runs "
              f"{result['rss_after_runs_mb']:.1f} MB; start-up with 1000 partitions and {result['data_gb']:.1f} GB: "
              f"clean {result['startup_clean_s']:.2f} s, after kill -9 {result['startup_after_kill9_s']:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = time.time() - started
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"done in {result['seconds']:.0f} s; target/bench.json written")


if __name__ == "__main__":
    main()
