"""Drives the Java client (kafka-clients, tests/interop/java) from pytest.

One launcher JVM per test file: `JavaClient.run(scenario, bootstrap, *args)`
writes a request line to its stdin and reads the scenario's finding lines back
until its `__END__` line. The JVM's stderr (client logs, stack traces) goes to
a file whose tail is shown when a scenario fails.
"""
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

import jvm

JAVA_DIR = Path(__file__).resolve().parent / "java"


def build():
    """Builds the launcher when its sources changed (a no-op otherwise)."""
    jvm.build(JAVA_DIR)


class ScenarioFailed(AssertionError):
    """A Java scenario's own check failed, or it threw."""


class JavaClient:
    """A running launcher JVM."""

    def __init__(self):
        build()
        self.err = tempfile.NamedTemporaryFile(prefix="java-client-", suffix=".log", delete=False)
        cp = jvm.classpath(JAVA_DIR, "interop.jar")
        self.proc = subprocess.Popen(
            ["java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.logFile=System.err",
             "-cp", cp, "io.strom.interop.Launcher"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=jvm.pump, args=(self.proc, self.lines), daemon=True).start()

    def stderr_tail(self, n=60):
        return jvm.tail(self.err.name, n)

    def run(self, scenario, bootstrap, *args, timeout=180):
        """Runs one scenario; returns its finding lines split into words."""
        self.proc.stdin.write("\t".join([scenario, bootstrap, *map(str, args)]) + "\n")
        self.proc.stdin.flush()
        found = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise ScenarioFailed(f"java scenario {scenario} timed out\n{self.stderr_tail()}") from None
            if line is None:
                raise ScenarioFailed(f"java launcher exited ({self.proc.poll()})\n{self.stderr_tail()}")
            words = line.split("\t")
            if words[0] == "__END__":
                if words[1] != "OK":
                    raise ScenarioFailed(f"java scenario {scenario}: {' '.join(words[2:])}\n{self.stderr_tail()}")
                return found
            found.append(words)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.err.name)
