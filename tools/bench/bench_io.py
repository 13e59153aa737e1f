"""Every I/O shape through compress and the local device in one run: status, per-output cosine,
latency relative to FP32.

    python tools/bench/bench_io.py [--runs 50] [--models two_inputs,tokens,...]

For each model of tests/io_models.py (trained here in seconds on real data: digits, licence texts)
it compresses every format and precision (one profile), benchmarks the manifest on ``local``
(the real runner, one process per artifact, same settings), and prints each artifact's status,
its per-output cosine over all held-out samples (host fidelity) and its p50 latency over the
FP32 ONNX artifact's. ``broken`` is the model whose ink head INT8 destroys (degraded).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2]))
sys.path.insert(0, str(HERE.parents[2] / "tests"))


def main(argv=None) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    import digits_artifacts as D
    import io_models as M

    from edgecompress.cli.common import table
    from edgecompress.compress import compress
    from edgecompress.deploy import benchmark

    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--models", default=",".join([*sorted(M.ALL), "broken"]))
    a = p.parse_args(argv)
    profile = D.profile_yaml("bench-io", D.ALL_ARTIFACTS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            m = M.broken() if name == "broken" else M.ALL[name]()
            t0 = time.perf_counter()
            man = compress(m.onnx, profile, m.data, Path(tmp) / name, feedback=m.feedback, cache_dir=Path(tmp) / "c")
            built = time.perf_counter() - t0
            results = benchmark("local", man.folder, runs=a.runs, warmup=5, min_seconds=0.5, store=False)
            p50 = {r.key: (r.latency_ms.p50 if r.latency_ms is not None else None) for r in results}
            base = p50.get("fp32.onnx")
            for art in man.artifacts:
                key = f"{art.precision}.{art.format}"
                cos = "  ".join(f"{o.name} {o.cosine:.4f}" for o in art.fidelity.outputs)
                lat = p50.get(key)
                rows.append((name, key, art.status, cos if art.status != "failed" else (art.error or "")[:60],
                             "" if lat is None else f"{lat:.3f}",
                             "" if lat is None or not base else f"{lat / base:.2f}x"))
            print(f"# {name}: compressed in {built:.0f} s", file=sys.stderr)
    print(table(["model", "artifact", "status", "cosine per output (all held-out samples)", "p50_ms", "vs fp32.onnx"],
                rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
