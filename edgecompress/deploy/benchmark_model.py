"""Parse the text output of LiteRT's (TFLite's) ``benchmark_model`` into numbers.

Standard library only: the native (no-Python-on-device) benchmark mode runs the binary on
the device and parses its output here, on the host.

Formats understood (all seen in published captures; tests keep one of each):

* **old** (TF 1.x – 2.2): no ``INFO:`` prefix; ``Initialized session in 18.764ms``;
  ``Average inference timings in us: Warmup: W, Init: I, no stats: N`` (later ``Inference: N``).
* **middle** (TF 2.3 – 2.5): no prefix; ``Inference timings in us: Init: I, First inference: F,
  Warmup (avg): W, Inference (avg): N``; ``Peak memory footprint (MB): init=a overall=b``.
* **new** (TF 2.6+, LiteRT): every line prefixed ``INFO:`` / ``VERBOSE:`` / ``WARNING:``; the
  statistics line may carry percentiles (``p5= median= p95=``); averages of large values print in
  exponent form (``avg=1.24027e+06``); memory is ``Memory footprint delta from the start of the tool
  (MB): init=a overall=b`` and, with ``--report_peak_memory_footprint``, ``Overall peak memory
  footprint (MB) via periodic monitoring: x``.

The statistics lines are ``count=N first=F curr=C min=m max=M avg=A std=S [p5= median= p95=]``
(microseconds). When several appear, the first is the warm-up phase and the last the measured
runs (profiling tables' ``Timings (microseconds): count=...`` lines are not statistics lines).
With ``--enable_op_profiling`` the last ``Summary by node type`` table is returned per node type.

:func:`parse` returns a flat dict of what was found (``None`` for what was not printed); it raises
:class:`ValueError` when the text holds no inference timing at all (a crash, a wrong binary).
"""
from __future__ import annotations

import re
from typing import Any, Optional

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_PREFIX = re.compile(r"^\s*(?:INFO|VERBOSE|WARNING|WARN|ERROR|DEBUG)\s*:\s?")
_LOGCAT = re.compile(r"^.*?\btflite\s*:\s")          # "... tflite  : " (benchmark APK via logcat)
_KV = re.compile(rf"(\w+)=({NUM})")
_INIT_SESSION = re.compile(rf"Initialized session in ({NUM})\s*ms")
_NEW_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
    rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})")
_OLD_SUMMARY = re.compile(
    rf"Average inference timings in us: Warmup: ({NUM}), Init: ({NUM}), (?:no stats|Inference): ({NUM})")
_MEM_DELTA = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({NUM}) overall=({NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUM})")
_THREADS = re.compile(r"^(?:#threads used for CPU inference|Num threads)\s*:\s*\[(\d+)\]")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({NUM})")
_DELEGATE = re.compile(r"Explicitly applied (\w+) delegate|Created TensorFlow Lite (\w+) delegate"
                       r"|Created TensorFlow Lite delegate for (GPU)|Replacing .* with delegate \((\w+)\)")
_SUMMARY_HEADER = "Summary by node type"


def _num(s: str) -> float:
    return float(s)


def _ms(us: float) -> float:
    return round(us / 1000.0, 6)


def _clean_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if _LOGCAT.match(line) and "timings" in line:
            line = _LOGCAT.sub("", line)
        lines.append(_PREFIX.sub("", line))
    return lines


def _stats(line: str) -> dict[str, float]:
    return {k: _num(v) for k, v in _KV.findall(line)}


def _node_type_table(lines: list[str], start: int) -> list[dict[str, Any]]:
    """Rows of a "Summary by node type" table starting after ``lines[start]`` (its title line)."""
    rows = []
    for line in lines[start + 1:]:
        s = line.strip()
        if not s:
            if rows:
                break
            continue
        if s.startswith("[Node type]"):
            continue
        if s.startswith(("Timings", "=====", "Memory")):
            break
        parts = s.split()
        # node type may contain spaces (XNNPACK ops: "Convolution (NHWC, F32) IGEMM"): take 6 from the right
        if len(parts) < 7:
            break
        tail = parts[-6:]
        try:
            count, avg_ms = int(tail[0]), _num(tail[1])
            pct, cdf = _num(tail[2].rstrip("%")), _num(tail[3].rstrip("%"))
            mem_kb, called = _num(tail[4]), int(tail[5])
        except ValueError:
            break
        rows.append({"node_type": " ".join(parts[:-6]), "count": count, "avg_ms": avg_ms,
                     "percent": pct, "cdf_percent": cdf, "mem_kb": mem_kb, "times_called": called})
    return rows


