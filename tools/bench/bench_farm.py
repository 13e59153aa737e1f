"""`run --farm` on 4 lab devices served by 2 farm workers vs. a direct `run` on the same 4
(goal: ratio <= 1.15), and the queue's overhead per tiny job (goal >= 20 jobs/s through
submit -> worker -> result).

Set-up, all real and on loopback: a PostgreSQL 15 results store and a Redis broker (append-only
file on), 4 lab devices (real sshd, each in a cgroup with ``--cpu-quota`` of one CPU), and 2
``edgecompress farm worker`` processes serving 2 devices each. The model (the digits CNN, one
ONNX FP32 artifact) is compressed once in warm-up runs (direct and farm), so both timed runs
reuse the compressor's cache and find the runner on the devices. The farm's extra work per
target: blobs into the database and out to the worker's cache (verified), a job through Redis,
results through PostgreSQL, the submitter's polling.

Tiny jobs: ``edgecompress.ping`` tasks sent round-robin to the 4 target queues and their
results collected (Redis result backend): jobs per second over ``--pings`` jobs.
Needs root (lab, PostgreSQL as user postgres), redis-server and PostgreSQL; prints why and
exits 0 where they are missing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROFILE = """\
name: bench-onnx
description: one ONNX FP32 artifact (farm benchmark)
hardware: {arch: x86_64, cores: 1, memory_mb: 1024, peak_gflops: 10, memory_gbps: 5}
power: {idle_w: 2.0, load_w: 5.0}
runtimes: [onnxruntime]
artifacts:
  - {format: onnx, precision: fp32}
measure: {warmup: 5, runs: 50, min_seconds: %(min_seconds)s, threads: 1, timeout_s: 300}
"""


def _wait_served(broker, names, timeout=90):
    from edgecompress.farm.app import redis_client, served

    r = redis_client(broker)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(n in served(r) for n in names):
            return
        time.sleep(0.2)
    raise SystemExit(f"bench_farm: workers did not come up for {names}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-quota", type=float, default=0.2, help="CPU share of each lab device (default 0.2)")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per benchmark (default 3)")
    ap.add_argument("--pings", type=int, default=200, help="tiny jobs for the queue overhead (default 200)")
    args = ap.parse_args(argv)

    from edgecompress import lab
    from edgecompress.lab.limits import cgroup_support
    from services import Postgres, Redis, why_not_postgres, why_not_redis

    reason = lab.why_not() or cgroup_support() or why_not_postgres() or why_not_redis()
    if reason:
        print(f"bench_farm: skipped: {reason}")
        return 0
    from edgecompress.runs import run, run_farm

    tmp = Path(tempfile.mkdtemp(prefix="ec-bench-farm-"))
    profile = tmp / "bench-onnx.yaml"
    profile.write_text(PROFILE % {"min_seconds": args.min_seconds})
    devices, workers, pg, rd = [], [], None, None
    try:
        pg = Postgres().start()
        db = pg.createdb("bench")
        rd = Redis().start()
        for i in range(4):
            devices.append(lab.start_device(f"fbench{i}", tmp / "lab", cpu_quota=args.cpu_quota,
                                            cfs_period_us=10000))
        for d in devices:
            d.profile = str(profile)
        targets_file = lab.write_targets(devices, tmp / "targets.yaml")
        names = [d.name for d in devices]
        env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp / "worker-cache"))
        for w, pair in enumerate((names[:2], names[2:])):
            argv = [sys.executable, "-m", "edgecompress", "farm", "worker", "--targets", str(targets_file),
                    "--broker", rd.url, "--db", db, "--name", f"bench-w{w}"]
            for n in pair:
                argv += ["--target", n]
            workers.append(subprocess.Popen(argv, stdout=open(tmp / f"w{w}.log", "wb"), stderr=subprocess.STDOUT,
                                            env=env))
        _wait_served(rd.url, names)
        model = str(ROOT / "edgecompress" / "examples" / "digits.py") + ":factory"
        common = dict(targets_file=targets_file, out=tmp / "out", db=db, allow_random_calibration=True,
                      eval_samples=32, html=False)

        def timed(fn, **kw):
            t0 = time.monotonic()
            if os.environ.get("BENCH_FARM_TRACE"):
                kw["progress"] = lambda t, e, i: print(f"  {time.monotonic() - t0:6.2f} {t} {e}", file=sys.stderr)
            res = fn(model, names, **common, **kw)
            wall = time.monotonic() - t0
            bad = {n: t.error for n, t in res.targets.items() if t.status != "ok"}
            if bad:
                raise SystemExit(f"bench_farm: targets failed: {bad}")
            return wall

        print(f"4 lab devices (real sshd, {args.cpu_quota:g} CPU each), 2 farm workers x 2 devices, "
              f"PostgreSQL + Redis on loopback; {args.min_seconds:g} s timed per benchmark")
        timed(run)                                         # warm-up: compress once, push the runner
        timed(run_farm, farm=rd.url)                       # warm-up: workers' caches and connections
        direct = timed(run)
        farm = timed(run_farm, farm=rd.url)
        ratio = farm / direct
        print(f"wall direct run, 4 targets: {direct:6.2f} s")
        print(f"wall run --farm, 4 targets: {farm:6.2f} s")
        print(f"ratio farm/direct: {ratio:.2f}  (goal <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'})")

        from edgecompress.farm.app import PING_TASK, make_app, queue_for

        app = make_app(rd.url, backend=rd.url)
        for i in range(8):                                 # warm the connections
            app.send_task(PING_TASK, args=[{"i": i}], queue=queue_for(names[i % 4])).get(timeout=30)
        t0 = time.monotonic()
        pending = [app.send_task(PING_TASK, args=[{"i": i}], queue=queue_for(names[i % 4]))
                   for i in range(args.pings)]
        got = [p.get(timeout=120) for p in pending]
        took = time.monotonic() - t0
        assert sorted(g["i"] for g in got) == list(range(args.pings))
        rate = args.pings / took
        print(f"tiny jobs: {args.pings} in {took:.2f} s = {rate:.0f} jobs/s, {1e3 * took / args.pings:.1f} ms per job "
              f"(goal >= 20 jobs/s: {'met' if rate >= 20 else 'NOT met'})")
        return 0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        for d in devices:
            lab.stop_device(d)
        if rd:
            rd.destroy()
        if pg:
            pg.destroy()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
