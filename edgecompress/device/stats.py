"""Statistics of latency samples (standard library only: this runs on the device).

* :func:`summarize` — mean, p50, p90, p99, std, min, max, and the coefficient of variation.
* :func:`median_ci` — a distribution-free confidence interval for the median from the
  order statistics: the ranks ``j < k`` with ``P(j <= B(n, 1/2) < k) >= confidence`` (exact
  binomial up to 1,000 samples, the normal approximation above), so ``[x_(j), x_(k)]``
  covers the true median with at least that probability whatever the distribution.
* :func:`assess` — what a result says about its own trustworthiness:
  ``stable`` (false when the median drifted between the first and the second half of the
  samples by more than :data:`DRIFT_PCT` with disjoint half CIs, when the device reported
  throttling, or when the process got far less CPU time than wall time — below
  :data:`MIN_CPU_SHARE` of what its threads and its cgroup CPU quota allow: another process
  took the core) and ``valid`` (MLPerf-style: the requested minimum number of runs AND the
  minimum duration were both met; ``mlperf_minimums`` says whether MLPerf's single-stream
  floors, 1,024 queries and 60 s, were met too).
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

DRIFT_PCT = 10.0          # median of the second half vs. the first, percent
MIN_CPU_SHARE = 0.6       # CPU time / wall time, as a share of what the process could get
MLPERF_MIN_QUERIES = 1024
MLPERF_MIN_SECONDS = 60.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of already sorted values."""
    if not sorted_values:
        raise ValueError("no samples")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict:
    """mean, p50, p90, p99, std (population), min, max, cv (std / mean) and the p50's 95 % CI."""
    s = sorted(samples)
    n = len(s)
    mean = sum(s) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / n)
    lo, hi = median_ci(s)
    return {"mean": mean, "p50": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99),
            "std": std, "min": s[0], "max": s[-1], "cv": std / mean if mean > 0 else None,
            "p50_ci": [lo, hi], "p50_ci_confidence": 0.95}


def _ranks(n: int, confidence: float) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the order statistics bounding the median's CI: the largest
    1-based j with P(B(n, 1/2) <= j - 1) <= alpha / 2, and its mirror n - j + 1."""
    alpha = 1.0 - confidence
    if n <= 1000:
        cdf, j, half = 0.0, 0, 0.5 ** n
        for i in range(n + 1):
            cdf += math.comb(n, i) * half
            if cdf > alpha / 2:
                break
            j = i + 1
    else:
        z = 1.959963984540054 if abs(confidence - 0.95) < 1e-9 else _z(confidence)
        j = int(math.floor(n / 2 - z * math.sqrt(n) / 2))
    lo = max(j, 1) - 1
    return lo, n - 1 - lo


def _z(confidence: float) -> float:
    """Two-sided normal quantile by bisection on erf (rarely used: 95 % is precomputed)."""
    target = confidence
    a, b = 0.0, 10.0
    for _ in range(80):
        m = (a + b) / 2
        if math.erf(m / math.sqrt(2)) < target:
            a = m
        else:
            b = m
    return (a + b) / 2


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median (order statistics); the full range for tiny samples."""
    s = sorted(samples)
    if not s:
        raise ValueError("no samples")
    lo, hi = _ranks(len(s), confidence)
    return s[lo], s[hi]


def _cgroups(proc_root: str) -> list[tuple[list[str], str]]:
    """(controllers, path) of each line of this process's ``/proc/self/cgroup`` (v2: controllers ``[""]``)."""
    try:
        with open(os.path.join(proc_root, "proc/self/cgroup")) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [(p[1].split(","), p[2].lstrip("/")) for p in (line.split(":", 2) for line in lines) if len(p) == 3]


