"""The runner zipapp in a clean device Python (no torch/tensorflow/paramiko) on real artifacts
of trained digits models; memory checked against what the kernel reports from outside."""
from __future__ import annotations

import json
import os
import subprocess
import time

import numpy as np
import pytest

from .conftest import run_runner

FAST = ["--runs", "30", "--warmup", "3", "--min-seconds", "0", "--idle-w", "6", "--load-w", "20"]


def test_device_python_has_only_numpy_and_runtimes(device_python, runner_pyz):
    probe = ("import importlib.util as u; print(sorted(m for m in ('torch','tensorflow','paramiko','yaml',"
             "'pydantic','edgecompress','numpy','onnxruntime','ai_edge_litert') if u.find_spec(m)))")
    out = subprocess.run([device_python, "-I", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['ai_edge_litert', 'numpy', 'onnxruntime']"
    facts, _ = run_runner(device_python, runner_pyz, "facts")
    assert facts["runtimes"]["onnxruntime"] and facts["runtimes"]["ai-edge-litert"]
    assert facts["runtimes"]["tensorflow"] is None and facts["numpy"]
    assert facts["free_disk_mb"] > 0 and facts["cpu_count"] >= 1 and facts["arch"] == os.uname().machine


def test_onnx_latency_and_outputs_match_torch(device_python, runner_pyz, digits_artifacts, tmp_path):
    import torch

    x = digits_artifacts["x"]
    np.save(tmp_path / "in.npy", x)
    doc, res = run_runner(device_python, runner_pyz, "bench", "--model", digits_artifacts["onnx"], *FAST,
                          "--inputs", tmp_path / "in.npy", "--outputs", tmp_path / "out.npy")
    assert res.returncode == 0 and doc["status"] == "ok", doc["error"]
    lat = doc["latency_ms"]
    assert doc["runs"] == len(lat["samples"]) >= 30
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["mean"] == pytest.approx(np.mean(lat["samples"]), rel=1e-9)
    assert lat["p90"] == pytest.approx(np.percentile(lat["samples"], 90), rel=1e-9)
    assert lat["load"] > 0 and lat["first"] > 0
    assert doc["device"]["runtime"].startswith("onnxruntime ") and doc["device"]["threads"] == 1
    mem = doc["memory_mb"]
    assert 0 < mem["baseline_rss"] < mem["peak_rss"] and mem["delta"] == pytest.approx(mem["peak_rss"] - mem["baseline_rss"])
    # no meter on this machine: energy is estimated from the power model, and says so
    assert doc["energy"]["method"] == "estimated" and doc["energy"]["source"] == "power-model"
    assert doc["energy"]["mj_per_inference"] == pytest.approx((20 - 6) * lat["mean"], rel=1e-6)
    with torch.no_grad():
        ref = digits_artifacts["torch"](torch.from_numpy(x)).numpy()
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (200, 10)
    assert np.abs(out - ref).max() < 1e-4
    assert (out.argmax(1) == digits_artifacts["y"]).mean() > 0.9


def test_tflite_int8_nhwc_gets_nchw_float_inputs_and_gives_float_outputs(device_python, runner_pyz,
                                                                        digits_artifacts, tmp_path):
    np.save(tmp_path / "in.npy", digits_artifacts["x"])  # NCHW float32: the runner transposes and quantizes
    doc, _ = run_runner(device_python, runner_pyz, "bench", "--model", digits_artifacts["tflite"], *FAST,
                        "--layout", "NHWC", "--inputs", tmp_path / "in.npy", "--outputs", tmp_path / "out.npy")
    assert doc["status"] == "ok", doc["error"]
    assert doc["device"]["runtime"] == "ai-edge-litert 2.3.0"
    (inp,) = doc["inputs"]
    assert inp["dtype"] == "int8" and inp["shape"] == [1, 28, 28, 1] and inp["scale"] > 0
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32 and out.shape == (200, 10)
    ref = digits_artifacts["keras_probs"]
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert (out.argmax(1) == digits_artifacts["y"]).mean() > 0.85
    cosine = (out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)
    assert cosine > 0.98  # int8 rounding, dequantized with the model's own scale/zero-point


def test_runs_at_least_min_seconds_and_uses_threads(device_python, runner_pyz, digits_artifacts):
    doc, _ = run_runner(device_python, runner_pyz, "bench", "--model", digits_artifacts["onnx"], "--runs", "2",
                        "--warmup", "0", "--min-seconds", "0.3", "--threads", "2", "--energy", "none")
    assert doc["runs"] > 2 and sum(doc["latency_ms"]["samples"]) > 0.25
    assert doc["device"]["threads"] == 2
    assert doc["energy"]["method"] == "unavailable" and doc["energy"]["mj_per_inference"] is None


def test_peak_memory_matches_vmhwm_read_from_outside(device_python, runner_pyz, digits_artifacts, tmp_path):
    """This process polls /proc/<pid>/status VmHWM until the runner says the timed runs are over
    (``step: thermal-after`` on stderr; it reads its own VmHWM just after). (ru_maxrss from
    wait4 is no check here: it keeps the forked copy of this big pytest process from before exec.)"""
    import threading

    out = open(tmp_path / "out.json", "w+")  # a file, not a pipe: the JSON is larger than a pipe buffer
    proc = subprocess.Popen([device_python, "-I", str(runner_pyz), "bench", "--model", str(digits_artifacts["tflite"]),
                             "--runs", "50", "--min-seconds", "0.5", "--energy", "none"],
                            stdout=out, stderr=subprocess.PIPE, text=True)
    measured = threading.Event()

    def watch():
        for line in proc.stderr:
            if line.strip() == "step: thermal-after":
                measured.set()

    threading.Thread(target=watch, daemon=True).start()
    outside = 0.0
    while True:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if not measured.is_set():
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            outside = max(outside, int(line.split()[1]) / 1024)
            except (OSError, ValueError):
                pass
        time.sleep(0.002)
    out.seek(0)
    doc = json.loads(out.read())
    reported = doc["memory_mb"]["peak_rss"]
    assert outside > 20
    # within 1 MB either way: the poller can miss the last growth before the runner's read, or (under
    # load, the stderr line read late) see growth after it, as the JSON is written (VmHWM only grows)
    assert abs(reported - outside) <= 1.0, (reported, outside)


def test_broken_artifact_is_reported_with_its_step(device_python, runner_pyz, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    doc, res = run_runner(device_python, runner_pyz, "bench", "--model", bad, "--runs", "1")
    assert res.returncode == 1 and doc["status"] == "failed" and doc["step"] == "load"
    assert doc["error"].startswith("load: ")
