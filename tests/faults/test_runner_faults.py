"""The runner misbehaves on the device: a model that never returns, a runner that dies of a segfault,
one killed for using more memory than the device's memory cgroup allows. Each is reported as what it
was (time-out / signal, with the step and the runner's stderr tail), nothing is left running on the
device, and the artifacts after it are measured as usual."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgecompress.deploy import DeviceSession

from .conftest import device_processes, tiny_measure, wait_for

pytestmark = pytest.mark.lab


def test_a_model_that_never_returns_is_killed_at_the_time_out(make_device, fault_artifacts, outcome):
    """An ONNX Loop of 2**62 iterations: the runner is killed after measure.timeout_s (its whole
    process group, checked with ps on the device), and the next artifact is measured."""
    dev = make_device("rhang")
    with DeviceSession(dev.target, step_timeout_s=15) as s:
        t0 = time.monotonic()
        hung = s.bench(fault_artifacts["hang"], measure=tiny_measure(timeout_s=2))
        took = time.monotonic() - t0
        left = device_processes(dev, "bench --model")
        good = s.bench(fault_artifacts["digits"], measure=tiny_measure(), inputs=fault_artifacts["x"])
    assert hung.status == "failed" and hung.latency_ms is None
    assert "step 'bench/first' timed out after 2 s" in hung.error and "process group was killed" in hung.error
    assert took < 2 + 6
    assert left == [], f"left running on the device: {left}"
    assert good.status == "ok"
    np.testing.assert_allclose(good.outputs, fault_artifacts["reference"], rtol=1e-4, atol=1e-5)
    outcome(expected="killed at time-out, nothing left, others go on",
            observed=f"failed after {took:.1f} s at bench/first; 0 processes left; next artifact ok")


def test_a_runner_that_segfaults_is_reported_with_signal_and_stderr(make_device, fault_artifacts, outcome):
    """The runner process gets SIGSEGV while measuring (sent with `kill -SEGV` on the device: no model
    here crashes a runtime on purpose, the signal and its handling are real). The result names the
    signal and the last steps from the runner's stderr; the next artifact is measured."""
    dev = make_device("rsegv")
    from edgecompress.transports import open_transport

    def crash():
        procs = wait_for(lambda: device_processes(dev, "bench --model"), 30, "the runner", interval=0.1)
        time.sleep(0.7)
        pids = [p.split()[0] for p in procs if "python" in p.split()[1]]
        with open_transport(dev.target) as t:
            assert t.run(["kill", "-SEGV", *pids]).ok

    with DeviceSession(dev.target) as s:
        threading.Thread(target=crash, daemon=True).start()
        crashed = s.bench(fault_artifacts["small"], measure=tiny_measure(min_seconds=20, timeout_s=40))
        good = s.bench(fault_artifacts["digits"], measure=tiny_measure(), inputs=fault_artifacts["x"])
    assert crashed.status == "failed" and crashed.latency_ms is None
    err = crashed.error
    assert "killed by SIGSEGV" in err and "step: measure" in err and "bench/measure" in err, err
    assert good.status == "ok" and good.runs >= 5
    outcome(expected="reported as SIGSEGV with stderr tail; others go on", observed=err[:90] + "...")


def test_a_runner_killed_for_memory_is_reported_as_such(make_device, fault_artifacts, outcome):
    """A device with a 400 MB memory cgroup runs a model whose first inference needs 2 GiB: the kernel's
    OOM killer SIGKILLs the runner; the result says SIGKILL, points at memory, and gives the step."""
    from edgecompress.lab.limits import cgroup_support

    if cgroup_support():
        pytest.skip(f"cgroups unavailable: {cgroup_support()}")
    dev = make_device("room", memory_mb=400)
    with DeviceSession(dev.target) as s:
        oom = s.bench(fault_artifacts["oom"], measure=tiny_measure(timeout_s=60))
        good = s.bench(fault_artifacts["digits"], measure=tiny_measure(), inputs=fault_artifacts["x"])
    assert oom.status == "failed" and oom.latency_ms is None
    err = oom.error
    assert "killed by SIGKILL" in err and "out of memory" in err and "step 'bench/first'" in err, err
    assert good.status == "ok"
    np.testing.assert_allclose(good.outputs, fault_artifacts["reference"], rtol=1e-4, atol=1e-5)
    outcome(expected="reported as killed (OOM) with step; others go on", observed=err[:90] + "...")
