"""Network partitions between the nodes of a test cluster, made with a TCP
forwarder per link on loopback (no privileges needed).

Each node's broker listener is reached only through its `Link` (the node
advertises the link's port, so clients and the other brokers' replica
fetchers all go through it), and each voter reaches every other voter's
controller listener through a link of its own (its controller.quorum.voters
names the links). Cutting a node's links stops every byte to its broker and
between it and the other voters, both ways: packets dropped, as a switch
failing would, not connections refused. Bytes sent meanwhile wait in the
socket buffers and arrive after `heal()`, as TCP's retransmissions would
deliver them. What a cut does not stop: the node's own outbound
connections to the other brokers' listeners (its fetches of partitions
that others lead), which a per-destination forwarder cannot tell apart
from the others' traffic."""
import socket
import threading

from cluster import Cluster, Node


class Link:
    """A forwarder from a free loopback port to `target_port`."""

    def __init__(self, target_port):
        self.target = target_port
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.port = self.server.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.closed = False
        self.sockets = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self):
        self.open.clear()

    def heal(self):
        self.open.set()

    def close(self):
        self.closed = True
        self.open.set()
        self.server.close()
        with self.lock:
            for s in self.sockets:
                s.close()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        # A connection made during a cut gets no answer until it heals.
        self.open.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self.lock:
            self.sockets.append(upstream)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                self.open.wait()
                data = src.recv(65536)
                if not data or self.closed:
                    break
                self.open.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SplitNode(Node):
    """A node whose broker listener and controller links go through `Link`s."""

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.cluster.broker_links[self.node_id].port}"

    @property
    def direct(self):
        """The broker's own port: a client on its side of a split."""
        return f"127.0.0.1:{self.port}"

    def args(self):
        c = self.cluster
        voters = ",".join(
            f"{n.node_id}@127.0.0.1:{n.controller_port if n is self else c.quorum_links[(self.node_id, n.node_id)].port}"
            for n in c.nodes)
        out = []
        for a in super().args():
            out.append(f"controller.quorum.voters={voters}" if a.startswith("controller.quorum.voters=") else a)
        return out + ["--set", f"advertised.listeners=PLAINTEXT://127.0.0.1:{c.broker_links[self.node_id].port}"]


class SplitCluster(Cluster):
    """Three voters whose every link can be cut."""

    def __init__(self, root, sets=()):
        super().__init__(root, 3, sets)
        self.nodes = [SplitNode(self, n.node_id, n.port, n.controller_port) for n in self.nodes]
        self.broker_links = {n.node_id: Link(n.port) for n in self.nodes}
        self.quorum_links = {(a.node_id, b.node_id): Link(b.controller_port)
                             for a in self.nodes for b in self.nodes if a is not b}

    def links_of(self, node):
        return [self.broker_links[node.node_id]] + [
            link for (a, b), link in self.quorum_links.items() if node.node_id in (a, b)]

    def isolate(self, node):
        """Cuts `node` off from every other node and from clients that go
        through its advertised address."""
        for link in self.links_of(node):
            link.cut()

    def heal(self):
        for link in [*self.broker_links.values(), *self.quorum_links.values()]:
            link.heal()

    def stop(self):
        self.heal()
        super().stop()
        for link in [*self.broker_links.values(), *self.quorum_links.values()]:
            link.close()

