"""Fixtures for the results store and report tests: benchmark results from REAL measurements.

``measured`` exports the session's trained digits CNN (real MNIST) to ONNX FP32 and an
ORT dynamic-range INT8 copy, times both with onnxruntime on this machine, measures their
accuracy and top-1 agreement with torch on held-out digits, and returns DESIGN.md-shaped
benchmark results. Energy is the profile power-model estimate (this machine has no power
sensor), marked ``estimated`` as the runner would.
"""
from __future__ import annotations

import time

import numpy as np
import pytest


def _bench_onnx(path, x, runs=40):
    import onnxruntime as ort
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss / 2**20
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    load = (time.perf_counter() - t0) * 1e3
    name = sess.get_inputs()[0].name
    samples = []
    for i in range(runs + 1):
        t = time.perf_counter()
        sess.run(None, {name: x[i % len(x)][None]})
        samples.append((time.perf_counter() - t) * 1e3)
    first, samples = samples[0], samples[1:]
    outputs = np.concatenate([sess.run(None, {name: xi[None]})[0] for xi in x])
    peak = proc.memory_info().rss / 2**20
    return load, first, samples, outputs, base, peak


def make_result(target, record, load, first, samples, base, peak, fidelity, idle_w=6.0, load_w=20.0):
    s = np.asarray(samples)
    mean = float(s.mean())
    return {
        "target": target,
        "artifact": {"sha256": record["sha256"], "format": record["format"], "precision": record["precision"],
                     "size_bytes": record["size_bytes"]},
        "device": {"arch": "x86_64", "os": "Linux", "python": "3.11", "runtime": "onnxruntime 1.32.0",
                   "threads": 1},
        "latency_ms": {"load": load, "first": first, "mean": mean, "p50": float(np.percentile(s, 50)),
                       "p90": float(np.percentile(s, 90)), "p99": float(np.percentile(s, 99)),
                       "std": float(s.std()), "min": float(s.min()), "max": float(s.max()),
                       "samples": [float(v) for v in s]},
        "memory_mb": {"baseline_rss": base, "peak_rss": peak, "delta": peak - base},
        "energy": {"method": "estimated", "source": "power-model", "avg_power_w": load_w,
                   "mj_per_inference": load_w * mean},
        "thermal": {"temp_c_before": None, "temp_c_after": None, "throttled": None},
        "runs": len(samples), "status": "ok", "error": None, "fidelity": fidelity,
    }


@pytest.fixture(scope="session")
def measured(torch_digits, tmp_path_factory):
    """{"records": [artifact dicts], "results": [benchmark results on target 'local'], "sha256": model hash}."""
    import torch
    from onnxruntime.quantization import quantize_dynamic

    from edgecompress.manifest import sha256_file

    model, (_, _, x_test, y_test) = torch_digits
    folder = tmp_path_factory.mktemp("measured")
    fp32 = folder / "model.fp32.onnx"
    torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(fp32), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"])
    dyn = folder / "model.dynamic.onnx"
    quantize_dynamic(str(fp32), str(dyn))
    x, y = x_test[:100], y_test[:100]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    ref_acc = float((ref.argmax(1) == y).mean())
    records, results = [], []
    for path, precision in ((fp32, "fp32"), (dyn, "dynamic")):
        rec = {"path": path.name, "format": "onnx", "precision": precision, "layout": "NCHW",
               "size_bytes": path.stat().st_size, "sha256": sha256_file(path), "status": "ok", "error": None}
        load, first, samples, out, base, peak = _bench_onnx(path, x)
        fid = {"max_abs": float(np.abs(out - ref).max()), "cosine": 1.0,
               "top1_agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
               "accuracy": float((out.argmax(1) == y).mean()), "reference_accuracy": ref_acc, "samples": len(x)}
        rec["fidelity"] = fid
        records.append(rec)
        results.append(make_result("local", rec, load, first, samples, base, peak, fid))
    return {"records": records, "results": results, "sha256": sha256_file(fp32), "folder": folder}


def _store_run(store, measured, *, targets=("local",), scale=1.0, status="ok", rebuilt=None):
    """Write one finished run of ``measured`` to ``store`` (latencies times ``scale``); returns its id.
    ``rebuilt`` (default: when ``scale`` is not 1) gives the artifacts other bytes (another sha256);
    else the run measured the same artifacts again."""
    import copy
    import hashlib

    run_id = store.start_run(model_source="digits.onnx", model_sha256=measured["sha256"], targets=list(targets))
    store.add_artifacts(run_id, "x86-64-host", measured["records"], folder=measured["folder"])
    for t in targets:
        store.set_target(run_id, t, status="running", profile="x86-64-host", transport="local",
                         device={"arch": "x86_64", "os": "Linux", "runtimes": {"onnxruntime": "1.32.0"}})
        for r in measured["results"]:
            r = copy.deepcopy(r)
            r["target"] = t
            for k in ("mean", "p50", "p90", "p99", "min", "max"):
                r["latency_ms"][k] *= scale
            r["latency_ms"]["samples"] = [v * scale for v in r["latency_ms"]["samples"]]
            if rebuilt or (rebuilt is None and scale != 1.0):      # other bytes, other sha256
                r["artifact"]["sha256"] = hashlib.sha256(f"{r['artifact']['sha256']}{scale}".encode()).hexdigest()
            store.add_result(run_id, r, profile="x86-64-host")
        store.set_target(run_id, t, status="ok")
    store.finish_run(run_id, status)
    return run_id


@pytest.fixture(scope="session")
def store_run():
    """``store_run(store, measured, targets=(...), scale=1.0)`` writes one finished run, returns its id."""
    return _store_run
