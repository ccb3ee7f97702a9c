"""Which broker the interop suite runs against, and the marks for where Strom
and Apache Kafka differ.

STROM_INTEROP_AGAINST=kafka runs the suite against Apache Kafka 4.4 (a
combined-mode KRaft broker started by scripts/kafka), to prove the tests encode
Kafka's behaviour and not our reading of it. Unset (or `strom`), the suite runs
against `strom server` as always.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

AGAINST = os.environ.get("STROM_INTEROP_AGAINST", "strom")
if AGAINST not in ("strom", "kafka"):
    raise RuntimeError(f"STROM_INTEROP_AGAINST must be strom or kafka, not {AGAINST!r}")
AGAINST_KAFKA = AGAINST == "kafka"


def strom_gap(reason):
    """Kafka's behaviour that Strom does not have yet: expected to fail against
    Strom only (the reason names the request, what Kafka does and what Strom does)."""
    return pytest.mark.xfail(not AGAINST_KAFKA, reason=f"Strom differs from Kafka: {reason}", strict=False)


def strom_only(reason):
    """A test of Strom's own behaviour (its CLI, log lines, data files, extensions):
    skipped against Kafka, with the reason why."""
    return pytest.mark.skipif(AGAINST_KAFKA, reason=f"differs on purpose: {reason}")


def kafka_differs(reason):
    """Behaviour where Strom differs from Kafka on purpose: expected to fail
    against Kafka only, with the reason."""
    return pytest.mark.xfail(AGAINST_KAFKA, reason=f"differs on purpose: {reason}", strict=False)


class KafkaBroker:
    """An Apache Kafka 4.4 broker (combined-mode KRaft, scripts/kafka) with the
    same interface as conftest's Broker, on free loopback ports.

    `sets` are broker configs, as for strom (Strom takes Kafka's names);
    `--advertised-listener HOST:PORT` is the one strom argument with a Kafka
    equivalent. Storage is formatted once per session into a template and
    copied, which saves a JVM start per broker. data_dir is Kafka's log.dirs,
    laid out as Strom's (TOPIC-PARTITION directories of 20-digit segments).
    """

    KAFKA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "kafka")
    _template = None

    def __init__(self, data_dir, sets=(), args=()):
        self.root = os.path.dirname(data_dir)
        self.data_dir = os.path.join(self.root, "kafka", "logs")
        self.sets = self._translate(list(sets), list(args))
        self.port = _free_port()
        self.controller_port = _free_port()
        self.log_path = os.path.join(self.root, "kafka", "kafka.log")

    @staticmethod
    def _translate(sets, args):
        conf = dict(s.split("=", 1) for s in sets)
        # Strom's defaults where Kafka's shipped server.properties (which scripts/kafka follows) differs.
        conf.setdefault("group.initial.rebalance.delay.ms", "3000")
        # Kafka refuses heartbeat and session settings under its minimums (5 s, 45 s); lower the
        # minimums when a test asks for a faster group, as Kafka's own tests do.
        if "group.consumer.heartbeat.interval.ms" in conf:
            conf.setdefault("group.consumer.min.heartbeat.interval.ms", conf["group.consumer.heartbeat.interval.ms"])
        if "group.consumer.session.timeout.ms" in conf:
            conf.setdefault("group.consumer.min.session.timeout.ms", conf["group.consumer.session.timeout.ms"])
        it = iter(args)
        for a in it:
            if a == "--advertised-listener":
                conf["advertised.listeners"] = f"PLAINTEXT://{next(it)}"
            else:
                pytest.skip(f"strom server argument {a} has no Kafka equivalent")
        return [f"{k}={v}" for k, v in conf.items()]

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @classmethod
    def _formatted_template(cls):
        if cls._template is None:
            d = tempfile.mkdtemp(prefix="kafka-template-")
            subprocess.run([cls.KAFKA, "format", "--dir", d], check=True, capture_output=True)
            cls._template = os.path.join(d, "logs")
        return cls._template

    def start(self):
        if not os.path.exists(os.path.join(self.data_dir, "meta.properties")):
            shutil.copytree(self._formatted_template(), self.data_dir, dirs_exist_ok=True)
        cmd = [self.KAFKA, "start", "--dir", os.path.join(self.root, "kafka"), "--port", str(self.port),
               "--controller-port", str(self.controller_port)]
        for s in self.sets:
            cmd += ["--set", s]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kafka did not start:\n{r.stderr}")
        self.proc = True
        return self

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _pid(self):
        try:
            with open(os.path.join(self.root, "kafka", "kafka.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def stop(self):
        subprocess.run([self.KAFKA, "stop", "--dir", os.path.join(self.root, "kafka")], capture_output=True)
        self.proc = None

    def kill9(self):
        pid = self._pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            while True:  # the broker is a child of scripts/kafka's setsid, not ours: wait for it to vanish
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        self.proc = None

    def restart(self):
        return self.start()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(read, ok, timeout=10.0):
    """Calls read() until ok(value) holds or the timeout passes; returns the last
    value. Kafka's brokers apply topic and config changes from the metadata log a
    moment after the controller answers (read-after-write is eventually
    consistent there); Strom applies them before answering. A test that reads
    back what it just changed settles first, so it holds against both."""
    deadline = time.time() + timeout
    while True:
        value = read()
        if ok(value) or time.time() >= deadline:
            return value
        time.sleep(0.1)

