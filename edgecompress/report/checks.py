"""Regression checks for CI: ``--fail-on METRIC:+PCT%`` against a baseline run.

Rows are matched by target and artifact (``precision.format``). For latency, memory, energy
and size a regression is an increase of more than PCT percent of the baseline value. For
``accuracy`` it is a drop of more than PCT percentage points (accuracy on the device with
labels, else top-1 agreement with the host reference). An artifact that was ok in the
baseline and failed now fails every rule; rows only in one run are not compared.

Latency rules (p50, p90, mean) are judged on the raw samples of both runs, so noise cannot
fake a regression. A row fails only when all three hold: the change of the statistic is
above PCT; it is significant — a one-sided Mann-Whitney U test of "the current samples are
larger than the baseline samples times (1 + PCT/100)" at p < :data:`ALPHA` (for p90 the same
test on the slowest half of each run's samples, the tail the p90 is taken from); and the
fastest run is slower than the baseline's fastest by more than PCT too (other processes
only ever add time, so a truly slower artifact is slower in its fastest runs as well, while
a busy device leaves some runs untouched). A row that does not fail and whose result (in
either run) is not ``stable`` (drift between halves, throttling, CPU time far below wall
time; :mod:`edgecompress.device.stats`) is reported ``unstable``: neither passed nor failed.
Rows measured on an emulated target (``emulated: true``) are never checked, in either run.

What one run's samples cannot show is how far a device moves *between* runs (a shared VM's
speed shifts by a quarter for seconds at a time; a whole run can sit in one such phase). So
the device's rerun noise is learned from the results database: :func:`rerun_noise` takes, on
each target, the latest :data:`NOISE_PAIRS` pairs of results of the *same* artifact (sha256,
runtime, arch and threads) measured one after the other, and the largest change between them
per metric. For the device metrics (latency, peak RSS, energy) a change no larger than that
is never a regression (``noise_pct`` and the note say so); and a row whose artifact is the
baseline's, byte for byte, on the same runtime and device cannot have regressed at all — its
change *is* a rerun (the note gives it).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Optional

from ..errors import UsageError
from ..registry import suggest

#: metric name -> (Row attribute, unit, what is worse: "up" or "down")
METRICS = {
    "p50": ("p50_ms", "ms", "up"),
    "p90": ("p90_ms", "ms", "up"),
    "mean": ("mean_ms", "ms", "up"),
    "peak_rss": ("peak_rss_mb", "MB", "up"),
    "energy": ("energy_mj", "mJ", "up"),
    "size": ("size_bytes", "B", "up"),
    "accuracy": ("quality", "", "down"),
}

#: metrics measured on the device (their noise is the device's): metric -> results column
DEVICE_METRICS = {"p50": "p50_ms", "p90": "p90_ms", "mean": "mean_ms", "peak_rss": "peak_rss_mb",
                  "energy": "mj_per_inference"}
NOISE_PAIRS = 20          # the latest reruns of identical artifacts that set a target's noise floor

_RULE = re.compile(r"^\s*([A-Za-z_0-9]+)\s*:\s*([+-]?)\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Rule:
    metric: str
    pct: float

    def __str__(self) -> str:
        sign = "-" if METRICS[self.metric][2] == "down" else "+"
        return f"{self.metric}:{sign}{self.pct:g}%"


@dataclass
class Check:
    rule: str
    target: str
    artifact: str
    metric: str
    baseline: Optional[float]
    current: Optional[float]
    change: Optional[float]      # percent for "up" metrics, percentage points for accuracy
    failed: bool
    note: str = ""
    p_value: Optional[float] = None     # latency rules: significance of "worse by more than the limit"
    unstable: bool = False              # a result in either run was unstable: not judged
    noise_pct: Optional[float] = None   # the target's rerun noise for this metric (largest change seen)

    @property
    def verdict(self) -> str:
        return "FAIL" if self.failed else ("UNSTABLE" if self.unstable else "ok")

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}

    def describe(self) -> str:
        unit = "pp" if METRICS[self.metric][2] == "down" else "%"
        change = "n/a" if self.change is None else f"{self.change:+.2f}{unit}"
        verdict = self.verdict
        fmt = (lambda v: "-" if v is None else f"{v:.4g}")
        extra = f" ({self.note})" if self.note else ""
        return (f"{verdict:8} {self.target} {self.artifact} {self.metric}: {fmt(self.baseline)} -> "
                f"{fmt(self.current)} {change} [limit {self.rule}]{extra}")


def parse_fail_on(text: str) -> Rule:
    """``"p50:+5%"`` -> Rule("p50", 5.0); accuracy takes ``accuracy:1%`` or ``accuracy:-1%``."""
    m = _RULE.match(text or "")
    if not m:
        raise UsageError(f"--fail-on {text!r}: expected METRIC:+PCT% (e.g. p50:+5%, accuracy:-1%); "
                         f"metrics: {', '.join(METRICS)}")
    metric, sign, pct = m.group(1).lower(), m.group(2), float(m.group(3))
    if metric not in METRICS:
        raise UsageError(f"--fail-on {text!r}: unknown metric {metric!r}{suggest(metric, METRICS)}; "
                         f"valid: {', '.join(METRICS)}")
    worse = METRICS[metric][2]
    if (worse == "up" and sign == "-") or (worse == "down" and sign == "+"):
        direction = "an increase (+)" if worse == "up" else "a drop (-)"
        raise UsageError(f"--fail-on {text!r}: a regression of {metric} is {direction}; "
                         f"write {metric}:{'+' if worse == 'up' else '-'}{pct:g}%")
    return Rule(metric, pct)


ALPHA = 0.01
LATENCY = {"p50", "p90", "mean"}


def significance(current: list, baseline: list, metric: str, pct: float) -> Optional[float]:
    """p-value of "``metric`` of ``current`` is more than ``pct`` percent above ``baseline``'s"."""
    import numpy as np

    from scipy.stats import mannwhitneyu

    cur, base = np.asarray(current, dtype=float), np.asarray(baseline, dtype=float) * (1 + pct / 100.0)
    if metric == "p90":
        cur, base = np.sort(cur)[len(cur) // 2:], np.sort(base)[len(base) // 2:]
    if len(cur) < 3 or len(base) < 3:
        return None
    return float(mannwhitneyu(cur, base, alternative="greater").pvalue)


def _judge(rule: Rule, row, b, bv, cv, change: float) -> Check:
    attr, _unit, worse = METRICS[rule.metric]
    check = Check(str(rule), row.target, row.artifact, rule.metric, bv, cv, change, False)
    unstable = [f"{which}: {'; '.join(x.stability_reasons or ['unstable'])}"
                for which, x in (("baseline", b), ("now", row)) if getattr(x, "stable", None) is False]
    if rule.metric in LATENCY and row.samples and b.samples:
        # contention only adds time: a slower artifact is slower in its fastest runs too, noise is not
        floor = (min(row.samples) - min(b.samples)) / min(b.samples) * 100.0 if min(b.samples) > 0 else 0.0
        p = significance(row.samples, b.samples, rule.metric, rule.pct) if change > rule.pct else None
        if p is None and change > rule.pct:
            check.failed = True
            check.note = "too few raw samples for a significance test"
            return check
        check.p_value = p
        regressed = change > rule.pct and p is not None and p < ALPHA and floor > rule.pct
        if regressed:
            check.failed = True
            check.note = f"significant: p={p:.2g} < {ALPHA:g}, fastest run {floor:+.0f}%" + (
                " (unstable: " + " | ".join(unstable)[:160] + ")" if unstable else "")
        elif unstable:
            check.unstable = True
            check.note = "unstable, not judged: " + " | ".join(unstable)[:240]
        elif change > rule.pct:
            why = (f"not significant: p={p:.2g} >= {ALPHA:g}" if p >= ALPHA else
                   f"the fastest run changed only {floor:+.1f}% (limit {rule.pct:g}%)")
            check.note = f"{why}: noise, not a regression"
        return check
    check.failed = (-change > rule.pct) if worse == "down" else (change > rule.pct)
    return check


@dataclass
class Noise:
    """A target's rerun noise: the largest change (percent) per device metric between two
    results of one artifact, over ``pairs`` such reruns."""
    pct: dict = field(default_factory=dict)
    pairs: int = 0


def _identity(r) -> tuple:
    """What makes two results measurements of the same thing: a stored result (dict) or a Row."""
    if isinstance(r, dict):
        return r.get("artifact_sha256"), r.get("runtime"), r.get("arch"), r.get("threads")
    return r.sha256, r.runtime, r.arch, r.threads


def rerun_noise(history: list[dict]) -> Noise:
    """:class:`Noise` from results of one target (``ResultsStore.reruns``): consecutive results of
    the same artifact, runtime, arch and threads; throttled ones are left out."""
    groups = defaultdict(list)
    for h in history:
        if not h.get("throttled") and h.get("artifact_sha256"):
            groups[_identity(h)].append(h)
    pairs = []
    for g in groups.values():
        g.sort(key=lambda h: h["created_at"])
        pairs += [(b["created_at"], a, b) for a, b in zip(g, g[1:])]
    pairs = sorted(pairs, key=lambda p: p[0])[-NOISE_PAIRS:]
    pct = {}
    for metric, col in DEVICE_METRICS.items():
        changes = [abs(b[col] - a[col]) / a[col] * 100.0 for _, a, b in pairs
                   if a.get(col) and b.get(col) is not None]
        if changes:
            pct[metric] = max(changes)
    return Noise(pct, len(pairs))


def _within_noise(check: Check, noise: Optional[Noise]) -> None:
    """Clear a device metric's failure that is no larger than the target's rerun noise."""
    if noise is None or check.metric not in noise.pct:
        return
    check.noise_pct = noise.pct[check.metric]
    if check.failed and check.change is not None and check.change <= check.noise_pct:
        check.failed = False
        check.note = (f"within this target's rerun noise: one artifact measured again moved up to "
                      f"{check.noise_pct:.1f}% ({noise.pairs} rerun(s) in the results); not a regression")


def check_regressions(rows: list, base_rows: list, rules: list[Rule],
                      noise: Optional[dict] = None) -> list[Check]:
    """Checks of ``rows`` against ``base_rows``; ``noise``: target -> :class:`Noise` (rerun noise)."""
    emulated = {r.target for r in [*rows, *base_rows] if getattr(r, "emulated", False)}
    rows = [r for r in rows if r.target not in emulated]
    base = {(r.target, r.artifact): r for r in base_rows if r.artifact != "-" and r.target not in emulated}
    checks = []
    for rule in rules:
        attr, _unit, worse = METRICS[rule.metric]
        for row in rows:
            b = base.get((row.target, row.artifact))
            if b is None or not b.ok:
                continue
            bv = getattr(b, attr)
            if not row.ok:
                checks.append(Check(str(rule), row.target, row.artifact, rule.metric, bv, None, None, True,
                                    f"failed now: {(row.error or '')[:120]}"))
                continue
            if bool(getattr(row, "emulated", False)) != bool(getattr(b, "emulated", False)):
                checks.append(Check(str(rule), row.target, row.artifact, rule.metric, bv, getattr(row, attr), None,
                                    False, "not compared: one run is emulated, the other real"))
                continue
            cv = getattr(row, attr)
            if bv is None or cv is None:
                checks.append(Check(str(rule), row.target, row.artifact, rule.metric, bv, cv, None, False,
                                    "not measured in both runs"))
                continue
            if worse == "down":
                change = (cv - bv) * 100.0
            else:
                change = (cv - bv) / bv * 100.0 if bv else (0.0 if cv == bv else float("inf"))
            if rule.metric in DEVICE_METRICS and row.sha256 and _identity(row) == _identity(b):
                checks.append(Check(str(rule), row.target, row.artifact, rule.metric, bv, cv, change, False,
                                    f"the baseline's artifact (sha256 {row.sha256[:12]}), runtime and device: "
                                    f"a {change:+.1f}% change is a rerun's noise, not a regression"))
                continue
            check = _judge(rule, row, b, bv, cv, change)
            if rule.metric in DEVICE_METRICS:
                _within_noise(check, (noise or {}).get(row.target))
            checks.append(check)
        have = {(r.target, r.artifact) for r in rows}
        current_targets = {r.target: r for r in rows}
        for key, b in base.items():
            if key not in have and key[0] in current_targets and b.ok:
                why = current_targets[key[0]].error if not current_targets[key[0]].ok else "not in this run"
                checks.append(Check(str(rule), key[0], key[1], rule.metric, getattr(b, attr), None, None, True,
                                    f"missing now: {(why or '')[:120]}"))
    return checks
