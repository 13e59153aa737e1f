"""The local transport: real subprocesses on this machine."""
from __future__ import annotations

import os
import time

from edgecompress.transports.local import LocalTransport


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie not yet reaped counts as gone
        return f.read().split(")")[-1].split()[0] == "Z"


def test_run_collects_output_exit_status_and_keeps_arguments_intact():
    t = LocalTransport()
    weird = "a b; echo injected $HOME 'q' \"d\""
    res = t.run(["python3", "-c", "import sys; print(sys.argv[1]); sys.exit(3)", weird])
    assert res.stdout == weird + "\n"
    assert res.exit_code == 3 and not res.ok and res.signal is None


def test_signal_killed_process_is_reported_as_killed():
    res = LocalTransport().run(["sh", "-c", "kill -9 $$"])
    assert res.exit_code is None and res.signal == "SIGKILL" and not res.ok
    assert "killed by SIGKILL" in res.describe()


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    res = LocalTransport().run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert res.timed_out and res.exit_code is None
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the background child of the timed-out command survived"


def test_put_get_round_trip(tmp_path):
    t = LocalTransport()
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(10_000))
    up = t.put(src, str(tmp_path / "remote" / "b.bin"))
    down = t.get(str(tmp_path / "remote" / "b.bin"), tmp_path / "c.bin")
    assert up.bytes == down.bytes == 10_000
    assert (tmp_path / "c.bin").read_bytes() == src.read_bytes()
