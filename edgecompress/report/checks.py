"""Regression checks for CI: ``--fail-on METRIC:+PCT%`` against a baseline run.

Rows are matched by target and artifact (``precision.format``). For latency, memory, energy
and size a regression is an increase of more than PCT percent of the baseline value. For
``accuracy`` it is a drop of more than PCT percentage points (accuracy on the device with
labels, else top-1 agreement with the host reference). An artifact that was ok in the
baseline and failed now fails every rule; rows only in one run are not compared. Rows measured
on an emulated target (``emulated: true``) are never checked, in either run.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
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

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        unit = "pp" if METRICS[self.metric][2] == "down" else "%"
        change = "n/a" if self.change is None else f"{self.change:+.2f}{unit}"
        verdict = "FAIL" if self.failed else "ok"
        fmt = (lambda v: "-" if v is None else f"{v:.4g}")
        extra = f" ({self.note})" if self.note else ""
        return (f"{verdict:4} {self.target} {self.artifact} {self.metric}: {fmt(self.baseline)} -> "
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


def check_regressions(rows: list, base_rows: list, rules: list[Rule]) -> list[Check]:
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
            cv = getattr(row, attr)
            if bv is None or cv is None:
                checks.append(Check(str(rule), row.target, row.artifact, rule.metric, bv, cv, None, False,
                                    "not measured in both runs"))
                continue
            if worse == "down":
                change = (cv - bv) * 100.0
                failed = -change > rule.pct
            else:
                change = (cv - bv) / bv * 100.0 if bv else (0.0 if cv == bv else float("inf"))
                failed = change > rule.pct
            checks.append(Check(str(rule), row.target, row.artifact, rule.metric, bv, cv, change, failed))
        have = {(r.target, r.artifact) for r in rows}
        current_targets = {r.target: r for r in rows}
        for key, b in base.items():
            if key not in have and key[0] in current_targets and b.ok:
                why = current_targets[key[0]].error if not current_targets[key[0]].ok else "not in this run"
                checks.append(Check(str(rule), key[0], key[1], rule.metric, getattr(b, attr), None, None, True,
                                    f"missing now: {(why or '')[:120]}"))
    return checks
