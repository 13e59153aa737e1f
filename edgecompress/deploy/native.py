"""Native benchmark mode: measure on a device with no Python, with LiteRT's ``benchmark_model``.

A target with ``mode: native`` and ``benchmark_model: PATH`` (the binary for the device's ABI,
e.g. LiteRT's ``android_aarch64_benchmark_model``) is measured like this, over any transport
(adb on a phone; ssh works too):

1. the session (:class:`~edgecompress.deploy.session.DeviceSession`, the same for every mode) pushes
   the binary and the ``.tflite`` artifact into ``<workdir>/blobs/<sha256>`` — skipped when that
   blob is already there, else uploaded to ``tmp/``, its sha256 checked on the device by
   ``deploy/scripts/blobs.sh``, then renamed (nothing half-written is ever run); the device lock
   is ``deploy/scripts/lock.sh``;
2. one shell script on the device (``deploy/scripts/native_bench.sh`` after ``battery.sh``) reads
   the battery/charging/thermal/cpufreq state (:mod:`edgecompress.deploy.android_sysfs`); when on battery it samples the idle phone for
   ``IDLE_SAMPLE_S`` and starts the battery sampling loop in the background; it runs
   ``benchmark_model`` with flags from the profile's ``measure`` settings
   (:func:`benchmark_flags`), stops the loop and reads the state again. Energy per inference is
   (run power − idle power) × mean latency;
3. the output is parsed (:mod:`edgecompress.deploy.benchmark_model`) into the DESIGN.md benchmark result.

What this mode cannot give is said in the result's ``notes`` and left ``null``: raw per-run
samples (``benchmark_model`` prints aggregates only), p90/p99 (it prints p5/median/p95 at most,
older builds none), baseline RSS, outputs for fidelity checks (it feeds random inputs).
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Optional

from . import android_sysfs as sysfs
from .benchmark_model import parse as parse_benchmark_output
from ..device.result import ArtifactInfo, BenchmarkResult, DeviceInfo, Energy, Latency, Memory, Thermal
from ..errors import ConnectionLost, EdgeCompressError
from ..manifest import ArtifactRecord
from .agents import DeviceAgent, script

#: benchmark_model flags per profile delegate (``cpu`` = plain TFLite kernels, XNNPACK off)
DELEGATE_FLAGS = {
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
    "hexagon": ["--use_hexagon=true"],
    "cpu": ["--use_xnnpack=false"],
}
#: flags an older binary may not know; dropped (with a note) if the binary rejects them
OPTIONAL_FLAGS = ("--report_peak_memory_footprint=true",)
SAMPLE_INTERVAL_S = 0.1
#: seconds of idle battery sampling just before ``benchmark_model`` starts (the baseline subtracted)
IDLE_SAMPLE_S = 1.0
_MARK = "__EC_SECTION__"


def benchmark_flags(graph: str, measure, *, delegate: str = "xnnpack", op_profiling: bool = False,
                    threads: Optional[int] = None, optional: bool = True) -> list[str]:
    """``benchmark_model`` arguments for one run, from a profile's :class:`~edgecompress.profiles.Measure`."""
    if delegate not in DELEGATE_FLAGS:
        raise EdgeCompressError(f"benchmark_model has no delegate {delegate!r}; valid: {', '.join(DELEGATE_FLAGS)}")
    flags = [f"--graph={graph}", f"--num_threads={threads or measure.threads}",
             f"--warmup_runs={measure.warmup}", f"--num_runs={measure.runs}",
             f"--min_secs={measure.min_seconds:g}", f"--max_secs={max(measure.timeout_s * 0.8, 1):g}"]
    if measure.cooldown_s:
        flags.append(f"--run_delay={measure.cooldown_s:g}")      # pause between runs ("Inter-run delay")
    flags += DELEGATE_FLAGS[delegate]
    if op_profiling:
        flags.append("--enable_op_profiling=true")
    if optional:
        flags += list(OPTIONAL_FLAGS)
    return flags


def _artifact_info(artifact) -> tuple[Path, ArtifactInfo]:
    if isinstance(artifact, ArtifactRecord):
        return Path(artifact.path), ArtifactInfo(sha256=artifact.sha256, format=artifact.format,
                                                 precision=artifact.precision)
    p = Path(artifact)
    fmt = p.suffix.lstrip(".")
    precision = p.name.split(".")[1] if p.name.count(".") >= 2 else None
    return p, ArtifactInfo(format=fmt, precision=precision)