def parse(text: str) -> dict[str, Any]:
    """Numbers from one ``benchmark_model`` run (times in ms, memory in MB; ``None`` if not printed)."""
    raw_lines = text.splitlines()
    prefixed = any(_PREFIX.match(l) for l in raw_lines)
    lines = _clean_lines(text)
    out: dict[str, Any] = {
        "format": "new" if prefixed else "plain",
        "init_ms": None, "first_ms": None, "warmup_mean_ms": None, "warmup_count": None,
        "mean_ms": None, "std_ms": None, "min_ms": None, "max_ms": None, "count": None,
        "p5_ms": None, "p50_ms": None, "p95_ms": None,
        "memory_init_mb": None, "memory_overall_mb": None, "peak_memory_mb": None,
        "threads": None, "model_size_mb": None, "delegates": [], "op_profile": None,
    }
    stat_lines: list[dict[str, float]] = []
    summary_at: Optional[int] = None
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("count="):
            stat_lines.append(_stats(s))
        elif _SUMMARY_HEADER in s:
            summary_at = i
        if (m := _INIT_SESSION.search(s)) and out["init_ms"] is None:
            out["init_ms"] = _num(m.group(1))
        if m := _NEW_SUMMARY.search(s):
            out["format"] = "new" if prefixed else "middle"
            init, first, warm, inf = (_num(g) for g in m.groups())
            out.update(init_ms=_ms(init), first_ms=_ms(first), warmup_mean_ms=_ms(warm), mean_ms=_ms(inf))
        elif m := _OLD_SUMMARY.search(s):
            out["format"] = "old"
            warm, init, inf = (_num(g) for g in m.groups())
            out.update(init_ms=_ms(init), warmup_mean_ms=_ms(warm), mean_ms=_ms(inf))
        if m := _MEM_DELTA.search(s):
            out["memory_init_mb"], out["memory_overall_mb"] = _num(m.group(1)), _num(m.group(2))
        if m := _PEAK.search(s):
            out["peak_memory_mb"] = _num(m.group(1))
        if (m := _THREADS.match(s)) and out["threads"] is None:
            out["threads"] = int(m.group(1))
        if m := _MODEL_SIZE.search(s):
            out["model_size_mb"] = _num(m.group(1))
        if m := _DELEGATE.search(s):
            name = next(g for g in m.groups() if g)
            name = {"TfLiteXNNPackDelegate": "XNNPACK", "TfLiteGpuDelegateV2": "GPU"}.get(name, name)
            if name.upper() not in [d.upper() for d in out["delegates"]]:
                out["delegates"].append(name)

    if stat_lines:
        run = stat_lines[-1]
        us = {k: _ms(v) for k, v in run.items() if k != "count"}
        out.update(count=int(run.get("count", 0)) or None, std_ms=us.get("std"), min_ms=us.get("min"),
                   max_ms=us.get("max"), p5_ms=us.get("p5"), p50_ms=us.get("median"), p95_ms=us.get("p95"))
        if us.get("avg") is not None:
            out["mean_ms"] = us["avg"]          # same number as the summary line, more digits when present
        elif out["mean_ms"] is None and us.get("curr") is not None and run.get("count") == 1:
            out["mean_ms"] = us["curr"]
        if out["first_ms"] is None and len(stat_lines) >= 2:
            warm = stat_lines[0]
            first = warm.get("first", warm.get("curr"))
            out["first_ms"] = _ms(first) if first is not None else None
        if len(stat_lines) >= 2:
            out["warmup_count"] = int(stat_lines[0].get("count", 0)) or None
            if out["warmup_mean_ms"] is None and "avg" in stat_lines[0]:
                out["warmup_mean_ms"] = _ms(stat_lines[0]["avg"])
    if summary_at is not None:
        out["op_profile"] = _node_type_table(lines, summary_at) or None
    if out["mean_ms"] is None:
        tail = " | ".join(l.strip() for l in lines if l.strip())[-300:]
        raise ValueError(f"no inference timings in benchmark_model output (last lines: {tail or '(empty)'})")
    return out
