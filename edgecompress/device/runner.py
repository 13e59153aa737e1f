"""The on-device runner: measure one artifact, describe the device.

Runs with the standard library, numpy and one runtime only; shipped as one zipapp file
(``runner-<sha256>.pyz``). Protocol (version 1)::

    python3 runner.pyz bench --model PATH [--runs N] [--warmup N] [--min-seconds S]
        [--threads T] [--cooldown S] [--inputs IN.npz|IN.npy --outputs OUT]
        [--layout NCHW|NHWC] [--input-layout NCHW|NHWC] [--input-shape [NAME=]DIMS ...]
        [--energy auto|rapl|pi5-pmic|android-battery|jetson-ina|command|none]
        [--energy-command CMD] [--energy-interval S] [--idle-seconds S]
        [--sysfs-root DIR] [--idle-w W --load-w W] [--ops [--ops-runs N]]

  stdout: ONE JSON document (nothing else is ever printed there)::

    {"protocol": 1, "status": "ok"|"failed", "error": null|"...", "step": "...", "mode": "python",
     "artifact": {"path", "format", "size_bytes"},
     "device": {"arch", "os", "python", "runtime", "threads", "cpu_count"},
     "latency_ms": {"import", "load", "first", "mean", "p50", "p90", "p99", "std", "min", "max", "samples": [...]},
     "memory_mb": {"baseline_rss", "peak_rss", "delta"},
     "energy": {"method": "measured"|"estimated"|"unavailable", "source", "avg_power_w",
                "idle_power_w", "mj_per_inference", ...},
     "thermal": {"temp_c_before", "temp_c_after", "freq_mhz_before", "freq_mhz_after",
                 "throttled", "throttle_flags", "throttled_raw"},
     "cpu": {"ms_per_inference", "utilization"},   # process CPU time during the runs / their wall time
     "runs": N, "warmup": N, "inputs": [{"name", "shape", "dtype", ...}], "output_tensors": [...], "outputs_written": bool,
     "stable": bool, "stability": {"reasons", "drift_pct", "cpu_share", ...},   # device/stats.py
     "valid": bool, "validity": {"runs", "seconds", "min_runs", "min_seconds", "mlperf_minimums"},
     "ops": [{"name", "op_type", "ms", "where"}],                             # with --ops (device/ops.py)
     "notes": [...]}
  latency_ms also carries "cv" and "p50_ci" ([low, high], 95 %, order statistics).

  The document is a :class:`~edgecompress.device.result.BenchmarkResult` (``to_dict()``); the host
  reads it back with ``BenchmarkResult.from_dict(..., require_protocol=True)``, which refuses a
  protocol it does not speak.

  Exit status 0 when status is "ok", 1 when "failed" (the JSON still says why and at which
  step), 2 for bad arguments. stderr carries ``step: NAME`` progress lines, so a host that
  times the command out can name the step it was in.

  Order of a run: baseline RSS -> thermal before -> import the runtime (timed) -> load (timed) ->
  first inference (timed) -> warm-up -> cooldown sleep -> idle power for --idle-seconds
  (meters only) -> at least --runs inferences AND at least --min-seconds, each timed with
  perf_counter, raw samples kept -> thermal after -> peak RSS (VmHWM) -> outputs for the
  given inputs through THE executor (``execute.py``, the same code the host uses).
  ``--inputs`` .npz: ``{model input name: (N, *whole input tensor)}`` in the model's dtypes plus
  ``__io__`` (JSON bytes: ``model_inputs``, ``model_outputs``, ``input_map``, ``output_map``,
  ``source_layout``, ``feedback``); OUT is then an .npz ``{model output name: array}``. The
  old form, an .npy of one input's samples, gives an .npy of the first output. With inputs the
  timed inference runs on the first given sample, else on random inputs (``--input-shape``
  fixes dynamic dims; the result's ``note`` says when a dynamic dim was timed at 1).
  Energy per inference = (energy during the runs - idle power x their duration) / runs.
  Without a meter it is "estimated" from --idle-w/--load-w, or "unavailable"; a meter that
  cannot measure now (an Android phone charging) gives "unavailable" with its "reason".

    python3 runner.pyz facts [--sysfs-root DIR] [--path DIR]
  stdout: {"arch", "os", "kernel", "python", "numpy", "runtimes": {name: version|null},
           "free_disk_mb", "cpu_count", "memory_mb", "energy_meters": [...],
           "thermal_zones": [...], "cpu_freq_paths": [...], "vcgencmd": bool}

  The device lock is not the runner's: every agent mode takes the same one,
  ``deploy/scripts/lock.sh`` (a shell script, so devices without Python share it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

from . import meters as meters_mod
from . import stats, thermal
from .result import PROTOCOL, ArtifactInfo, BenchmarkResult, DeviceInfo, Energy, Latency, Memory, Thermal
RUNTIME_DISTS = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow")
RUNTIME_MODULES = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime",
                   "onnxruntime": "onnxruntime", "tensorflow": "tensorflow"}


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _dist_version(dist: str) -> str | None:
    from importlib import metadata
    import importlib.util

    module = RUNTIME_MODULES.get(dist, dist)
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _step(name: str) -> None:
    print(f"step: {name}", file=sys.stderr, flush=True)


# -- bench ------------------------------------------------------------------------------
def bench(a) -> BenchmarkResult:
    res = BenchmarkResult(mode="python", status="failed", step="start", artifact=ArtifactInfo(
        path=a.model, format=os.path.splitext(a.model)[1].lstrip("."),
        size_bytes=os.path.getsize(a.model) if os.path.exists(a.model) else None))
    try:
        _bench(a, res)
        res.status, res.step = "ok", "done"
    except Exception as e:  # noqa: BLE001 - any failure is reported in the JSON with its step
        res.error = f"{res.step}: {type(e).__name__}: {e}"
    return res


def _bench(a, res: BenchmarkResult) -> None:
    import numpy as np

    from . import runtimes

    def step(name):
        res.step = name
        _step(name)

    baseline = _status_kb("VmRSS")
    root = a.sysfs_root
    step("thermal-before")
    before = thermal.snapshot(root)
    step("load")
    if not os.path.exists(a.model):
        raise FileNotFoundError(f"no artifact at {a.model}")
    import_s = runtimes.import_runtime(a.model)
    model, load_s = runtimes.load(a.model, a.threads, a.layout)
    res.device = DeviceInfo(arch=platform.machine(), os=_os_name(), python=platform.python_version(),
                            runtime=model.runtime, threads=a.threads, extra={"cpu_count": os.cpu_count()})
    for spec in a.input_shape or []:
        name, _, dims = spec.rpartition("=")
        name = name or model.inputs[0].name
        if not any(t.name == name for t in model.inputs):
            raise ValueError(f"--input-shape {spec}: no input {name!r}; inputs: "
                             f"{', '.join(t.name for t in model.inputs)}")
        model.set_shape(name, [int(d) for d in dims.split(",")])
    res.inputs = [t.to_dict() for t in model.inputs]
    res.extra["output_tensors"] = [t.to_dict() for t in model.outputs]
    given = _load_inputs(model, a, np) if a.inputs else None
    step("first")
    if given is not None:       # time the model on a real sample (token ids must be valid ids)
        ex, samples = given
        in_map = ex.match_inputs(list(samples), samples)
        model.feed(ex.first_feed(samples, in_map))
    else:
        missing = [t.name for t in model.inputs if None in t.full_shape[1:] and t.shape == [1] * len(t.shape)]
        if missing:
            res.add_note(f"input(s) {', '.join(missing)} have dynamic dims, timed at 1 each; give "
                         f"--input-shape NAME=DIMS")
        model.feed(model.random_inputs())
    from .execute import fixed_batch

    batch = fixed_batch(model)
    if batch:
        res.add_note(f"the artifact fixes batch {batch}: each latency is one call on {batch} samples")
    t0 = time.perf_counter()
    model.invoke()
    first_s = time.perf_counter() - t0
    step("warmup")
    for _ in range(max(0, a.warmup - 1)):
        model.invoke()
    if a.cooldown > 0:
        step("cooldown")
        time.sleep(a.cooldown)

    note = None
    meter = None
    try:
        meter = meters_mod.open_meter(a.energy, root, a.energy_command)
    except meters_mod.MeterError as e:
        note = f"energy meter {a.energy!r} unavailable: {e}"
    unavailable = meter.unavailable_reason() if meter is not None else None
    sampled = meter if unavailable is None else None    # a phone on its charger: nothing is sampled
    idle_w = None
    if sampled is not None and a.idle_seconds > 0:
        step("idle")
        rec = meters_mod.Recorder(meter, a.energy_interval)
        rec.start()
        time.sleep(a.idle_seconds)
        j, s, _ = rec.stop()
        idle_w = j / s if s > 0 else None

    step("measure")
    rec = meters_mod.Recorder(meter, a.energy_interval) if sampled is not None else None
    invoke, pc = model.timed_call(), time.perf_counter
    samples = []
    append = samples.append
    if rec:
        rec.start()
    cpu0 = os.times()
    start = pc()
    n, runs, min_s = 0, a.runs, a.min_seconds
    while n < runs or pc() - start < min_s:
        t0 = pc()
        invoke()
        append(pc() - t0)
        n += 1
    wall = pc() - start
    cpu1 = os.times()
    run_j, run_s = (rec.stop()[:2]) if rec else (0.0, 0.0)
    if rec and unavailable is None:
        unavailable = rec.meter.unavailable_reason()      # plugged in during the run

    step("thermal-after")
    after = thermal.snapshot(root)
    peak = _status_kb("VmHWM")
    ms = [s * 1000.0 for s in samples]
    res.latency_ms = Latency.from_dict({"import": import_s * 1000.0, "load": load_s * 1000.0,
                                        "first": first_s * 1000.0, **stats.summarize(ms), "samples": ms})
    res.runs, res.warmup = n, a.warmup
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    res.cpu = {"ms_per_inference": cpu_s / n * 1000.0, "utilization": cpu_s / wall if wall > 0 else None}
    verdict = stats.assess(ms, wall_s=wall, cpu_s=cpu_s, threads=a.threads, min_runs=a.runs,
                           min_seconds=a.min_seconds, quota=stats.cpu_quota())
    res.stable, res.stability = verdict["stable"], verdict["stability"]
    res.valid, res.validity = verdict["valid"], verdict["validity"]
    res.memory_mb = Memory(baseline_rss=baseline, peak_rss=peak,
                           delta=(peak - baseline) if peak is not None and baseline is not None else None)
    res.energy = Energy.from_dict(meters_mod.energy_block(
        meter, load_j=run_j, load_s=run_s, idle_w=idle_w, n=n, mean_latency_s=res.latency_ms.mean / 1000.0,
        model_idle_w=a.idle_w, model_load_w=a.load_w, note=note, unavailable=unavailable))
    res.thermal = Thermal.from_dict(thermal.report(before, after))
    if res.thermal.throttled:
        res.stable = False
        res.stability["throttled"] = True
        res.stability["reasons"].append("the device reported CPU throttling during the runs")
    if a.ops:
        step("ops")
        from . import ops as ops_mod

        try:
            res.ops, extra = ops_mod.profile(model, a.model, a.threads, runs=a.ops_runs)
            res.extra.update(extra)
        except Exception as e:  # noqa: BLE001 - a profile that fails never loses the measurement
            res.ops = []
            res.extra["ops_error"] = f"{type(e).__name__}: {e}"
    res.outputs_written = False
    if a.inputs:
        step("outputs")
        for note in _outputs(model, a, np, given):
            res.add_note(note)
        res.outputs_written = True


def _load_inputs(model, a, np):
    """(Executor, samples) from --inputs: an .npz by model input name (+ ``__io__``, the artifact's
    I/O map as JSON), or an .npy of one input's samples without their batch axis (the old form)."""
    from . import execute

    data = np.load(a.inputs)
    io = {}
    if hasattr(data, "files"):
        samples = {k: data[k] for k in data.files if k != "__io__"}
        if "__io__" in data.files:
            io = json.loads(bytes(data["__io__"]).decode())
    else:
        if len(model.inputs) != 1:
            raise ValueError(f"model has {len(model.inputs)} inputs; give an .npz with one array per input name")
        samples = {model.inputs[0].name: data[:, None]}
    ex = execute.Executor(model, model_inputs=io.get("model_inputs"), model_outputs=io.get("model_outputs"),
                          input_map=io.get("input_map"), output_map=io.get("output_map"),
                          source_layout=io.get("source_layout") or a.input_layout)
    ex.feedback = io.get("feedback") or {}
    ex.legacy = not hasattr(data, "files")
    return ex, samples


