"""A userspace TCP proxy that makes a bad link: delay, jitter, stalls, bandwidth cap, cuts.

The kernels here have no ``netem``; this proxy stands in for it in the lab and the
fault tests. It listens on a loopback port and forwards to ``upstream`` (host, port).
Every chunk read from either side is held for ``delay_ms`` (± ``jitter_ms``); with
probability ``loss`` a chunk is held an extra ``stall_ms`` more — what a lost TCP segment
costs the application (a retransmission time-out), since a userspace proxy cannot drop
bytes from a TCP stream without corrupting it. ``rate_bps`` caps throughput per direction.
``cut()`` closes every open connection at once (a link that dies mid-transfer);
``refuse`` makes new connections close immediately.

Only ever forwards to the upstream the caller gives (loopback or a lab namespace).
"""
from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LinkProfile:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    stall_ms: float = 200.0
    rate_bps: float = 0.0          # 0 = unlimited
    seed: int = 0


@dataclass
class ProxyStats:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    stalls: int = 0
    cuts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], link: LinkProfile | None = None,
                 listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.upstream = upstream
        self.link = link or LinkProfile()
        self.stats = ProxyStats()
        self.refuse = False
        self._rng = random.Random(self.link.seed)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(listen)
        self._sock.listen(64)
        self.address = self._sock.getsockname()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def cut(self) -> int:
        """Close every open connection now; returns how many were cut."""
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.stats.lock:
            self.stats.cuts += len(conns)
        return len(conns)

    def close(self) -> None:
        self._closed.set()
        try:
            self._sock.close()
        except OSError:
            pass
        self.cut()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- internals --------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, server))
            with self.stats.lock:
                self.stats.connections += 1
            for src, dst, attr in ((client, server, "bytes_up"), (server, client, "bytes_down")):
                threading.Thread(target=self._pump, args=(src, dst, attr), daemon=True).start()

    def _hold(self, nbytes: int) -> None:
        link = self.link
        wait = link.delay_ms
        if link.jitter_ms:
            wait += self._rng.uniform(-link.jitter_ms, link.jitter_ms)
        if link.loss and self._rng.random() < link.loss:
            wait += link.stall_ms
            with self.stats.lock:
                self.stats.stalls += 1
        if link.rate_bps:
            wait += 1000.0 * nbytes * 8 / link.rate_bps
        if wait > 0:
            time.sleep(wait / 1000.0)

    def _pump(self, src: socket.socket, dst: socket.socket, counter: str) -> None:
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                self._hold(len(data))
                dst.sendall(data)
                with self.stats.lock:
                    setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
