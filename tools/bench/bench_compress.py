"""Benchmark: compressing for one profile vs. three profiles that share steps, and artifact sizes.

Measured in one run, on the digits CNN trained here on real MNIST digits (width 32, 94 k
parameters), each case starting from an empty cache:

* ``one``:   ``compress`` for raspberry-pi-4
* ``three``: ``compress_many`` for raspberry-pi-4, x86-64-host and jetson-orin-nano

The goal is three/one <= 1.3: exports, calibrations and the onnx2tf run are made once and
reused from the content-addressed cache. It also prints every artifact's size ratio to the
FP32 file of its format. Run: ``.venv/bin/python tools/bench/bench_compress.py [--repeat N]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROFILES = ["raspberry-pi-4", "x86-64-host", "jetson-orin-nano"]
GOAL = 1.3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions (median is reported)")
    args = ap.parse_args()

    import torch

    from edgecompress.compress import compress, compress_many, size_ratio
    from edgecompress.examples.digits import factory, load_mnist, train_torch
    from edgecompress.models import load_model

    work = Path(tempfile.mkdtemp(prefix="bench-compress-"))
    data = load_mnist()
    model = train_torch(factory(32), data[0], data[1])
    torch.save(model.state_dict(), work / "w.pt")
    (work / "digits32.py").write_text("from edgecompress.examples.digits import factory as f\n"
                                      "INPUT_SHAPE = (1, 1, 28, 28)\n\ndef factory():\n    return f(32)\n")
    np.savez(work / "d.npz", x=data[2][:300], y=data[3][:300])
    loaded = load_model(f"{work}/digits32.py:factory", weights=work / "w.pt")
    quiet = dict(progress=lambda msg: None)

    # warm-up: imports and first-call costs must not land in either case
    compress(loaded, PROFILES[0], work / "d.npz", work / "warm", **quiet)

    times = {"one": [], "three": []}
    runs = {}
    manifests = None
    for i in range(args.repeat):
        for case in ("one", "three"):
            out = work / f"{case}-{i}"
            t0 = time.perf_counter()
            if case == "one":
                done = {PROFILES[0]: compress(loaded, PROFILES[0], work / "d.npz", out, **quiet)}
            else:
                done = manifests = compress_many(loaded, PROFILES, work / "d.npz", out, **quiet)
            times[case].append(time.perf_counter() - t0)
            ran = [e["step"] for m in done.values() for e in m.steps if not e["cached"]]
            runs[case] = (len(ran), ran.count("onnx2tf"), sum(len(m.artifacts) for m in done.values()))

    one, three = statistics.median(times["one"]), statistics.median(times["three"])
    print(f"compress, empty cache each time (median of {args.repeat}, interleaved):")
    print(f"  one profile   ({PROFILES[0]}): {one:6.2f} s")
    print(f"  three profiles ({', '.join(PROFILES)}): {three:6.2f} s")
    ratio = three / one
    for case in ("one", "three"):
        steps, onnx2tf, artifacts = runs[case]
        print(f"  {case:5s}: {artifacts:2d} artifacts from {steps} steps run (onnx2tf runs: {onnx2tf})")
    print(f"  three / one = {ratio:.2f}  (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    print("\nartifact size / FP32 of its format:")
    seen = set()
    for m in manifests.values():
        for a in m.artifacts:
            if a.path in seen or a.status != "ok":
                continue
            seen.add(a.path)
            print(f"  {a.path:22s} {a.size_bytes / 1024:8.1f} KiB  {size_ratio(m, a):.3f}x  "
                  f"top1 agreement {a.fidelity.top1_agreement:.3f}  accuracy {a.fidelity.accuracy:.3f} "
                  f"(fp32 {a.fidelity.reference_accuracy:.3f})")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