def _outputs(model, a, np, given) -> list:
    """Run every given sample through THE executor; outputs by model output name (.npz), or the
    first output as .npy for the old single-array form."""
    ex, samples = given
    tmp = a.outputs + ".part"
    if ex.legacy:
        raw = ex.run_raw(samples)
        out = np.asarray(raw[model.outputs[0].name])
        with open(tmp, "wb") as f:
            np.save(f, out.astype(np.float32) if out.dtype.kind == "f" else out)
    else:
        outs = ex.run(samples, ex.feedback or None) if ex.model_outputs else ex.run_raw(samples, ex.feedback or None)
        with open(tmp, "wb") as f:
            np.savez(f, **outs)
    os.replace(tmp, a.outputs)
    return ex.notes


# -- facts ------------------------------------------------------------------------------
def facts(a) -> dict:
    mem = None
    try:
        with open(os.path.join(a.sysfs_root, "proc/meminfo")) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    path = os.path.expanduser(a.path)
    while not os.path.exists(path) and path not in ("/", ""):
        path = os.path.dirname(path)
    return {"protocol": PROTOCOL, "arch": platform.machine(), "os": _os_name(), "kernel": platform.release(),
            "python": platform.python_version(), "python_executable": sys.executable,
            "numpy": _dist_version("numpy"),
            "runtimes": {d: _dist_version(d) for d in RUNTIME_DISTS},
            "free_disk_mb": shutil.disk_usage(path or "/").free // (1 << 20), "cpu_count": os.cpu_count(),
            "memory_mb": mem, "memory_limit_mb": stats.memory_limit_mb(),
            "cpu_quota": stats.cpu_quota(), "energy_meters": meters_mod.available(a.sysfs_root),
            "thermal_zones": thermal.thermal_zones(a.sysfs_root),
            "cpu_freq_paths": thermal.cpu_freq_paths(a.sysfs_root),
            "vcgencmd": shutil.which("vcgencmd") is not None}


