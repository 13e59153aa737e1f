"""Several edgecompress processes and one device: the device lock serializes them (the second waits,
saying who holds the lock), a wait has a time-out with a message, and a lock left behind by a killed
process is recovered."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest
import yaml

from edgecompress.deploy import DeviceSession, benchmark
from edgecompress.device.result import BenchmarkResult

from .conftest import wait_for

pytestmark = pytest.mark.lab


def runners_on(dev, kind: str) -> list[psutil.Process]:
    """The device's runners measuring ('bench'), or its lock helpers ('lock': deploy/scripts/lock.sh, the
    one helper of every mode), seen from the device's process table."""
    out = []
    for p in psutil.process_iter(["username", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["username"] != dev.user or not any(dev.root in c for c in cmd):
            continue
        if (kind == "lock" and "ec-lock" in cmd) or (kind in cmd and any(c.endswith(".pyz") for c in cmd)):
            out.append(p)
    return out


def test_two_processes_benchmarking_one_device_are_serialized(make_device, fault_artifacts, tmp_path, outcome):
    dev = make_device("lk2")
    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump({"targets": [dev.target_dict()]}))
    argv = [sys.executable, "-m", "edgecompress", "bench", str(fault_artifacts["digits"]), "--target", dev.name,
            "--targets", str(tf), "--runs", "5", "--warmup", "1", "--min-seconds", "1.5", "--json"]
    most, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            most[0] = max(most[0], len(runners_on(dev, "bench")))
            time.sleep(0.02)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    stop.set()
    th.join()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    results = [BenchmarkResult.from_dict(json.loads(o[0])[0]) for o in outs]
    waited = [o[1] for o in outs if "is busy: device lock held by pid" in o[1]]
    assert len(waited) == 1, [o[1][-500:] for o in outs]
    assert f"waiting up to" in waited[0]
    assert most[0] == 1, f"{most[0]} benchmarks ran on the device at once"
    assert all(r.status == "ok" and r.runs >= 5 for r in results)
    p50 = sorted(r.latency_ms.p50 for r in results)
    assert p50[1] < 3 * p50[0], p50          # neither measured while the other was loading the CPU
    outcome(expected="second waits with a message; never two at once",
            observed=f"1 waited; max {most[0]} runner at a time; p50 {p50[0]:.3f}/{p50[1]:.3f} ms")


def test_waiting_for_the_lock_times_out_with_the_holder_named(make_device, fault_artifacts, outcome):
    dev = make_device("lkto")
    with DeviceSession(dev.target):
        t0 = time.monotonic()
        [res] = benchmark(dev.target, [fault_artifacts["digits"]], runs=5, warmup=1, min_seconds=0,
                          lock_timeout_s=1)
        took = time.monotonic() - t0
    assert res.status == "failed" and res.latency_ms is None
    assert "step 'lock' timed out after 1 s" in res.error and f"pid {os.getpid()}" in res.error, res.error
    assert took < 10
    outcome(expected="time-out with a message naming the holder", observed=res.error[:90] + "...")


HOLDER = textwrap.dedent("""
    import sys, time
    from edgecompress.deploy import DeviceSession
    from edgecompress.targets import load_target
    s = DeviceSession(load_target(sys.argv[1], sys.argv[2]))
    s.open()
    print("locked", flush=True)
    time.sleep(600)
""")


def hold_lock(dev, tmp_path) -> subprocess.Popen:
    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump({"targets": [dev.target_dict()]}))
    p = subprocess.Popen([sys.executable, "-c", HOLDER, dev.name, str(tf)], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_lock_of_a_killed_host_process_is_released(make_device, tmp_path, outcome):
    """The host process holding the lock is SIGKILLed: its connection closes, the device releases the
    lock, and the next session gets it at once."""
    dev = make_device("lkhost")
    holder = hold_lock(dev, tmp_path)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    t0 = time.monotonic()
    with DeviceSession(dev.target, lock_timeout_s=20) as s:
        took = time.monotonic() - t0
        assert s._lock is not None and s._lock.alive()
    assert took < 10
    outcome(expected="lock released when its host dies", observed=f"next session locked after {took:.1f} s")


def test_stale_lock_left_on_the_device_is_recovered(make_device, tmp_path, outcome):
    """The device-side lock helper and its host are both SIGKILLed (as a device crash would): the owner
    file still names the dead holder; the next session takes the lock and says it recovered it."""
    dev = make_device("lkstale")
    holder = hold_lock(dev, tmp_path)
    helpers = wait_for(lambda: runners_on(dev, "lock"), 10, "the lock helper")
    for h in helpers:
        h.kill()
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    with DeviceSession(dev.target, lock_timeout_s=20) as s:
        msg = s.lock_message
    assert msg and msg.startswith("recovered a stale device lock left by") and f"pid {holder.pid}" in msg, msg
    outcome(expected="stale lock recovered, said so", observed=msg[:90])
