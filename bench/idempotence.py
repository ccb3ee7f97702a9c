#!/usr/bin/env python3
"""Idempotent vs plain produce throughput, driven by librdkafka (kcat), in one run.

Starts target/release/strom on a temporary directory, then alternates plain
and idempotent runs (warm-up first) that pipe the same pre-generated file of
100-byte records into `kcat -P` (acks=all, linger 5 ms, 1 MiB batches) to one
partition. Reports records/s per run, the medians and their ratio; writes
target/bench-idempotence.json.

usage: .tools/venv/bin/python bench/idempotence.py [--records N] [--rounds R]
(the venv's confluent-kafka deletes each run's topic so runs start alike)
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STROM = os.environ.get("STROM_BIN", os.path.join(ROOT, "target", "release", "strom"))


def start_broker(data):
    log = open(os.path.join(os.path.dirname(data), "strom.log"), "wb")
    proc = subprocess.Popen([STROM, "server", "--listen", "127.0.0.1:0", "--data-dir", data],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        text = open(log.name, "rb").read().decode("utf-8", "replace")
        m = re.search(r"strom broker started listen=127\.0\.0\.1:(\d+)", text)
        if m:
            return proc, f"127.0.0.1:{m.group(1)}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("broker did not start")


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delete_topic(bootstrap, topic):
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:  # without confluent-kafka the data stays; runs get noisier
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    subprocess.run(["sync"], check=False)


def run(bootstrap, topic, path, idempotent):
    conf = ["-X", "acks=all", "-X", "linger.ms=5", "-X", "batch.size=1048576",
            "-X", "queue.buffering.max.messages=1000000", "-X", f"enable.idempotence={str(idempotent).lower()}"]
    t = time.perf_counter()
    with open(path, "rb") as f:
        subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-q", *conf], stdin=f, check=True)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    if not shutil.which("kcat"):
        raise SystemExit("kcat not found (scripts/test installs it: apt-get install kcat)")
    tmp = tempfile.mkdtemp(prefix="strom-bench-")
    path = os.path.join(tmp, "records.txt")
    line = b"x" * 99 + b"\n"  # 100-byte records (the newline is the delimiter)
    with open(path, "wb") as f:
        f.write(line * a.records)
    proc, bootstrap = start_broker(os.path.join(tmp, "data"))
    try:
        run(bootstrap, "warmup", path, False)
        rates = {"plain": [], "idempotent": []}
        cpu = {"plain": [], "idempotent": []}
        for r in range(a.rounds):
            for mode in ("plain", "idempotent") if r % 2 == 0 else ("idempotent", "plain"):
                topic = f"{mode}-{r}"
                before = cpu_seconds(proc.pid)
                secs = run(bootstrap, topic, path, mode == "idempotent")
                used = cpu_seconds(proc.pid) - before
                rates[mode].append(a.records / secs)
                cpu[mode].append(used * 1e9 / a.records)
                delete_topic(bootstrap, topic)  # keep page cache and writeback alike for every run
                print(f"round {r} {mode:>10}: {a.records / secs:>12,.0f} records/s, "
                      f"broker CPU {used * 1e9 / a.records:6.1f} ns/record")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = med["idempotent"] / med["plain"]
    print(f"median plain {med['plain']:,.0f} records/s, idempotent {med['idempotent']:,.0f} records/s, "
          f"ratio {ratio:.3f}; broker CPU per record: plain {med_cpu['plain']:.1f} ns, "
          f"idempotent {med_cpu['idempotent']:.1f} ns")
    out = {"records": a.records, "record_bytes": 100, "rates": rates, "median": med, "ratio": ratio,
           "broker_cpu_ns_per_record": cpu, "median_broker_cpu_ns_per_record": med_cpu,
           "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()}
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench-idempotence.json"), "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
