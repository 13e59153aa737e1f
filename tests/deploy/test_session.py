"""Deploying and benchmarking over a real OpenSSH server (``lab_sshd``) with real artifacts of
trained digits models; the device Python there has only numpy + onnxruntime + ai-edge-litert."""
from __future__ import annotations

import json
import os
import secrets
import time

import numpy as np
import pytest

from edgecompress.cli import main as cli
from edgecompress.deploy import DeviceSession, benchmark
from edgecompress.device.result import BenchmarkResult
from edgecompress.errors import BenchmarkError
from edgecompress.manifest import ArtifactRecord, Manifest
from edgecompress.profiles import Measure
from edgecompress.targets import Target

pytestmark = pytest.mark.lab
QUICK = Measure(runs=20, warmup=2, min_seconds=0, timeout_s=120)


def _fresh_target(dev, **over) -> Target:
    """The lab device with a work folder of its own (nothing deployed there yet)."""
    d = dev.target_dict()
    d.update(workdir=f"{dev.workdir}/w-{secrets.token_hex(4)}", **over)
    return Target(**d)


def test_deploy_and_benchmark_trained_models_over_ssh(lab_sshd, digits_artifacts):
    import torch

    x, y = digits_artifacts["x"], digits_artifacts["y"]
    before = lab_sshd.accepted_logins()
    with DeviceSession(lab_sshd.target) as s:
        onnx = s.bench(digits_artifacts["onnx"], measure=QUICK, inputs=x)
        tfl = s.bench(digits_artifacts["tflite"], measure=QUICK, inputs=x)
    assert lab_sshd.accepted_logins() - before == 1          # one connection for the whole session
    for r in (onnx, tfl):
        assert r.status == "ok", r.error
        assert r.target == "lab-test" and r.runs >= 20 and len(r.latency_ms.samples) == r.runs
        assert 0 < r.latency_ms.min <= r.latency_ms.p50 <= r.latency_ms.max < 1000
        assert r.device.python == "3.11.2"             # the device's Python, not ours
        assert r.memory_mb.peak_rss > r.memory_mb.baseline_rss > 0
        assert r.energy.method == "estimated"          # no meter on this machine: said so
        assert (r.outputs.argmax(1) == y).mean() > 0.85    # the device's own outputs classify digits
    assert onnx.artifact.format == "onnx" and onnx.artifact.precision == "fp32"
    assert tfl.artifact.precision == "int8" and tfl.device.runtime == "ai-edge-litert 2.3.0"
    with torch.no_grad():
        ref = digits_artifacts["torch"](torch.from_numpy(x)).numpy()
    assert np.abs(onnx.outputs - ref).max() < 1e-4


def test_second_deploy_sends_zero_bytes(lab_sshd, digits_artifacts):
    target = _fresh_target(lab_sshd)
    files = [digits_artifacts["onnx"], digits_artifacts["tflite"]]
    with DeviceSession(target) as s:
        first = s.sync(files)
        runner_bytes = s.bytes_sent - first["bytes_sent"]
    assert first == {"bytes_sent": sum(f.stat().st_size for f in files), "files_sent": 2, "files_skipped": 0}
    assert runner_bytes > 0
    with DeviceSession(target) as s:
        second = s.sync(files)
        assert s.bytes_sent == 0                               # runner not sent again either
    assert second == {"bytes_sent": 0, "files_sent": 0, "files_skipped": 2}


def test_corrupted_upload_is_retried_and_never_used(lab_sshd, digits_artifacts, tmp_path):
    """The first upload arrives truncated; the device's sha256 check rejects it, it is re-sent."""
    target = _fresh_target(lab_sshd)
    art = digits_artifacts["onnx"]
    with DeviceSession(target) as s:
        real_put, calls = s.transport.put, []

        def flaky_put(local, remote):
            calls.append(remote)
            if len(calls) == 1:
                half = tmp_path / "half"
                half.write_bytes(art.read_bytes()[:1000])
                return real_put(half, remote)
            return real_put(local, remote)

        s.transport.put = flaky_put
        stats = s.sync([art])
        s.transport.put = real_put
        blob = s.blob_path(art)
        check = s.transport.run(["sha256sum", blob]).stdout.split()[0]
        leftovers = s.transport.run(["ls", f"{s.workdir}/tmp"]).stdout
        r = s.bench(art, measure=QUICK)
    assert len(calls) == 2 and stats["files_sent"] == 1
    assert check == r.artifact.sha256 and r.status == "ok"
    assert leftovers.strip() == ""


def test_device_lock_busy_times_out_naming_owner_then_stale_lock_recovered(lab_sshd):
    target = _fresh_target(lab_sshd)
    with DeviceSession(target) as a:
        with pytest.raises(BenchmarkError, match=rf"lock.*timed out.*pid {os.getpid()} on "):
            DeviceSession(target, lock_timeout_s=1).open()
        # the device-side holder dies without releasing (OOM killer): the next session recovers its lock
        holder = a.transport.run(["cat", f"{a.workdir}/lock.d/pid"]).stdout.split()[0]
        assert a.transport.run(["kill", "-KILL", holder]).ok
        start = time.monotonic()
        with DeviceSession(target, lock_timeout_s=30) as b:
            assert time.monotonic() - start < 10
            assert b.lock_message and f"pid {os.getpid()} on" in b.lock_message


