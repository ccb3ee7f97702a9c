"""Kafka Connect distributed workers for the interop suite: a worker process
started by `scripts/kafka connect`, its REST API, and a recorder that keeps
each REST exchange (status code and JSON body) in tests/interop/connect_rest/
so that the answers of a future Connect implementation can be compared with
Kafka's field by field.

STROM_RECORD_CONNECT_REST=1 rewrites the fixture files from this run; without
it each exchange is checked against them (after normalize(): worker ids,
temporary paths, cluster ids and commits are placeholders there).
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKA = ROOT / "scripts" / "kafka"
FIXTURES = Path(__file__).resolve().parent / "connect_rest"
RECORD = os.environ.get("STROM_RECORD_CONNECT_REST") == "1"

# Worker configs the tests set on top of scripts/kafka's connect-distributed.properties,
# each to make a two-worker cluster on a shared 2-core machine quick to converge:
WORKER_SETS = [
    # Plugins from their ServiceLoader manifests instead of scanning every jar (KIP-898).
    "plugin.discovery=service_load",
    # The lost worker's connectors and tasks go to the survivor at the rebalance that
    # removes it, instead of after the default 5 minutes (KIP-415's delayed reassignment).
    "scheduled.rebalance.max.delay.ms=0",
    # Worker group membership: the broker's minimum session (6 s), heartbeats each second.
    "session.timeout.ms=6000",
    "heartbeat.interval.ms=1000",
    # Sink tasks' consumers likewise, so a killed sink consumer leaves its group in 6 s, not 45 s.
    "consumer.session.timeout.ms=6000",
    "consumer.heartbeat.interval.ms=1000",
    # Source offsets and sink consumer offsets committed each second, not each 10 s.
    "offset.flush.interval.ms=1000",
    # The config topic's segments roll after half a second and any dirt makes it
    # cleanable, so that the broker compacts it while the test runs.
    "config.storage.segment.ms=500",
    "config.storage.min.cleanable.dirty.ratio=0.01",
    # Topic configs Connect passes on to CreateTopics for its internal topics.
    "config.storage.max.message.bytes=2097152",
    "offset.storage.segment.bytes=10485760",
    "status.storage.min.compaction.lag.ms=1000",
]
# Short-lived JVMs on a small machine: a smaller heap than connect-distributed.sh's 2 GB.
WORKER_ENV = {**os.environ, "KAFKA_HEAP_OPTS": "-Xms128M -Xmx512M"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout=60, interval=0.25):
    """Polls cond() until it returns a truthy value, which it returns."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.time() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


