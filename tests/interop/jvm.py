"""What the Java-driven interop helpers share: building a Maven project,
its classpath, pumping a JVM's stdout into a queue, and the tail of its
stderr log."""
import os
import subprocess
from pathlib import Path


def build(project: Path):
    """Builds `project` (its `build` script) when its sources changed (a no-op otherwise)."""
    subprocess.run([str(project / "build")], check=True)


def classpath(project: Path, jar: str) -> str:
    """The project's jar and its copied dependencies."""
    return f"{project / 'target' / jar}{os.pathsep}{project / 'target' / 'lib' / '*'}"


def pump(proc, lines):
    """Puts each stdout line of `proc` into `lines`, then None when it exits."""
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def tail(path, n=60):
    """The last `n` lines of the log file at `path`."""
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])
