"""The fault proxy against a real loopback echo server: delay, bandwidth cap, cut."""
import socket
import threading
import time

import pytest

from edgecompress.lab.proxy import FaultProxy, LinkProfile


@pytest.fixture
def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return

            def echo(c=c):
                with c:
                    while (d := c.recv(65536)):
                        c.sendall(d)
            threading.Thread(target=echo, daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()
    srv.close()


def roundtrip(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t = time.perf_counter()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += s.recv(65536)
        return got, time.perf_counter() - t


def test_delay_applies_each_way(echo_server):
    with FaultProxy(echo_server, LinkProfile(delay_ms=50)) as p:
        got, dt = roundtrip(p.port, b"ping")
    assert got == b"ping"
    assert dt >= 0.095  # 50 ms up + 50 ms down


def test_rate_cap(echo_server):
    payload = b"x" * 100_000  # 800 kbit each way at 4 Mbit/s -> >= 0.2 s one way
    with FaultProxy(echo_server, LinkProfile(rate_bps=4_000_000)) as p:
        got, dt = roundtrip(p.port, payload)
    assert got == payload and dt >= 0.2


def test_cut_closes_open_connections(echo_server):
    with FaultProxy(echo_server) as p:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"a")
        assert s.recv(10) == b"a"
        assert p.cut() == 2  # client and upstream sides
        s.settimeout(5)
        assert s.recv(10) == b""  # closed under us
        s.close()
