"""Phones through :mod:`edgecompress.deploy` (DeviceSession / benchmark), both ways.

* adb: against the STAND-IN adb client and phone folder (edgecompress/testing/fake_adb.py; no phone or
  emulator runs here). Native mode uses a stand-in ``benchmark_model`` printing a real capture;
  the Python path runs the real runner with this machine's Python standing in for the phone's.
* Termux over SSH: the lab's REAL OpenSSH server (fixture ``lab_sshd``) with the Android profile,
  a real trained model and a sysfs-shaped battery folder of known values.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgecompress.deploy import DeviceSession, benchmark
from edgecompress.errors import BenchmarkError
from edgecompress.targets import Target
from edgecompress.transports.adb import DEVICE_ROOT

from .conftest import stand_in_benchmark_model

WATTS = 0.450 * 3.850


def _inventory(tmp_path, **target) -> str:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": [target]}))
    return str(path)


@pytest.fixture
def native_target(tmp_path, fake_phone):
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_text(stand_in_benchmark_model("info_peak_memory.txt", sleep_s=0.5))
    binary.chmod(0o755)
    return _inventory(tmp_path, name="pixel8-adb", profile="pixel-8", transport="adb",
                      serial=fake_phone.serial, mode="native", benchmark_model=str(binary))


@pytest.fixture
def tflite_file(tmp_path):
    p = tmp_path / "model.int8.tflite"
    p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(2048))
    return p


def test_benchmark_native_target_through_deploy(native_target, fake_phone, tflite_file):
    [r] = benchmark("pixel8-adb", [tflite_file], targets_file=native_target, runs=20, warmup=2)
    assert r.status == "ok", r.error
    assert r.target == "pixel8-adb" and r.artifact.precision == "int8"
    assert r.latency_ms.mean == pytest.approx(56.2658) and r.memory_mb.peak_rss == pytest.approx(93.2383)
    assert "--num_runs=20" in r.extra["command"] and "--warmup_runs=2" in r.extra["command"]
    assert r.energy.method == "measured" and r.energy.avg_power_w == pytest.approx(WATTS, rel=0.01)
    lock_dir = fake_phone.path(f"{DEVICE_ROOT}/lock.d")
    assert not lock_dir.exists()                     # released when the session closed


def test_native_device_lock_busy_then_stale_recovered(native_target, fake_phone):
    with DeviceSession("pixel8-adb", targets_file=native_target) as first:
        assert first.agent.mode == "native"
        with pytest.raises(BenchmarkError, match="step 'lock' timed out.*held by pid"):
            DeviceSession("pixel8-adb", targets_file=native_target, lock_timeout_s=1).open()
    lock_dir = fake_phone.path(f"{DEVICE_ROOT}/lock.d")
    lock_dir.mkdir()                                 # a lock left by a process that died
    (lock_dir / "pid").write_text("999999\n")
    (lock_dir / "owner").write_text("pid 1 on crashed-host\n")
    with DeviceSession("pixel8-adb", targets_file=native_target, lock_timeout_s=5) as s:
        assert s.lock_message == "recovered a stale device lock left by pid 1 on crashed-host"
        assert s.facts()["arch"] == "arm64-v8a"


def test_missing_binary_fails_every_artifact_with_the_reason(tmp_path, fake_phone, tflite_file):
    inv = _inventory(tmp_path, name="p", profile="pixel-8", transport="adb", serial=fake_phone.serial,
                     mode="native", benchmark_model=str(tmp_path / "nope"))
    [r] = benchmark("p", [tflite_file], targets_file=inv)
    assert r.status == "failed" and "does not exist" in r.error and "android_aarch64" in r.error


def test_python_path_over_adb_runs_the_real_runner(tmp_path, fake_phone, digits_artifacts):
    """A phone whose adb shell has a Python (rooted, or Termux's via run-as): DeviceSession unchanged."""
    fake_phone.add_program("python3", f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    target = Target(name="pixel8-py", profile="pixel-8", transport="adb", serial=fake_phone.serial)
    x = digits_artifacts["x"][:16]
    with DeviceSession(target) as s:
        assert s.workdir == DEVICE_ROOT
        from edgecompress.profiles import Measure

        r = s.bench(digits_artifacts["onnx"], measure=Measure(warmup=2, runs=20, min_seconds=0, threads=1),
                    inputs=x)
    assert r.status == "ok", r.error
    assert len(r.latency_ms.samples) == 20 and r.latency_ms.p99 > 0
    ref = digits_artifacts["torch"](__import__("torch").from_numpy(x)).detach().numpy()
    assert np.abs(r.outputs - ref).max() < 1e-4
    assert fake_phone.path(f"{DEVICE_ROOT}/blobs").is_dir()


@pytest.mark.lab
def test_termux_over_ssh_with_android_profile(lab_sshd, digits_artifacts, request):
    """Termux: sshd on its own port, the phone user's home, Python with the runtimes; the android-arm64
    profile; the runner's android-battery meter reads a sysfs-shaped battery folder of known values."""
    # the lab's device user must reach it: pytest's tmp_path lives under a root-only folder
    root = Path(tempfile.mkdtemp(prefix="ec-phone-sysfs-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    bat = root / "sys/class/power_supply/battery"
    bat.mkdir(parents=True)
    (bat / "current_now").write_text("-450000\n")
    (bat / "voltage_now").write_text("3850000\n")
    (bat / "status").write_text("Discharging\n")
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    target = Target(**{**lab_sshd.target_dict(), "name": "termux-phone", "profile": "android-arm64",
                       "sysfs_root": str(root)})
    assert target.port is None and target.host.endswith(f":{lab_sshd.port}")
    from edgecompress.profiles import Measure

    with DeviceSession(target) as s:
        r = s.bench(digits_artifacts["tflite"], measure=Measure(warmup=2, runs=30, min_seconds=0.5, threads=2),
                    inputs=digits_artifacts["x"][:50], input_layout="NCHW")
    assert r.status == "ok", r.error
    assert r.target == "termux-phone" and r.artifact.format == "tflite"
    assert len(r.latency_ms.samples) >= 30 and r.latency_ms.mean > 0
    top1 = r.outputs.argmax(axis=1)
    assert (top1 == digits_artifacts["y"][:50]).mean() >= 0.9        # the trained model, on the device
    assert r.energy.method == "measured" and r.energy.source == "android-battery", r.energy
    assert r.energy.avg_power_w == pytest.approx(WATTS, rel=0.01)


def test_cli_bench_asks_native_mode_for_a_delegate_and_op_profiling(native_target, fake_phone, tflite_file,
                                                                      capsys):
    """`edgecompress bench --delegate gpu --op-profiling` reaches the (stand-in) benchmark_model's flags."""
    import json as _json

    from edgecompress.cli import main

    rc = main(["bench", str(tflite_file), "--target", "pixel8-adb", "--targets", native_target,
               "--runs", "5", "--delegate", "gpu", "--op-profiling", "--json"])
    [r] = _json.loads(capsys.readouterr().out)
    assert rc == 0 and r["status"] == "ok", r["error"]
    assert "--use_gpu=true" in r["command"] and "--enable_op_profiling=true" in r["command"]
    assert r["device"]["delegate"] == "gpu" and r["protocol"] == 1
    assert main(["bench", str(tflite_file), "--target", "pixel8-adb", "--targets", native_target,
                 "--delegate", "hexagn"]) == 2
    err = capsys.readouterr().err
    assert "delegate 'hexagn'" in err and "valid: cpu, xnnpack, gpu, nnapi" in err
