"""Benchmark: the on-device runner's median latency vs. a bare ``run()`` loop in another process.

Both sides are separate processes of the same Python, one thread, the same artifact and the
same per-call ``perf_counter`` timing, so the ratio shows what the runner adds around the
inference call (its loop, sample keeping, the idle meter thread when no meter exists).
Rounds alternate runner / bare to spread machine noise; the ratio is the median of the
runner's medians over the median of the bare loop's medians. Goal: ratio <= 1.02.

Artifacts: the digits CNN (width 32) at 64x64 as ONNX (torch.onnx.export) and as FP32 TFLite
(its Keras twin through TFLiteConverter). Run:
``.venv/bin/python tools/bench/bench_runner_overhead.py [--rounds N] [--runs N]``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GOAL = 1.02
BARE = r"""
import sys, time
import numpy as np
path, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pc = time.perf_counter
if path.endswith(".onnx"):
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    i = sess.get_inputs()[0]
    feed = {i.name: np.random.default_rng(0).random(i.shape, dtype=np.float32)}
    call = lambda: sess.run(None, feed)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=1); it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
    call = it.invoke
for _ in range(warmup):
    call()
samples = []
for _ in range(runs):
    t0 = pc(); call(); samples.append(pc() - t0)
print(sorted(samples)[len(samples) // 2] * 1000)
"""


def make_artifacts(folder: Path) -> dict[str, Path]:
    import torch

    from edgecompress.examples.digits import factory, keras_model

    onnx = folder / "model.fp32.onnx"
    torch.onnx.export(factory(32).eval(), (torch.zeros(1, 1, 64, 64),), str(onnx), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["logits"])
    import keras
    import tensorflow as tf

    km = keras_model(32)
    km = keras.Sequential([keras.Input((64, 64, 1)), *km.layers])
    tfl = folder / "model.fp32.tflite"
    tfl.write_bytes(tf.lite.TFLiteConverter.from_keras_model(km).convert())
    return {"onnx": onnx, "tflite": tfl}


def runner_median(runner: Path, model: Path, runs: int, warmup: int) -> float:
    out = subprocess.run([sys.executable, str(runner), "bench", "--model", str(model), "--runs", str(runs),
                          "--warmup", str(warmup), "--min-seconds", "0", "--threads", "1", "--energy", "none"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["latency_ms"]["p50"]


def bare_median(model: Path, runs: int, warmup: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(model), str(runs), str(warmup)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    from edgecompress.device.package import build_runner

    runner = build_runner()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        arts = make_artifacts(Path(tmp))
        print(f"{'artifact':<8} {'runner_p50_ms':>14} {'bare_p50_ms':>12} {'ratio':>7}  (goal <= {GOAL})")
        for kind, path in arts.items():
            r, b = [], []
            for _ in range(args.rounds):
                r.append(runner_median(runner, path, args.runs, args.warmup))
                b.append(bare_median(path, args.runs, args.warmup))
            ratio = statistics.median(r) / statistics.median(b)
            worst = max(worst, ratio)
            print(f"{kind:<8} {statistics.median(r):>14.4f} {statistics.median(b):>12.4f} {ratio:>7.3f}")
    print(f"worst ratio {worst:.3f}: {'ok' if worst <= GOAL else 'ABOVE GOAL'}")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
