"""A Strom cluster of real `strom server` processes on loopback, for the
cluster tests: every node runs both roles (broker and controller, a voter
of controller.quorum.voters), each with its own client and controller port
and data directory, as `strom dev cluster` lays them out."""
import os
import re
import signal
import socket
import subprocess
import time

from conftest import STROM

# Short sessions so fencing is seen within a test; heartbeats well inside them.
FAST = ["broker.heartbeat.interval.ms=200", "broker.session.timeout.ms=2000",
        "group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=12",
        "transaction.state.log.num.partitions=6"]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Node:
    # What the process logs once it serves.
    started_line = r"strom broker started"

    def __init__(self, cluster, node_id, port, controller_port):
        self.cluster = cluster
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.dir = os.path.join(cluster.root, f"node-{node_id}")
        self.log_path = os.path.join(cluster.root, f"node-{node_id}.log")
        self.proc = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        c = self.cluster
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        if self.controller_port:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        sets = [f"listeners={listeners}", "controller.listener.names=CONTROLLER",
                f"controller.quorum.voters={c.voters}",
                "process.roles=" + ("broker,controller" if self.controller_port else "broker"),
                *c.sets]
        out = [STROM, "server", "--node-id", str(self.node_id), "--data-dir", self.dir]
        for s in sets:
            out += ["--set", s]
        return out

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log)
        return self

    def wait_started(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited early:\n{self.read_log()[-4000:]}")
            if re.search(self.started_line, self.read_log()):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"node {self.node_id} did not start:\n{self.read_log()[-4000:]}")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def restart(self):
        return self.start().wait_started()


class Cluster:
    """`voters` nodes with both roles, plus `brokers_only` broker-only nodes."""

    def __init__(self, root, voters=3, sets=()):
        self.root = root
        self.sets = list(FAST) + list(sets)
        ports = free_ports(2 * voters)
        self.nodes = [Node(self, i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(voters)]
        self.voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)

    def start(self):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_started()
        return self

    def add_broker(self):
        """A broker-only node with the next id (an observer of the quorum)."""
        (port,) = free_ports(1)
        n = Node(self, len(self.nodes) + 1, port, None)
        self.nodes.append(n)
        return n.start().wait_started()

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes if n.running())

    def node(self, node_id):
        return next(n for n in self.nodes if n.node_id == node_id)

    def stop(self):
        for n in self.nodes:
            n.stop()

    def logs(self, lines=60):
        out = []
        for n in self.nodes:
            text = n.read_log().splitlines() if os.path.exists(n.log_path) else []
            out.append(f"--- last {min(lines, len(text))} lines of {n.log_path}")
            out.extend(text[-lines:])
        return "\n".join(out)