# -- lock -------------------------------------------------------------------------------
# -- command line -----------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runner.pyz", description="edgecompress on-device runner")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--runs", type=int, default=100)
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--min-seconds", type=float, default=2.0)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--cooldown", type=float, default=0.0)
    b.add_argument("--inputs")
    b.add_argument("--outputs")
    b.add_argument("--layout", choices=["NCHW", "NHWC"])
    b.add_argument("--input-layout", choices=["NCHW", "NHWC"], default="NCHW")
    b.add_argument("--input-shape", action="append", metavar="[NAME=]DIMS",
                   help="dims for a dynamic input when timing on random inputs (repeatable)")
    b.add_argument("--energy", default="auto", choices=["auto", "none", *meters_mod.METERS])
    b.add_argument("--energy-command")
    b.add_argument("--energy-interval", type=float, default=0.1)
    b.add_argument("--idle-seconds", type=float, default=1.0)
    b.add_argument("--sysfs-root", default="/")
    b.add_argument("--ops", action="store_true", help="per-operator profile after the timed runs")
    b.add_argument("--ops-runs", type=int, default=20)
    b.add_argument("--idle-w", type=float)
    b.add_argument("--load-w", type=float)
    f = sub.add_parser("facts")
    f.add_argument("--sysfs-root", default="/")
    f.add_argument("--path", default="~")
    return p


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    # runtimes may print to stdout; keep it for our JSON alone
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if a.cmd == "facts":
        doc = facts(a)
    else:
        if a.inputs and not a.outputs:
            parser().error("--inputs needs --outputs")
        if a.runs < 1 or a.threads < 1 or a.warmup < 0 or a.min_seconds < 0:
            parser().error("--runs and --threads must be >= 1, --warmup and --min-seconds >= 0")
        doc = bench(a).to_dict()
    out.write(json.dumps(doc) + "\n")
    out.flush()
    return 0 if doc.get("status", "ok") == "ok" else 1