class NativeAgent(DeviceAgent):
    """Benchmarks with ``benchmark_model`` (``mode: native``); the session holds the device lock
    and pushes the binary and the artifacts by hash (``deploy/scripts/blobs.sh`` checks them)."""

    mode = "native"
    delegates = tuple(d for d in DELEGATE_FLAGS if d != "cpu")

    def __init__(self, session):
        super().__init__(session)
        target = session.target
        if not target.benchmark_model:
            raise EdgeCompressError(f"target {target.name!r}: native mode needs `benchmark_model:` "
                                    f"(path on this host to LiteRT's benchmark_model for the device's ABI)")
        self.binary = Path(target.benchmark_model).expanduser()
        if not self.binary.is_file():
            raise EdgeCompressError(f"target {target.name!r}: benchmark_model {self.binary} does not exist; "
                                    f"download LiteRT's benchmark_model for the device's ABI (e.g. "
                                    f"android_aarch64_benchmark_model) and point `benchmark_model:` at it")
        self.remote_binary = ""
        self._facts: Optional[dict] = None

    @property
    def profile(self):
        return self.session.profile

    @property
    def transport(self):
        return self.session.transport

    @property
    def workdir(self) -> str:
        return self.session.workdir

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Push ``benchmark_model`` once (by hash)."""
        self.session.sync([self.binary])
        self.remote_binary = self.session.blob_path(self.binary)

    def files_argv(self, *args):
        return ["sh", "-c", script("blobs.sh"), "ec-blobs", *args]

    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            res = self.transport.run(["sh", "-c", script("facts.sh")], timeout=60)
            kv = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
            android = kv.get("release")
            self._facts = {
                "arch": kv.get("abi") or (kv.get("uname", "").split()[-1:] or [None])[0],
                "os": (f"Android {android} (API {kv.get('sdk')})" if android else kv.get("uname")),
                "model": kv.get("model") or None,
            }
        return self._facts

    # -- one benchmark --------------------------------------------------------------------------
    def bench(self, rec, *, measure=None, power=None, inputs=None, input_layout="NCHW",
              delegate: Optional[str] = None, op_profiling: bool = False,
              energy: Optional[str] = None, ops: bool = False) -> BenchmarkResult:
        """One benchmark result; a failure gives ``status: failed`` and ``error`` (no raise)."""
        path, art = _artifact_info(rec)
        measure = measure or self.profile.measure
        delegate = delegate or next((d for d in self.profile.delegates if d in DELEGATE_FLAGS), "cpu")
        result = _empty_result(self.target.name, art, measure)
        try:
            if art.format != "tflite":
                raise EdgeCompressError(
                    f"native mode runs .tflite files with benchmark_model; {path.name} is {art.format!r} "
                    f"(use mode: python over SSH/Termux for ONNX, or build tflite artifacts)")
            self._run(result, self.remote_binary, self.session.blob_path(path), measure, delegate,
                      op_profiling or ops, energy or self.target.energy or self.profile.energy.meter)
            if ops and result.extra.get("op_profile"):
                from ..device.ops import from_node_type_table

                result.ops = from_node_type_table(result.extra["op_profile"], delegate)
        except ConnectionLost:
            raise                                   # DeviceSession reconnects and measures again
        except (EdgeCompressError, ValueError, OSError) as e:
            result.fail(f"{type(e).__name__}: {e}")
        return result

    def _bench_argv(self, binary: str, flags: list[str], tag: str, sample: bool) -> list[str]:
        return sysfs.bench_argv(self.target.sysfs_root, self.workdir, tag, sample, SAMPLE_INTERVAL_S,
                                IDLE_SAMPLE_S, _MARK, [binary, *flags])

    def _run(self, result: BenchmarkResult, binary, graph, measure, delegate, op_profiling, meter) -> None:
        pre = sysfs.parse_probe(self.transport.run(sysfs.probe_argv(self.target.sysfs_root), timeout=60).stdout)
        reason = None
        if meter in ("none",):
            reason = "energy measurement is off for this target (energy: none)"
        elif meter not in ("auto", "android-battery"):
            reason = f"meter {meter!r} is not available in native mode (only android-battery)"
        else:
            reason = sysfs.charging_reason(pre)
        flags = benchmark_flags(graph, measure, delegate=delegate, op_profiling=op_profiling)
        tag = uuid.uuid4().hex[:8]
        t0 = time.monotonic()
        res = self.transport.run(self._bench_argv(binary, flags, tag, reason is None),
                                 timeout=measure.timeout_s)
        sections = _sections(res.stdout)
        if "rc=0" not in sections.get("__rc__", "") and _unknown_flag(sections.get("bench", "")):
            result.add_note("this benchmark_model does not know --report_peak_memory_footprint: "
                            "peak memory comes from the footprint delta only")
            flags = benchmark_flags(graph, measure, delegate=delegate, op_profiling=op_profiling, optional=False)
            res = self.transport.run(self._bench_argv(binary, flags, tag, reason is None),
                                     timeout=measure.timeout_s)
            sections = _sections(res.stdout)
        wall = time.monotonic() - t0
        result.extra["command"] = ["benchmark_model"] + flags
        if res.timed_out:
            raise EdgeCompressError(f"benchmark_model did not finish within measure.timeout_s="
                                    f"{measure.timeout_s:g} s")
        if not res.ok or sections.get("__rc__") != "rc=0":
            tail = " | ".join(sections.get("bench", res.stdout + res.stderr).strip().splitlines()[-6:])
            raise EdgeCompressError(f"benchmark_model failed ({sections.get('__rc__') or res.describe()}): {tail}")
        parsed = parse_benchmark_output(sections.get("bench", ""))
        _fill(result, parsed, self.facts(), delegate, measure)
        after = sysfs.parse_probe(sections.get("after", ""))
        result.thermal = Thermal.from_dict(sysfs.thermal_block(pre, after))
        if reason is None:
            reason = sysfs.charging_reason(after)       # plugged in during the run
            if reason is None:
                samples = sysfs.parse_samples(sections.get("samples", ""))
                end = [_float(ln[4:]) for ln in sections.get("samples", "").splitlines() if ln.startswith("END ")]
                if end and end[0] is not None:          # drop samples taken after the binary exited
                    samples = [s for s in samples if s[0] <= end[0]]
                result.energy = Energy.from_dict(sysfs.battery_energy(
                    samples, result.latency_ms.mean, sysfs.parse_samples(sections.get("idle", ""))))
        if reason is not None:
            result.energy = Energy.from_dict(sysfs.unavailable(reason))
        result.extra["seconds"] = round(wall, 3)


def _float(text: str) -> Optional[float]:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _unknown_flag(text: str) -> bool:
    low = text.lower()
    return ("unconsumed cmdline flags" in low or "unknown flag" in low or "unrecognized" in low) and \
        any(f.split("=")[0].lstrip("-") in low for f in OPTIONAL_FLAGS)


def _sections(stdout: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    cur = "pre"
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            name = line[len(_MARK):]
            if name.startswith("rc="):
                out.setdefault("__rc__", []).append(name)
                continue
            cur = name
            out.setdefault(cur, [])
            continue
        out.setdefault(cur, []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _empty_result(target: str, art: ArtifactInfo, measure) -> BenchmarkResult:
    return BenchmarkResult(target=target, artifact=art, mode="native",
                           device=DeviceInfo(runtime="LiteRT benchmark_model", threads=measure.threads,
                                             extra={"delegate": None}),
                           latency_ms=Latency(), memory_mb=Memory(),
                           energy=Energy.from_dict(sysfs.unavailable("not measured")), thermal=Thermal())


def _fill(result: BenchmarkResult, p: dict, facts: dict, delegate: str, measure) -> None:
    note = result.add_note
    dev = result.device
    dev.arch, dev.os, dev.threads = facts.get("arch"), facts.get("os"), p.get("threads") or measure.threads
    dev.extra.update(model=facts.get("model"), delegate=delegate, delegates_applied=p.get("delegates") or [])
    lat = result.latency_ms
    lat.load, lat.first, lat.mean, lat.std = p["init_ms"], p["first_ms"], p["mean_ms"], p["std_ms"]
    lat.min, lat.max, lat.p50 = p["min_ms"], p["max_ms"], p["p50_ms"]
    if p["p5_ms"] is not None:
        lat.extra.update(p5=p["p5_ms"], p95=p["p95_ms"])
        note("benchmark_model prints p5/median/p95 only: latency_ms.p90 and p99 are null "
             "(p95 is in latency_ms.p95)")
    else:
        note("this benchmark_model prints no percentiles: latency_ms.p50, p90 and p99 are null")
    note("benchmark_model reports aggregates only: latency_ms.samples is null")
    result.memory_mb.peak_rss, result.memory_mb.delta = p["peak_memory_mb"], p["memory_overall_mb"]
    note("memory_mb.baseline_rss is null: benchmark_model reports RSS growth from its own start "
         "(memory_mb.delta) and, with --report_peak_memory_footprint, the peak (memory_mb.peak_rss)")
    if p["peak_memory_mb"] is None:
        note("memory_mb.peak_rss is null: this benchmark_model printed no peak memory footprint")
    if delegate not in [d.lower() for d in p.get("delegates") or []] and delegate not in ("cpu", "xnnpack"):
        note(f"asked for the {delegate} delegate but benchmark_model did not report applying it")
    note("no outputs: benchmark_model feeds random inputs, so fidelity is not checked in native mode")
    result.runs = p["count"]
    result.extra["benchmark_model"] = {k: v for k, v in p.items() if k != "op_profile"}
    if p.get("op_profile"):
        result.extra["op_profile"] = p["op_profile"]
