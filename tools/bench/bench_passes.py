"""Benchmark: compression passes side by side on the digits CNN trained here on real MNIST.

For each combination — FP32, INT8, pruned (structured, 50 % of channels), pruned+INT8,
sparse80+INT8 (global unstructured 80 %), distilled+INT8, clustered+INT8 (16 values per layer)
and pruned+clustered+INT8 — it prints the artifact's size (the ONNX file, and gzip -9 of it), MACs,
host latency (onnxruntime, 1 thread, batch 1, median of interleaved rounds) and accuracy on
1,000 held-out digits, with ratios to FP32. Passes train on the 4,000 training digits.

Goal: some combination is >= 10x smaller than FP32 (gzip size, i.e. what the download costs)
within 1 point of FP32 accuracy. The table says which rows meet it, honestly; the exit code is
0 either way (a benchmark reports, it does not gate).
Run: ``.venv/bin/python tools/bench/bench_passes.py [--rounds N] [--width W]``.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GOAL_RATIO, GOAL_POINTS = 10.0, 1.0
PROFILE = """name: bench-{precision}
hardware: {{arch: x86_64, cores: 1, memory_mb: 4096, peak_gflops: 50, memory_gbps: 10}}
power: {{idle_w: 5, load_w: 15}}
runtimes: [onnxruntime]
artifacts: [{{format: onnx, precision: {precision}}}]
"""

CASES = [  # (row name, pass specs, precision)
    ("FP32", [], "fp32"),
    ("INT8", [], "int8"),
    ("pruned", [{"pass": "prune", "method": "structured", "amount": 0.5, "epochs": 5, "lr": 0.01}], "fp32"),
    ("pruned+INT8", [{"pass": "prune", "method": "structured", "amount": 0.5, "epochs": 5, "lr": 0.01}], "int8"),
    ("sparse80+INT8", [{"pass": "prune", "method": "global", "amount": 0.8, "epochs": 3}], "int8"),
    ("distilled+INT8", [{"pass": "distill", "shrink": 0.6, "epochs": 10}], "int8"),
    ("clustered+INT8", [{"pass": "cluster", "clusters": 16, "epochs": 1}], "int8"),
    ("pruned+clustered+INT8", [{"pass": "prune", "method": "structured", "amount": 0.5, "epochs": 5, "lr": 0.01},
                               {"pass": "cluster", "clusters": 16, "epochs": 1}], "int8"),
]


def _latency_ms(sessions: dict, x: np.ndarray, rounds: int, runs: int = 200) -> dict:
    """Median per-inference latency of each session, measured in interleaved rounds."""
    samples = {k: [] for k in sessions}
    for _ in range(rounds):
        for name, (sess, inp) in sessions.items():
            for _ in range(10):
                sess.run(None, {inp: x})
            t0 = time.perf_counter()
            for _ in range(runs):
                sess.run(None, {inp: x})
            samples[name].append((time.perf_counter() - t0) / runs * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds (median reported)")
    ap.add_argument("--width", type=int, default=16, help="width of the digits CNN")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from edgecompress.cli.common import table
    from edgecompress.compress import compress
    from edgecompress.data import Dataset
    from edgecompress.examples.digits import accuracy_torch, factory, load_mnist, train_torch
    from edgecompress.manifest import TensorSpec
    from edgecompress.models import LoadedModel
    from edgecompress.passes import _torch as T
    from edgecompress.passes import apply_passes

    torch.manual_seed(0)
    torch.set_num_threads(1)          # a CNN this small trains faster on one thread
    xtr, ytr, xte, yte = load_mnist()
    t0 = time.perf_counter()
    net = train_torch(factory(args.width), xtr, ytr, epochs=5)
    print(f"trained the digits CNN (width {args.width}) in {time.perf_counter() - t0:.1f} s: "
          f"{accuracy_torch(net, xte, yte):.1%} on 1,000 held-out digits", file=sys.stderr)
    base = LoadedModel("torch", net, [TensorSpec("x", [1, 1, 28, 28])], [TensorSpec("output", [1, 10])],
                       "NCHW", f"digits width {args.width}", "bench")
    train, test = Dataset(xtr, ytr, "mnist train", "as-is"), Dataset(xte, yte, "mnist test", "as-is")
    example = torch.zeros(1, 1, 28, 28)

    rows, sessions, passed = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for precision in ("fp32", "int8"):
            (tmp / f"{precision}.yaml").write_text(PROFILE.format(precision=precision))
        for name, specs, precision in CASES:
            key = repr(specs)
            t0 = time.perf_counter()
            if key not in passed:
                passed[key] = apply_passes(base, specs, test, train_data=train)
            model, reports = passed[key]
            m = compress(model, tmp / f"{precision}.yaml", test, tmp / "out" / name.replace("+", "_"),
                         cache_dir=tmp / "cache")
            (art,) = m.artifacts
            if art.status != "ok":
                print(f"{name}: artifact failed: {art.error}", file=sys.stderr)
                continue
            path = m.folder / art.path
            data = path.read_bytes()
            sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"],
                                        sess_options=_one_thread(ort))
            inp = sess.get_inputs()[0].name
            pred = np.concatenate([sess.run(None, {inp: xte[i:i + 1]})[0] for i in range(len(xte))])
            rows[name] = {"size": len(data), "gzip": len(gzip.compress(data, 9)),
                          "macs": T.macs_params(model.obj, example)[0],
                          "accuracy": float((pred.argmax(1) == yte).mean())}
            sessions[name] = (sess, inp)
            print(f"{name}: built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        lat = _latency_ms(sessions, xte[:1], args.rounds)

    ref = rows["FP32"]
    out = []
    for name, r in rows.items():
        drop = (ref["accuracy"] - r["accuracy"]) * 100
        out.append((name, f"{r['size'] / 1024:.1f}", f"{r['gzip'] / 1024:.1f}", f"{ref['size'] / r['size']:.1f}x",
                    f"{ref['gzip'] / r['gzip']:.1f}x", f"{r['macs'] / 1e6:.2f}", f"{lat[name]:.3f}",
                    f"{lat[name] / lat['FP32']:.2f}x", f"{r['accuracy']:.1%}", f"{-drop:+.1f}"))
    print(table(["case", "KiB", "gzip KiB", "smaller", "gzip smaller", "MMACs", "ms", "vs fp32",
                 "accuracy", "pts"], out))
    close = [n for n in rows if (ref["accuracy"] - rows[n]["accuracy"]) * 100 <= GOAL_POINTS + 1e-9]
    print(f"\ngoal: >= {GOAL_RATIO:g}x smaller than FP32 within {GOAL_POINTS:g} point of its accuracy "
          f"({ref['accuracy']:.1%} on {len(yte)} held-out digits)")
    for label, key in (("gzip size (what a download costs)", "gzip"), ("file size (what the device stores)", "size")):
        best = max(close, key=lambda n: ref[key] / rows[n][key])
        ratio = ref[key] / rows[best][key]
        print(f"  by {label}: best {best}, {ratio:.1f}x, {rows[best]['accuracy']:.1%} -> "
              + ("MET" if ratio >= GOAL_RATIO else "NOT MET"))
    return 0


def _one_thread(ort):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return so


if __name__ == "__main__":
    sys.exit(main())
