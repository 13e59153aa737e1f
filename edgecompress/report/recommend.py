"""The recommended artifact per target: the best by the objective among what may ship.

An artifact may ship on a target when its result there is ``ok`` (not failed, not
``degraded``), its quality is within the budget — accuracy at most ``max_accuracy_drop``
points below the source model's (with labels), top-1 agreement at least ``min_agreement``,
output cosine at least ``min_cosine`` — its peak RSS fits the device's memory (the budget's
``max_memory_mb``, else the device's cgroup limit or its memory), and it was not timed
under emulation (emulated timings are never compared with real ones; only ``size`` may
be chosen there). Budget defaults come from the target profile's ``budget:``; the command
line overrides them.

The reason names the figures, the runner-up and the margin, and whether the margin is
larger than the measurement noise: for latency, a one-sided Mann-Whitney U test on the two
artifacts' raw samples (p < 0.01), and — where the results database knows the target's rerun
noise (:func:`edgecompress.report.checks.rerun_noise`: how far one artifact moved between two
measurements on it) — a margin no larger than that is within the noise whatever the test says:
two artifacts timed one after the other can land in different phases of a device's speed;
size is exact; peak memory and energy are single measurements (noise unknown).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from ..errors import UsageError

#: objective -> (Row attribute, unit, label)
OBJECTIVES = {"p50": ("p50_ms", "ms", "p50"), "p90": ("p90_ms", "ms", "p90"),
              "energy": ("energy_mj", "mJ", "energy"), "size": ("size_bytes", "B", "size"),
              "peak_rss": ("peak_rss_mb", "MB", "peak RSS")}
ALPHA = 0.01


@dataclass
class Budget:
    objective: str = "p50"
    max_accuracy_drop: Optional[float] = 1.0      # points
    min_agreement: Optional[float] = 0.97
    min_cosine: Optional[float] = 0.99
    max_memory_mb: Optional[float] = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            from ..registry import suggest

            raise UsageError(f"--objective {self.objective!r}{suggest(self.objective, OBJECTIVES)}; "
                             f"valid: {', '.join(OBJECTIVES)}")
        for name, lo, hi in (("max_accuracy_drop", 0, 100), ("min_agreement", 0, 1), ("min_cosine", -1, 1)):
            v = getattr(self, name)
            if v is not None and not lo <= v <= hi:
                raise UsageError(f"--{name.replace('_', '-')} {v}: valid range {lo}..{hi}"
                                 + (" (a fraction, e.g. 0.98)" if hi == 1 else ""))

    @classmethod
    def for_profile(cls, profile_name: Optional[str], **overrides) -> "Budget":
        """The profile's budget (defaults when it cannot be loaded) with the non-None overrides."""
        base: dict = {}
        if profile_name:
            try:
                from ..profiles import load_profile

                base = load_profile(profile_name).budget.model_dump()
            except Exception:  # noqa: BLE001 - a profile file gone since the run: defaults
                base = {}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


@dataclass
class Recommendation:
    target: str
    artifact: Optional[str]
    objective: str
    value: Optional[float]
    reason: str
    run_id: Optional[str] = None
    unit: str = ""
    runner_up: Optional[str] = None
    margin_pct: Optional[float] = None
    above_noise: Optional[bool] = None
    excluded: dict = field(default_factory=dict)     # artifact -> why it may not ship

    def to_dict(self) -> dict:
        return asdict(self)


def why_not(row, budget: Budget, memory_limit_mb: Optional[float]) -> Optional[str]:
    """Why ``row`` may not ship under ``budget`` (None when it may)."""
    if not row.ok:
        return f"status {row.status}" + (f": {(row.error or '').splitlines()[0][:80]}" if row.error else "")
    if row.emulated and budget.objective != "size":
        return "emulated timing (not comparable with real devices)"
    if budget.max_accuracy_drop is not None and row.delta_accuracy is not None \
            and -row.delta_accuracy * 100 > budget.max_accuracy_drop + 1e-9:
        return f"accuracy {row.delta_accuracy * 100:+.1f} pts > -{budget.max_accuracy_drop:g} pt budget"
    if budget.min_agreement is not None and row.top1_agreement is not None \
            and row.top1_agreement < budget.min_agreement - 1e-12:
        return f"agreement {row.top1_agreement:.1%} < {budget.min_agreement:.1%}"
    if budget.min_cosine is not None and row.cosine is not None and row.cosine < budget.min_cosine - 1e-12:
        return f"cosine {row.cosine:.4f} < {budget.min_cosine:g}"
    if memory_limit_mb is not None and row.peak_rss_mb is not None and row.peak_rss_mb > memory_limit_mb:
        return f"peak RSS {row.peak_rss_mb:.1f} MB > memory limit {memory_limit_mb:.0f} MB"
    if getattr(row, OBJECTIVES[budget.objective][0]) is None:
        return f"{budget.objective} not measured"
    return None


