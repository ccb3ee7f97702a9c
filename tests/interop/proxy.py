"""A loopback TCP proxy whose connections can be cut at will: clients see
their connections to the broker drop mid-request, as on a flaky network."""
import socket
import threading


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to a target port; `cut()` drops every open connection."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.target = None
        self.lock = threading.Lock()
        self.conns = []
        self.cuts = 0
        self.closed = False

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self, target_port):
        self.target = target_port
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # Each direction closes the socket it read from, once the peer thread is done with it too.
        src.close()

    def cut(self):
        """Drops every open connection (both directions) without closing the
        descriptors under the threads still reading them: shutdown wakes them
        and each closes its own socket, so no descriptor is reused too early."""
        with self.lock:
            conns, self.conns = self.conns, []
            self.cuts += 1
        for pair in conns:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()
        self.cut()