class Worker:
    """One ConnectDistributed process from `scripts/kafka connect`."""

    def __init__(self, root, name, bootstrap, sets=()):
        self.dir = os.path.join(root, name)
        self.port = free_port()
        self.bootstrap = bootstrap
        self.sets = [*WORKER_SETS, *sets]
        self.proc = None

    @property
    def id(self):
        """The worker id Connect reports (rest.advertised.host.name:port)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def spawn(self):
        """Starts scripts/kafka connect; wait() returns once the REST API answers."""
        cmd = [str(KAFKA), "connect", "--dir", self.dir, "--rest-port", str(self.port), "--bootstrap",
               self.bootstrap]
        for s in self.sets:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=WORKER_ENV)
        return self

    def wait(self):
        out, err = self.proc.communicate(timeout=180)
        assert self.proc.returncode == 0, f"worker {self.id} did not start:\n{err}\n{out}"
        return self

    def pid(self):
        try:
            with open(os.path.join(self.dir, "connect.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def kill9(self):
        """SIGKILL: the worker neither leaves its group nor commits anything."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(f"worker pid {pid} gone", lambda: not _alive(pid), timeout=30, interval=0.05)

    def stop(self):
        subprocess.run([str(KAFKA), "connect-stop", "--dir", self.dir], capture_output=True, timeout=90)

    def log(self):
        try:
            with open(os.path.join(self.dir, "connect.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def rest(worker, method, path, body=None, timeout=60):
    """One REST call; returns (status code, parsed JSON body or None). A 409 that
    Connect gives while its group rebalances is retried for up to a minute."""
    deadline = time.time() + 60
    while True:
        status, resp = _request(worker, method, path, body, timeout)
        if not _rebalancing(status, resp) or time.time() >= deadline:
            return status, resp
        time.sleep(0.5)


def _request(worker, method, path, body, timeout):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(worker.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, (json.loads(text) if text.strip() else None)
    except ValueError:
        return status, text


def normalize(value, tmp):
    """A REST body with its run-specific parts as placeholders: worker ids and
    URLs, the temporary directory, Kafka's cluster id and build commit, stack
    traces."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "kafka_cluster_id":
                out[k] = "<cluster_id>"
            elif k == "commit":
                out[k] = "<commit>"
            elif k == "trace" and v:
                out[k] = "<trace>"
            else:
                out[k] = normalize(v, tmp)
        return out
    if isinstance(value, list):
        return [normalize(v, tmp) for v in value]
    if isinstance(value, str):
        value = value.replace(tmp, "<dir>")
        return re.sub(r"127\.0\.0\.1:\d+", "<worker>", value)
    return value


class Recorder:
    """Makes REST calls and keeps them, by name, for the fixture file."""

    def __init__(self, scenario, tmp):
        self.path = FIXTURES / f"{scenario}.json"
        self.tmp = tmp
        self.calls = []
        self.expected = {}
        if not RECORD and self.path.exists():
            self.expected = {c["name"]: c for c in json.loads(self.path.read_text())["calls"]}

    def call(self, name, worker, method, path, body=None, volatile=()):
        """A call whose exchange goes to the fixture. `volatile` names response
        fields ("a/b" for nested ones, "*" for the whole body) that depend on
        timing or on which worker answers: kept, not compared."""
        status, resp = rest(worker, method, path, body)
        entry = {"name": name, "method": method, "path": path,
                 "request": normalize(body, self.tmp), "status": status,
                 "response": normalize(resp, self.tmp)}
        if volatile:
            entry["volatile"] = list(volatile)
        self.calls.append(entry)
        return status, resp

    def mismatches(self):
        """Differences between this run's exchanges and the fixture's, as text lines."""
        if RECORD:
            return []
        out = []
        for c in self.calls:
            want = self.expected.get(c["name"])
            if want is None:
                out.append(f"{c['name']}: not in {self.path.name} (record with STROM_RECORD_CONNECT_REST=1)")
                continue
            if (c["method"], c["path"], c["status"]) != (want["method"], want["path"], want["status"]):
                out.append(f"{c['name']}: {c['method']} {c['path']} -> {c['status']}, "
                           f"fixture {want['method']} {want['path']} -> {want['status']}")
            got, exp = _drop(c["response"], want.get("volatile", [])), _drop(want["response"], want.get("volatile", []))
            out += [f"{c['name']}: {d}" for d in _diff(got, exp, "")]
        return out

    def save(self):
        if RECORD:
            FIXTURES.mkdir(exist_ok=True)
            self.path.write_text(json.dumps({"calls": self.calls}, indent=2, sort_keys=False) + "\n")


def _rebalancing(status, resp):
    """Connect's 409 for a request that came during a rebalance or a config change
    ("Cannot complete request momentarily ...", "... conflicting operation (e.g.
    worker rebalance)"), not a conflict such as "already exists"."""
    msg = str(resp.get("message", "")) if isinstance(resp, dict) else ""
    return status == 409 and ("momentarily" in msg or "rebalance" in msg)


def _drop(body, paths):
    """The body without the fields at these paths ("a/0/b" is body["a"][0]["b"]; "*" is all of it)."""
    if "*" in paths:
        return None
    body = json.loads(json.dumps(body))
    for path in paths:
        *parents, last = path.split("/")
        node = body
        for p in parents:
            if isinstance(node, list) and p.isdigit() and int(p) < len(node):
                node = node[int(p)]
            else:
                node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return body


def _diff(got, exp, where):
    if isinstance(got, dict) and isinstance(exp, dict):
        out = []
        for k in sorted(set(got) | set(exp)):
            if k not in got:
                out.append(f"{where}/{k} missing")
            elif k not in exp:
                out.append(f"{where}/{k} not in the fixture")
            else:
                out += _diff(got[k], exp[k], f"{where}/{k}")
        return out
    if isinstance(got, list) and isinstance(exp, list):
        if all(isinstance(v, str) for v in got + exp):  # names (connectors, topics): in any order
            got, exp = sorted(got), sorted(exp)
        if len(got) != len(exp):
            return [f"{where}: {len(got)} items, fixture {len(exp)}"]
        return [d for i, (g, e) in enumerate(zip(got, exp)) for d in _diff(g, e, f"{where}[{i}]")]
    return [] if got == exp else [f"{where}: {got!r}, fixture {exp!r}"]