def test_one_failed_artifact_keeps_the_others(lab_sshd, digits_artifacts, tmp_path):
    broken = tmp_path / "model.int8.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    results = benchmark(lab_sshd.target, [digits_artifacts["onnx"], broken, digits_artifacts["tflite"]],
                        runs=10, warmup=1, min_seconds=0)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert "load" in results[1].error and results[1].artifact.precision == "int8"


def test_benchmark_timeout_names_the_step(lab_sshd, digits_artifacts):
    with DeviceSession(lab_sshd.target) as s:
        r = s.bench(digits_artifacts["onnx"], measure=Measure(runs=10, warmup=1, min_seconds=30, timeout_s=2))
        # the runner's process group was killed: the device is free for the next benchmark
        ok = s.bench(digits_artifacts["onnx"], measure=QUICK)
    assert r.status == "failed" and "step 'bench/measure' timed out after 2 s" in r.error
    assert ok.status == "ok"


def _manifest(folder, digits_artifacts):
    import shutil

    folder.mkdir()
    for key in ("onnx", "tflite"):
        shutil.copy(digits_artifacts[key], folder / digits_artifacts[key].name)
    arts = [ArtifactRecord(path="model.fp32.onnx", format="onnx", precision="fp32"),
            ArtifactRecord(path="model.int8.tflite", format="tflite", precision="int8", layout="NHWC"),
            ArtifactRecord(path="model.fp16.tflite", format="tflite", precision="fp16", status="failed",
                           error="conversion failed")]
    Manifest(model={"source": "digits"}, profile="x86-64-host", artifacts=arts).write(folder / "manifest.json")
    return folder


def test_cli_bench_manifest_json_and_exit_codes(lab_sshd, digits_artifacts, tmp_path, capsys):
    folder = _manifest(tmp_path / "out", digits_artifacts)
    args = ["bench", str(folder), "--target", "lab-test", "--targets", lab_sshd.targets_file,
            "--runs", "5", "--warmup", "1", "--min-seconds", "0"]
    assert cli(args + ["--json"]) == 0
    results = [BenchmarkResult.from_dict(d) for d in json.loads(capsys.readouterr().out)]
    assert [(r.artifact.format, r.artifact.precision, r.status) for r in results] == \
        [("onnx", "fp32", "ok"), ("tflite", "int8", "ok")]                    # the failed one is not benched
    (folder / "model.fp32.onnx").write_bytes(b"broken")
    assert cli(args) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "ok" in out and "p50_ms" in out
    assert cli(["bench", str(tmp_path / "missing.onnx"), "--target", "local"]) == 2


def test_cli_unknown_host_needs_trust_flag(lab_sshd, digits_artifacts, tmp_path, capsys):
    import yaml

    t = _fresh_target(lab_sshd, known_hosts=str(tmp_path / "known_hosts")).model_dump(exclude_none=True)
    inv = tmp_path / "targets.yaml"
    inv.write_text(yaml.safe_dump({"targets": [t]}))
    args = ["bench", str(digits_artifacts["onnx"]), "--target", "lab-test", "--targets", str(inv), "--runs", "3",
            "--warmup", "0", "--min-seconds", "0", "--json"]
    assert cli(args) == 1
    (r,) = map(BenchmarkResult.from_dict, json.loads(capsys.readouterr().out))
    assert r.status == "failed" and "unknown host key" in r.error and "--trust-new-host" in r.error
    assert cli(args + ["--trust-new-host"]) == 0
    capsys.readouterr()
    assert cli(args) == 0                       # recorded in known_hosts: no flag needed now


def test_cli_targets_list_and_check(lab_sshd, capsys):
    assert cli(["targets", "list", "--targets", lab_sshd.targets_file]) == 0
    out = capsys.readouterr().out
    assert "lab-test" in out and "local" in out
    assert cli(["targets", "check", "lab-test", "--targets", lab_sshd.targets_file, "--json"]) == 0
    (rep,) = json.loads(capsys.readouterr().out)
    f = rep["facts"]
    assert rep["ok"] and f["python"] == "3.11.2" and f["runtimes"]["onnxruntime"] == "1.32.0"
    assert f["runtimes"]["tensorflow"] is None and f["free_disk_mb"] > 0
    assert any("no energy meter" in a for a in rep["advice"])


def test_check_says_what_to_install_when_runtime_missing(lab_sshd, capsys, tmp_path):
    import yaml

    t = lab_sshd.target_dict()
    t["python"] = "/usr/bin/python3"            # the system Python: no numpy, no runtimes
    inv = tmp_path / "targets.yaml"
    inv.write_text(yaml.safe_dump({"targets": [t]}))
    assert cli(["targets", "check", "lab-test", "--targets", str(inv)]) == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out and "pip install numpy" in out and "pip install onnxruntime" in out
    assert "pip install ai-edge-litert" in out


def test_local_target_benchmarks_without_ssh(digits_artifacts):
    (r,) = benchmark("local", [digits_artifacts["onnx"]], runs=10, warmup=1, min_seconds=0)
    assert r.status == "ok" and r.target == "local" and r.runs >= 10
