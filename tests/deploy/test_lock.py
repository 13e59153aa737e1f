"""THE device lock (deploy/scripts/lock.sh), the one helper of every agent mode, run here as a device
runs it (`sh -c SCRIPT ec-lock PATH OWNER TIMEOUT`): holders never overlap, even when several waiters
recover a dead holder's lock at once; a reused pid is not the holder; a stale benchmark is killed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from edgecompress.deploy.agents import DeviceAgent, script


def _helper(path, owner: str, timeout: int = 30) -> subprocess.Popen:
    argv = DeviceAgent.lock_argv(None, str(path), owner, timeout)
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _until_locked(p: subprocess.Popen) -> list[str]:
    lines = []
    for line in p.stdout:
        lines.append(line.strip())
        if line.strip() in ("locked",) or line.startswith("timeout"):
            break
    return lines


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_every_mode_takes_the_same_lock_helper():
    from edgecompress.deploy.agents import PythonAgent
    from edgecompress.deploy.native import NativeAgent

    assert PythonAgent.lock_argv is NativeAgent.lock_argv is DeviceAgent.lock_argv
    argv = DeviceAgent.lock_argv(None, "/w/lock", "me", 2.4)
    assert argv[:2] == ["sh", "-c"] and argv[2] == script("lock.sh") and argv[3:] == ["ec-lock", "/w/lock", "me", "2"]


def test_waiters_recovering_a_dead_holder_at_once_never_overlap(tmp_path):
    lock = tmp_path / "dev" / "lock"
    held = tmp_path / "dev" / "lock.d"
    held.mkdir(parents=True)
    (held / "pid").write_text(f"{_dead_pid()} 1\n")
    (held / "owner").write_text("pid 1 on crashed-host\n")
    spans, outputs, errors = [], [], []

    def one(i):
        p = _helper(lock, f"waiter {i}")
        lines = _until_locked(p)
        t0 = time.monotonic()
        time.sleep(0.15)                   # hold it a while
        t1 = time.monotonic()
        p.stdin.close()                    # the session ends: released
        p.wait(10)
        outputs.append(lines)
        if lines[-1] != "locked":
            errors.append(lines)
        spans.append((t0, t1))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(spans) == 6
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"two holders at once: {spans}"
    recovered = [ln for lines in outputs for ln in lines if ln.startswith("recovered")]
    assert recovered == ["recovered pid 1 on crashed-host"], outputs
    assert not held.exists() and not (tmp_path / "dev" / "lock.r").exists()


def test_a_reused_pid_is_not_the_holder_and_a_live_holder_is_waited_for(tmp_path):
    lock = tmp_path / "lock"
    held = tmp_path / "lock.d"
    held.mkdir()
    # this test's own pid, with another start time: the holder that wrote it is gone, its pid reused
    (held / "pid").write_text(f"{os.getpid()} 12345\n")
    (held / "owner").write_text("pid 7 on old-host\n")
    p = _helper(lock, "new owner")
    assert _until_locked(p) == ["recovered pid 7 on old-host", "locked"]
    pid, start = (held / "pid").read_text().split()
    assert int(pid) == p.pid                                       # sh -c: the helper itself
    assert start == open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[19]
    q = _helper(lock, "second", timeout=1)
    assert _until_locked(q) == ["waiting new owner", "timeout new owner"]
    assert q.wait(10) == 1
    p.stdin.close()
    assert p.wait(10) == 0 and not held.exists()


def test_a_hung_up_holder_releases_and_a_killed_one_is_recovered(tmp_path):
    lock = tmp_path / "lock"
    p = _helper(lock, "hung up")
    assert _until_locked(p)[-1] == "locked"
    os.killpg(p.pid, 1)                # SIGHUP to the helper's session, as sshd does when the connection goes
    p.wait(10)
    assert not (tmp_path / "lock.d").exists()
    k = _helper(lock, "killed")
    assert _until_locked(k)[-1] == "locked"
    k.kill()
    k.wait(10)
    assert (tmp_path / "lock.d").exists()                          # left behind: the next one recovers it
    n = _helper(lock, "next")
    assert _until_locked(n) == ["recovered killed", "locked"]
    n.stdin.close()
    n.wait(10)


@pytest.mark.parametrize("kind", ["runner", "binary"])
def test_taking_the_lock_kills_a_benchmark_a_lost_host_left_running(tmp_path, kind):
    """Only benchmarks from the lock's blobs/ folder: a runner's `bench` or a benchmark binary; a
    runner's `facts` and other programs are left alone."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    sleeper = "import time; time.sleep(120)"
    if kind == "runner":
        stale_argv = [sys.executable, "-c", sleeper, str(blobs / "runner-ab.pyz"), "bench", "--model", "m"]
    else:
        binary = blobs / "0123abcd"                 # an ELF program run from blobs/, as benchmark_model is
        shutil.copy(shutil.which("sleep"), binary)
        stale_argv = [str(binary), "120"]
    stale = subprocess.Popen(stale_argv, start_new_session=True)
    other = [subprocess.Popen([sys.executable, "-c", sleeper, str(blobs / "runner-ab.pyz"), "facts"]),
             subprocess.Popen([sys.executable, "-c", sleeper, "bench", str(tmp_path / "elsewhere.pyz")])]
    try:
        time.sleep(0.3)
        p = _helper(tmp_path / "lock", "me")
        lines = _until_locked(p)
        assert lines == [f"stale killed benchmark process(es) {stale.pid} left by a lost host", "locked"], lines
        assert stale.wait(10) == -9
        assert all(o.poll() is None for o in other)
        p.stdin.close()
        p.wait(10)
    finally:
        for o in [stale, *other]:
            o.kill()
            o.wait()