def memory_limit(target: dict, budget: Budget) -> Optional[float]:
    """The budget's limit, else the device's cgroup limit, else its memory (facts), else None."""
    dev = (target or {}).get("device") or {}
    for v in (budget.max_memory_mb, dev.get("memory_limit_mb"), dev.get("memory_mb")):
        if v:
            return float(v)
    return None


def _fmt(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 1024:.1f} KB"
    return f"{value:.4g} {unit}"


def _noise(best, other, attr: str, objective: str, margin_pct: Optional[float] = None,
           noise=None) -> tuple[Optional[bool], str]:
    if objective == "size":
        return True, "sizes are exact"
    floor = (noise.pct.get(objective) if noise is not None else None)
    if floor is not None and margin_pct is not None and margin_pct <= floor:
        return False, (f"within this target's rerun noise (one artifact measured again moved up to "
                       f"{floor:.1f}%, {noise.pairs} rerun(s)): either may be faster")
    if objective in ("p50", "p90") and best.samples and other.samples and len(best.samples) >= 3 \
            and len(other.samples) >= 3:
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(other.samples, best.samples, alternative="greater").pvalue)
        if p < ALPHA:
            return True, f"above the noise (Mann-Whitney p={p:.1g})"
        return False, f"within the noise (Mann-Whitney p={p:.2g}): either may be faster"
    return None, "single measurements: noise unknown"


def recommend(rows: list, budget: Budget, target: Optional[dict] = None, noise=None) -> Recommendation:
    """The recommendation among ``rows`` (one run x target); ``noise``: the target's rerun noise
    (:class:`~edgecompress.report.checks.Noise`), where known."""
    attr, unit, label = OBJECTIVES[budget.objective]
    name = rows[0].target if rows else (target or {}).get("target", "?")
    run_id = rows[0].run_id if rows else (target or {}).get("run_id")
    limit = memory_limit(target or {}, budget)
    excluded, eligible = {}, []
    for r in rows:
        if r.artifact == "-":
            continue
        why = why_not(r, budget, limit)
        if why:
            excluded[r.artifact] = why
        else:
            eligible.append(r)
    if not eligible:
        reason = "nothing may ship: " + "; ".join(f"{a}: {w}" for a, w in excluded.items()) if excluded else \
            "no results"
        return Recommendation(name, None, budget.objective, None, reason, run_id, unit, excluded=excluded)
    eligible.sort(key=lambda r: (getattr(r, attr), r.size_bytes or 0, r.artifact))
    best = eligible[0]
    value = float(getattr(best, attr))
    parts = [f"{best.artifact}: {label} {_fmt(value, unit)}"]
    if budget.objective == "p50" and best.p50_ci:
        parts[0] += f" (95% CI {best.p50_ci[0]:.4g}-{best.p50_ci[1]:.4g})"
    q = best.quality
    if q is not None:
        parts[0] += f", {'accuracy' if best.accuracy is not None else 'agreement'} {q:.1%}"
    rec = Recommendation(name, best.artifact, budget.objective, value, "", run_id, unit, excluded=excluded)
    if len(eligible) > 1:
        other = eligible[1]
        ov = float(getattr(other, attr))
        rec.runner_up = other.artifact
        rec.margin_pct = (ov - value) / value * 100 if value else None
        rec.above_noise, why = _noise(best, other, attr, budget.objective, rec.margin_pct, noise)
        margin = "" if rec.margin_pct is None else f" ({rec.margin_pct:+.1f}%)"
        parts.append(f"runner-up {other.artifact} {_fmt(ov, unit)}{margin}, {why}")
    else:
        parts.append("the only artifact within budget")
    if excluded:
        parts.append("excluded: " + ", ".join(f"{a} ({w})" for a, w in excluded.items()))
    rec.reason = "; ".join(parts)
    return rec


def recommend_all(comparison, noise: Optional[dict] = None, **overrides) -> list[Recommendation]:
    """One recommendation per run x target of ``comparison`` (budgets from each target's profile;
    ``noise``: target -> its rerun noise)."""
    out = []
    groups: dict[tuple, list] = {}
    for r in comparison.rows:
        groups.setdefault((r.run_id, r.target), []).append(r)
    targets = {(t.get("run_id"), t["target"]): t for t in comparison.targets}
    for key, rows in groups.items():
        t = targets.get(key) or {"target": key[1], "run_id": key[0]}
        budget = Budget.for_profile(t.get("profile") or rows[0].profile, **overrides)
        out.append(recommend(rows, budget, t, (noise or {}).get(key[1])))
    return out
