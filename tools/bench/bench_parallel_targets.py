"""Wall time of `edgecompress run` on N=1 vs. N=4 lab targets in parallel (goal: ratio <= 1.2).

What bounds each target's work, and why the goal is fair: every lab target is a real OpenSSH
server (edgecompress/lab.py) whose sessions — and so the on-device runner — live in their own
cgroup with a CPU quota of ``--cpu-quota`` of one CPU (default 0.2). That quota is the
device's CPU: four devices together use at most 4 x 0.2 = 0.8 of this machine's CPUs, so they
do not compete with each other, and each device's benchmark is timed for ``--min-seconds``
(a wait bounded by the device's own clock). A run's wall time is then bounded by its slowest
device, not by the sum over devices, if (and only if) the targets truly run in parallel — one
worker thread per device. The host's per-target share (SSH, sync by hash, storing results,
fidelity against the host reference) is small; the model is compressed once in a warm-up run
so both timed runs reuse the compressor's cache and import the same frameworks.

Prints wall(N=1), wall(N=4), their ratio, and the sum of the four targets' own durations
(what a serial loop would take). Needs root and cgroups (the lab); prints why and exits 0
where they are missing.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROFILE = """\
name: bench-onnx
description: one ONNX FP32 artifact (parallel-targets benchmark)
hardware: {arch: x86_64, cores: 1, memory_mb: 1024, peak_gflops: 10, memory_gbps: 5}
power: {idle_w: 2.0, load_w: 5.0}
runtimes: [onnxruntime]
artifacts:
  - {format: onnx, precision: fp32}
measure: {warmup: 5, runs: 50, min_seconds: %(min_seconds)s, threads: 1, timeout_s: 300}
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-quota", type=float, default=0.2, help="CPU share of each lab device (default 0.2)")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per benchmark (default 3)")
    ap.add_argument("-n", type=int, default=4, help="targets in the parallel run (default 4)")
    args = ap.parse_args(argv)

    from edgecompress import lab
    from edgecompress.lab.limits import cgroup_support
    from edgecompress.runs import run

    reason = lab.why_not() or cgroup_support()
    if reason:
        print(f"bench_parallel_targets: skipped: {reason}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="ec-bench-parallel-"))
    profile = tmp / "bench-onnx.yaml"
    profile.write_text(PROFILE % {"min_seconds": args.min_seconds})
    devices = []
    try:
        for i in range(args.n):
            devices.append(lab.start_device(f"bench{i}", tmp / "lab", cpu_quota=args.cpu_quota,
                                            cfs_period_us=10000))   # quota >= the kernel minimum of 1 ms
        for d in devices:
            d.profile = str(profile)
        targets_file = lab.write_targets(devices, tmp / "targets.yaml")
        model = str(ROOT / "edgecompress" / "examples" / "digits.py") + ":factory"
        common = dict(targets_file=targets_file, out=tmp / "out", db=tmp / "results.db",
                      allow_random_calibration=True, eval_samples=32, html=False)

        def timed(names):
            t0 = time.monotonic()
            res = run(model, names, **common)
            wall = time.monotonic() - t0
            bad = {n: t.error for n, t in res.targets.items() if t.status != "ok"}
            if bad:
                raise SystemExit(f"bench_parallel_targets: targets failed: {bad}")
            return wall, res

        names = [d.name for d in devices]
        print(f"{args.n} lab devices, each a real sshd in a cgroup with {args.cpu_quota:g} CPU; "
              f"{args.min_seconds:g} s timed per benchmark")
        timed(names[:1])                              # warm-up: compress once, fill caches, push runners
        w1, _ = timed(names[:1])
        wn, res = timed(names)
        from edgecompress.results import ResultsStore

        with ResultsStore(tmp / "results.db") as store:
            spans = [t["finished_at"] - t["started_at"] for t in store.targets(res.run_id)]
        print(f"wall N=1: {w1:6.2f} s")
        print(f"wall N={args.n}: {wn:6.2f} s   (sum of the {args.n} targets' own durations: {sum(spans):.2f} s)")
        ratio = wn / w1
        print(f"ratio N={args.n}/N=1: {ratio:.2f}  (goal <= 1.20: {'met' if ratio <= 1.2 else 'NOT met'})")
        return 0
    finally:
        for d in devices:
            lab.stop_device(d)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