def cpu_quota(proc_root: str = "/") -> Optional[float]:
    """This process's cgroup CPU limit in CPUs (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), None if unlimited."""
    for ctrls, path in _cgroups(proc_root):
        try:
            if ctrls == [""]:                                   # v2 unified
                with open(os.path.join(proc_root, "sys/fs/cgroup", path, "cpu.max")) as f:
                    quota, period = f.read().split()
                if quota != "max":
                    return int(quota) / int(period)
            elif "cpu" in ctrls:
                for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
                    base = os.path.join(proc_root, "sys/fs/cgroup", mount, path)
                    if os.path.exists(os.path.join(base, "cpu.cfs_quota_us")):
                        with open(os.path.join(base, "cpu.cfs_quota_us")) as f:
                            quota = int(f.read().strip())
                        with open(os.path.join(base, "cpu.cfs_period_us")) as f:
                            period = int(f.read().strip())
                        if quota > 0:
                            return quota / period
                        break
        except (OSError, ValueError):
            continue
    return None


def memory_limit_mb(proc_root: str = "/") -> Optional[float]:
    """This process's cgroup memory limit in MB (v2 ``memory.max`` / v1 ``memory.limit_in_bytes``), None if none."""
    for ctrls, path in _cgroups(proc_root):
        if ctrls == [""]:
            candidates = [os.path.join(proc_root, "sys/fs/cgroup", path, "memory.max")]
        elif "memory" in ctrls:
            candidates = [os.path.join(proc_root, "sys/fs/cgroup/memory", path, "memory.limit_in_bytes")]
        else:
            continue
        for c in candidates:
            try:
                with open(c) as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text != "max" and text.isdigit() and int(text) < (1 << 60):
                return int(text) / (1 << 20)
    return None


def assess(ms: Sequence[float], *, wall_s: Optional[float], cpu_s: Optional[float], threads: int = 1,
           throttled: Optional[bool] = None, min_runs: int = 0, min_seconds: float = 0.0,
           quota: Optional[float] = None) -> dict:
    """``stable``, ``stability`` (why), ``valid`` and ``validity`` for one result's samples (ms)."""
    n = len(ms)
    reasons = []
    drift = None
    if n >= 20:
        first, second = sorted(ms[: n // 2]), sorted(ms[n // 2:])
        m1, m2 = percentile(first, 50), percentile(second, 50)
        drift = (m2 - m1) / m1 * 100.0 if m1 > 0 else None
        c1, c2 = median_ci(first), median_ci(second)
        apart = c1[1] < c2[0] or c2[1] < c1[0]
        if drift is not None and abs(drift) > DRIFT_PCT and apart:
            reasons.append(f"median drifted {drift:+.1f}% from the first to the second half of the runs")
    if throttled:
        reasons.append("the device reported CPU throttling during the runs")
    share = None
    allowed = float(threads)
    cpus = os.cpu_count() or threads
    allowed = min(allowed, float(cpus))
    if quota:
        allowed = min(allowed, quota)
    if wall_s and cpu_s is not None and wall_s > 0:
        share = (cpu_s / wall_s) / allowed if allowed > 0 else None
        if share is not None and share < MIN_CPU_SHARE:
            reasons.append(f"CPU time was {cpu_s / wall_s:.2f} of wall time (expected about {allowed:.2g}): "
                           f"another process took the CPU")
    seconds = sum(ms) / 1000.0 if wall_s is None else wall_s
    v_reasons = []
    if n < min_runs:
        v_reasons.append(f"{n} runs < the minimum {min_runs}")
    if seconds < min_seconds:
        v_reasons.append(f"{seconds:.2f} s < the minimum {min_seconds:g} s")
    return {"stable": not reasons,
            "stability": {"reasons": reasons, "drift_pct": drift, "cpu_share": share, "cpu_allowed": allowed,
                          "cpu_quota": quota, "throttled": throttled},
            "valid": not v_reasons,
            "validity": {"runs": n, "seconds": seconds, "min_runs": min_runs, "min_seconds": min_seconds,
                         "reasons": v_reasons,
                         "mlperf_minimums": n >= MLPERF_MIN_QUERIES and seconds >= MLPERF_MIN_SECONDS}}
