"""Benchmark: what ``tune`` gains over the profile's untuned artifacts, measured on the devices.

In one run, on ``local`` and (when the lab can run here) a lab device limited to half a CPU by
a cgroup quota, for the digits CNN (width 32) trained here on real MNIST digits:

1. ``run`` builds and measures the profile's untuned artifacts (tests/runs/tiny-x86.yaml:
   fp32, int8 and dynamic ONNX) and recommends one per target (p50 within the default budget);
2. ``tune`` searches each target (``--trials N``: format/precision, INT8 settings, mixed
   precision, structured pruning + fine-tuning, clustering, threads), every candidate measured
   there.

Printed per target: the recommended untuned artifact's p50 / the FP32 ONNX p50, the tuned
recommendation's p50 / the best untuned artifact's p50 within the same budget (goal <= 0.9),
the trials, and the wall time of the search. Run:
``.venv/bin/python tools/bench/bench_tune.py [--trials 16]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TINY = ROOT / "tests" / "runs" / "tiny-x86.yaml"
GOAL = 0.9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--quota", type=float, default=0.5, help="the lab device's CPU quota (CPUs)")
    args = ap.parse_args()

    import torch

    from edgecompress import lab
    from edgecompress.examples.digits import factory, load_mnist, train_torch
    from edgecompress.report import compare
    from edgecompress.runs import run
    from edgecompress.tune import tune

    work = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    data = load_mnist()
    model = train_torch(factory(32), data[0], data[1])
    torch.save(model.state_dict(), work / "w.pt")
    (work / "digits32.py").write_text("from edgecompress.examples.digits import factory as f\n"
                                      "INPUT_SHAPE = (1, 1, 28, 28)\n\ndef factory():\n    return f(32)\n")
    np.savez(work / "d.npz", x=np.concatenate([data[0][:1500], data[2][:500]]),
             y=np.concatenate([data[1][:1500], data[3][:500]]))
    spec = f"{work}/digits32.py:factory"
    targets = [{"name": "local", "profile": str(TINY), "transport": "local", "workdir": str(work / "local")}]
    dev = None
    why = lab.why_not()
    if why is None:
        dev = lab.start_device("bench-tune", work / "lab", cpu_quota=args.quota)
        targets.append(dict(dev.target_dict(), name=f"lab-{args.quota:g}cpu", profile=str(TINY)))
    else:
        print(f"(no lab device: {why}; local only)")
    tfile = work / "targets.yaml"
    tfile.write_text(yaml.safe_dump({"targets": targets}, sort_keys=False))
    names = [t["name"] for t in targets]
    try:
        res = run(spec, names, targets_file=tfile, data=work / "d.npz", out=work / "out", db=work / "r.db",
                  weights=str(work / "w.pt"), html=False, measure={"runs": 100, "min_seconds": 1.0})
        comp = compare([res.run_id], work / "r.db")
        t0 = {}
        tuned = {}
        for name in names:
            t0[name] = time.monotonic()
            tuned[name] = tune(spec, [name], targets_file=tfile, data=work / "d.npz", trials=args.trials,
                               db=work / "r.db", out=work / "tune", weights=str(work / "w.pt"),
                               measure={"runs": 100, "min_seconds": 1.0}).targets[name]
            t0[name] = time.monotonic() - t0[name]
    finally:
        if dev is not None:
            lab.stop_device(dev)
    print(f"{'target':18} {'untuned rec':14} {'rec/fp32.onnx':>13} {'tuned/untuned':>13} {'trials':>6} "
          f"{'wall_s':>7}  tuned candidate")
    worst = 0.0
    for name in names:
        rows = {r.artifact: r for r in comp.rows if r.target == name}
        rec = next(r for r in comp.recommendations if r.target == name)
        fp32 = rows["fp32.onnx"].p50_ms
        t = tuned[name]
        ratio = t.recommended.p50_ms / rec.value if t.recommended and rec.value else float("nan")
        worst = max(worst, ratio)
        print(f"{name:18} {rec.artifact or '-':14} {rec.value / fp32:13.2f} {ratio:13.2f} {len(t.candidates):6d} "
              f"{t0[name]:7.1f}  {t.recommended.label if t.recommended else '-'}")
    print(f"goal: tuned/untuned <= {GOAL} on every target: {'met' if worst <= GOAL else 'NOT met'} "
          f"(worst {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
