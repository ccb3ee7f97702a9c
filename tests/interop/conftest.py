"""Fixtures for interop tests: a real `strom server` process per test.

The binary comes from $STROM_BIN or target/release/strom (scripts/test builds it).
With STROM_INTEROP_AGAINST=kafka the same fixtures start an Apache Kafka 4.4
broker instead (yardstick.KafkaBroker, via scripts/kafka), so the suite shows
it encodes Kafka's behaviour; see yardstick.py for the marks where they differ.
"""
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from yardstick import AGAINST_KAFKA, KafkaBroker

ROOT = Path(__file__).resolve().parents[2]
STROM = os.environ.get("STROM_BIN", str(ROOT / "target" / "release" / "strom"))


class Broker:
    """A strom server process on an ephemeral loopback port."""

    def __init__(self, data_dir, sets=(), args=()):
        self.data_dir = data_dir
        self.sets = list(sets)
        self.args = list(args)
        self.port = 0
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir), "strom.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        args = [STROM, "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        for s in self.sets:
            args += ["--set", s]
        args += self.args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strom exited early:\n{self.read_log()}")
            m = re.search(r"strom broker started listen=127\.0\.0\.1:(\d+)", self.read_log())
            if m and (self.port == 0 or int(m.group(1)) == self.port):
                self.port = int(m.group(1))
                return self
            time.sleep(0.05)
        raise RuntimeError(f"strom did not start:\n{self.read_log()}")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart(self):
        """Starts again on the same port (clients keep their bootstrap)."""
        open(self.log_path, "wb").close()
        return self.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remembers each phase's outcome on the test item so fixtures can react to failures."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def make_broker(request):
    dirs, brokers = [], []

    def make(sets=(), args=()):
        d = tempfile.mkdtemp(prefix="strom-it-")
        dirs.append(d)
        cls = KafkaBroker if AGAINST_KAFKA else Broker
        b = cls(os.path.join(d, "data"), sets, args).start()
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:  # CI keeps only the output: show what the broker said
        for b in brokers:
            lines = b.read_log().splitlines()
            print(f"--- last {min(len(lines), 80)} lines of {b.log_path}")
            print("\n".join(lines[-80:]))


@pytest.fixture
def broker(make_broker):
    return make_broker()
