"""The virtual device lab: real sshd devices, one in its own network namespace with a CPU quota
(cgroup v1 here; v2 supported), and the ``lab up|down|status`` command."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from edgecompress import lab
from edgecompress.cli import main as cli
from edgecompress.deploy import DeviceSession
from edgecompress.lab.limits import cgroup_support, netns_support
from edgecompress.profiles import Measure
from edgecompress.targets import load_targets

pytestmark = pytest.mark.lab


def _limits_reason():
    return lab.why_not() or netns_support() or cgroup_support()


@pytest.fixture(scope="module")
def big_onnx(tmp_path_factory):
    """The digits CNN (width 32) at 256x256 input: ~20 ms per inference here, much longer than
    the CFS period, so a CPU quota shows in every single inference (and in the median)."""
    import torch

    from edgecompress.examples.digits import factory

    path = tmp_path_factory.mktemp("big") / "model.fp32.onnx"
    torch.onnx.export(factory(32).eval(), (torch.zeros(1, 1, 256, 256),), str(path), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["logits"])
    return path


def test_cpu_quota_in_network_namespace_slows_latency_in_proportion(lab_sshd, big_onnx, tmp_path):
    reason = _limits_reason()
    if reason:
        pytest.skip(f"namespaced, CPU-limited device unavailable: {reason}")
    dev = lab.start_device("quota", tmp_path, netns=True, cpu_quota=0.25, memory_mb=512, rate="20mbit")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(2_500_000))
    try:
        assert dev.host.startswith("10.213.") and dev.port == 22
        ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert dev.netns["name"] in ns
        m = Measure(runs=15, warmup=2, min_seconds=0, threads=1, timeout_s=300)
        with DeviceSession(lab_sshd.target) as s:
            free = s.bench(big_onnx, measure=m)
        with DeviceSession(dev.target) as s:
            slow = s.bench(big_onnx, measure=m)
            cgroup = s.transport.run(["cat", "/proc/self/cgroup"]).stdout
            upload = s.transport.put(blob, f"{s.workdir}/tmp/blob.bin")
    finally:
        lab.stop_device(dev)
    assert free.status == slow.status == "ok", (free.error, slow.error)
    ratio = slow.latency_ms.p50 / free.latency_ms.p50
    # the quota caps the device at a quarter of a CPU; on an idle host the free device gets a whole
    # one (>= 2.5x slower median), on a busy host only its measured share of one
    free_share, slow_share = free.cpu["utilization"], slow.cpu["utilization"]
    print(f"p50 {free.latency_ms.p50:.1f} -> {slow.latency_ms.p50:.1f} ms ({ratio:.2f}x); "
          f"CPU share {free_share:.2f} -> {slow_share:.2f}; upload 2.5 MB in {upload.seconds:.2f} s")
    assert slow_share <= 0.3
    assert ratio >= 2.5 * min(1.0, free_share), \
        f"25 % CPU quota gave {ratio:.2f}x the median latency (free device had {free_share:.2f} of a CPU)"
    assert upload.bytes == 2_500_000 and upload.seconds > 0.8     # 2.5 MB through a 20 mbit/s link
    assert "edgecompress-quota-" in cgroup                      # the benchmark ran inside the limited group
    assert not any(os.path.exists(p) for p in dev.cgroups)      # and the group is gone after stop
    assert dev.netns["name"] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_lab_up_status_down_writes_a_usable_targets_file(tmp_path, capsys):
    reason = lab.why_not()
    if reason:
        pytest.skip(reason)
    state = str(tmp_path / "state")
    try:
        assert cli(["lab", "--state", state, "up"]) == 0
        out = capsys.readouterr().out
        targets_file = tmp_path / "state" / "targets.yaml"
        assert f"targets file: {targets_file}" in out
        targets = load_targets(targets_file)
        expect = {"lab-x86"} | ({"lab-slow"} if _limits_reason() is None else set())
        assert expect <= set(targets)
        assert cli(["lab", "--state", state, "status", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert {d["name"] for d in status} == expect and all(d["running"] for d in status)
        if "lab-slow" in expect:
            slow = next(d for d in status if d["name"] == "lab-slow")
            assert slow["limits"]["cpu_quota"] == 0.25 and slow["limits"]["rate"] == "20mbit"
        # the written known_hosts holds the lab's host keys: no trust flag needed
        assert cli(["targets", "check", "lab-x86", "--targets", str(targets_file), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["ok"]
    finally:
        assert cli(["lab", "--state", state, "down"]) == 0
    assert "stopped: lab-x86" in capsys.readouterr().out
    assert not (tmp_path / "state" / "targets.yaml").exists()
    assert cli(["lab", "--state", state, "status"]) == 0
    assert "no lab devices" in capsys.readouterr().out


def test_try_up_falls_back_when_the_lab_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lab.try_up(tmp_path) is None
    assert cli(["lab", "--state", str(tmp_path), "up"]) == 1
