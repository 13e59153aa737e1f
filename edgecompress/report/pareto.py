"""The Pareto front (latency x size x quality) with differences too small to matter counted as ties.

A plain Pareto front stars the smallest file whatever it costs: a dynamic-range INT8 ONNX 5 %
smaller than an INT8 TFLite and 14x slower is "Pareto-optimal". Here one artifact beats another
on an objective only by more than that objective's tolerance (epsilon-dominance):

* latency (p50): the 95 % confidence intervals of the two medians do not overlap (where both
  results have one; else faster by more than ``LATENCY_TOL``);
* size: smaller by more than ``SIZE_TOL`` (a few percent of a file is not a reason to ship it);
* quality (accuracy, else agreement, else cosine): higher by more than ``QUALITY_TOL``.

``a`` dominates ``b`` when ``b`` beats it on no objective and it beats ``b`` on at least one.
Used by ``compare`` (:func:`edgecompress.report.mark_pareto`) and ``tune``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

LATENCY_TOL = 0.05
SIZE_TOL = 0.10
QUALITY_TOL = 0.005


@dataclass
class Point:
    p50_ms: Optional[float]
    size_bytes: Optional[float]
    quality: Optional[float] = None
    p50_ci: Optional[Sequence[float]] = None


def _faster(a: Point, b: Point) -> bool:
    if a.p50_ms is None or b.p50_ms is None or a.p50_ms >= b.p50_ms:
        return False
    if a.p50_ci and b.p50_ci:                 # the measurement's own noise decides
        return a.p50_ci[1] < b.p50_ci[0]
    return a.p50_ms < b.p50_ms * (1 - LATENCY_TOL)


def _smaller(a: Point, b: Point) -> bool:
    return a.size_bytes is not None and b.size_bytes is not None and a.size_bytes < b.size_bytes * (1 - SIZE_TOL)


def _better(a: Point, b: Point) -> bool:
    return a.quality is not None and b.quality is not None and a.quality > b.quality + QUALITY_TOL


def beats(a: Point, b: Point, use_quality: bool = True) -> bool:
    """``a`` is better than ``b`` by more than the tolerance on at least one objective."""
    return _faster(a, b) or _smaller(a, b) or (use_quality and _better(a, b))


def dominates(a: Point, b: Point, use_quality: bool = True) -> bool:
    return beats(a, b, use_quality) and not beats(b, a, use_quality)


def front(points: list[Point], use_quality: bool = True) -> list[bool]:
    """For each point: no other point dominates it (tolerances can, in theory, make a cycle in
    which every point is dominated; then the plain Pareto front is given)."""
    marks = [not any(dominates(o, p, use_quality) for j, o in enumerate(points) if j != i)
             for i, p in enumerate(points)]
    if points and not any(marks):
        marks = [not any(_plain(o, p, use_quality) for j, o in enumerate(points) if j != i)
                 for i, p in enumerate(points)]
    return marks


def _plain(a: Point, b: Point, use_quality: bool) -> bool:
    pairs = [(a.p50_ms, b.p50_ms), (a.size_bytes, b.size_bytes)]
    if use_quality:
        pairs.append((None if a.quality is None else -a.quality, None if b.quality is None else -b.quality))
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    return bool(pairs) and all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)
