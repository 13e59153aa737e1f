"""Real PostgreSQL and Redis servers for tests, started on loopback in a folder of their own.

``Postgres.start()``: ``initdb`` + ``pg_ctl start`` as the ``postgres`` user (needs root and
PostgreSQL 15 at ``/usr/lib/postgresql/15/bin``, or ``pg_ctl`` on PATH), ``createdb(name)`` -> URL.
``Redis.start()``: ``redis-server`` with its append-only file, ``restart()`` keeps the data.
``why_not_*()`` say why a server cannot run here (tests skip with that reason).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    if (PG_BIN / name).exists():
        return str(PG_BIN / name)
    return shutil.which(name)


def why_not_postgres() -> str | None:
    if not _pg_bin("initdb") or not _pg_bin("pg_ctl"):
        return "PostgreSQL server binaries not found (apt-get install postgresql; make setup does)"
    if os.geteuid() != 0:
        return "starting a throwaway PostgreSQL here needs root (it runs as user postgres)"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' user (apt-get install postgresql creates it)"
    return None


def why_not_redis() -> str | None:
    return None if shutil.which("redis-server") else "redis-server not found (apt-get install redis-server)"


class Postgres:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ec-pg-", dir="/var/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"

    def _as_postgres(self, argv: list[str], check=True) -> subprocess.CompletedProcess:
        cmd = " ".join(f"'{a}'" for a in argv)
        res = subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", cmd], capture_output=True, text=True,
                             timeout=120)
        if check and res.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {res.stderr[-800:]} {res.stdout[-400:]}")
        return res

    def start(self) -> "Postgres":
        shutil.chown(self.dir, "postgres", "postgres")
        if not self.data.exists():
            self._as_postgres([_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])
        self._as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o",
                           f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                           f"-c max_connections=200", "-w", "start"])
        return self

    def stop(self) -> None:
        self._as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)

    def createdb(self, name: str) -> str:
        self._as_postgres([_pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(self.port),
                           "-U", "postgres", name])
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ec-redis-"))
        self.port = free_port()
        self.proc = None
        self.log = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "Redis":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.log.exists() and "Ready to accept connections" in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {self.log.read_text(errors='replace')[-800:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()             # SIGTERM: redis flushes its append-only file and exits
            self.proc.wait(15)
        if self.log.exists():
            self.log.write_text("")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
