"""Statistics of latency samples: the median's CI, CV, stability and validity (device/stats.py)."""
from __future__ import annotations

import math
import random

import numpy as np

from edgecompress.device import stats


def test_median_ci_ranks_are_the_exact_binomial_ones_and_cover_at_95_percent():
    assert stats._ranks(20, 0.95) == (5, 14)           # 1-based ranks 6 and 15: the textbook answer for n=20
    assert stats._ranks(5, 0.95) == (0, 4)             # too few samples: the full range
    lo, hi = stats._ranks(1000, 0.95)
    cover = sum(math.comb(1000, i) for i in range(lo + 1, hi + 1)) / 2 ** 1000
    assert 0.95 <= cover < 0.96
    rng = random.Random(1)
    hits = 0
    for _ in range(400):                               # lognormal: median exactly 1.0
        xs = [math.exp(rng.gauss(0, 0.5)) for _ in range(60)]
        a, b = stats.median_ci(xs)
        hits += a <= 1.0 <= b
    assert 0.93 <= hits / 400 <= 0.995


def test_summarize_has_cv_and_ci_matching_numpy():
    rng = np.random.default_rng(0)
    xs = list(rng.normal(10, 1, 500))
    s = stats.summarize(xs)
    assert abs(s["p50"] - np.median(xs)) < 1e-9
    assert abs(s["cv"] - np.std(xs) / np.mean(xs)) < 1e-9
    assert s["p50_ci"][0] < s["p50"] < s["p50_ci"][1]
    assert s["p50_ci"][1] - s["p50_ci"][0] < 0.3


def test_assess_flags_drift_low_cpu_share_and_validity():
    steady = [1.0 + 0.01 * (i % 7) for i in range(200)]
    ok = stats.assess(steady, wall_s=0.2, cpu_s=0.2, min_runs=100, min_seconds=0.1)
    assert ok["stable"] and ok["valid"] and ok["stability"]["reasons"] == []
    drift = steady[:100] + [x * 1.5 for x in steady[100:]]
    d = stats.assess(drift, wall_s=0.25, cpu_s=0.25)
    assert not d["stable"] and "drifted +50" in d["stability"]["reasons"][0]
    starved = stats.assess(steady, wall_s=0.2, cpu_s=0.07)
    assert not starved["stable"] and "CPU time" in starved["stability"]["reasons"][0]
    # a cgroup quota of 0.25 CPU is the device's nature, not contention
    quota = stats.assess(steady, wall_s=0.2, cpu_s=0.05, quota=0.25)
    assert quota["stable"] and abs(quota["stability"]["cpu_share"] - 1.0) < 1e-9
    short = stats.assess(steady[:10], wall_s=0.01, cpu_s=0.01, min_runs=100, min_seconds=2)
    assert not short["valid"] and len(short["validity"]["reasons"]) == 2
