"""Runs the Kafka Streams applications (tests/interop/kstreams) from pytest.

`StreamsApp(topology, bootstrap, app_id, state_dir)` starts one application
instance in its own JVM; `wait_state("RUNNING")` follows its state changes,
`kill9()` SIGKILLs it, `start()` starts it again on the same state directory
(so Streams keeps its process id, hence its transactional ids), and `stop()`
closes its stdin so it closes the KafkaStreams instance cleanly.
"""
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

import jvm

APP_DIR = Path(__file__).resolve().parent / "kstreams"


def build():
    """Builds the applications when their sources changed (a no-op otherwise)."""
    jvm.build(APP_DIR)


class AppFailed(AssertionError):
    """The application instance died, reported a stream thread error, or timed out."""


class StreamsApp:
    """One Kafka Streams application instance (a JVM)."""

    def __init__(self, topology, bootstrap, app_id, state_dir, *overrides):
        self.cmd_args = [topology, bootstrap, app_id, state_dir, *overrides]
        self.err = tempfile.NamedTemporaryFile(prefix=f"kstreams-{app_id}-", suffix=".log", delete=False)
        self.proc = None
        self.start()

    def start(self):
        cp = jvm.classpath(APP_DIR, "kstreams.jar")
        self.states = []
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             f"-Dorg.slf4j.simpleLogger.defaultLogLevel={os.environ.get('KSTREAMS_LOG', 'warn')}",
             "-Dorg.slf4j.simpleLogger.logFile=System.err",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-cp", cp, "io.strom.kstreams.App", *self.cmd_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1)
        threading.Thread(target=jvm.pump, args=(self.proc, self.lines), daemon=True).start()
        return self

    def stderr_tail(self, n=60):
        return jvm.tail(self.err.name, n)

    def _next(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AppFailed(f"streams app timed out (states {self.states})\n{self.stderr_tail()}") from None
        if line is None:
            raise AppFailed(f"streams app exited ({self.proc.wait()}), states {self.states}\n{self.stderr_tail()}")
        if line.startswith("ERROR"):
            raise AppFailed(f"streams app: {line}\n{self.stderr_tail()}")
        if line.startswith("STATE "):
            self.states.append(line[6:])
        return line

    def wait_state(self, state, timeout=90):
        """Waits until the instance reports `state` (as KafkaStreams.State names it)."""
        while state not in self.states:
            self._next(timeout)

    def check(self):
        """Raises when the instance has reported an error or died since the last look."""
        while not self.lines.empty():
            self._next(0)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout=90):
        """Closes the instance cleanly: it commits what it processed and leaves its group."""
        if self.proc.poll() is not None:
            return
        self.proc.stdin.close()
        while self._next(timeout) != "CLOSED":
            pass
        self.proc.wait(30)

    def close(self, keep_log=False):
        """Ends the JVM however it is (for teardown) and drops its log unless asked to keep it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not keep_log:
            os.unlink(self.err.name)
