"""Compare runs from the results store: rows, Pareto marks, regression checks, rendering.

``compare(run_ids=None, db=None)`` reads the runs (the latest run by default) and returns a
:class:`Comparison`: one :class:`Row` per run × target × artifact with size, latency
(p50/p90/mean), peak memory, energy per inference (and whether it was measured or
estimated), accuracy or fidelity on the device, and ``pareto`` set on the artifacts no other
artifact of the same target beats on latency, size and quality at once. Failed targets and
artifacts are rows too (status ``failed`` with the reason).

Renderers: :func:`render_table` (terminal), :func:`render_markdown`, :func:`write_html`
(one self-contained file with plots). Regression checks for CI: :func:`parse_fail_on` and
:func:`check_regressions` (``--fail-on p50:+5%``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..results import ResultsStore, RunInfo
from .checks import METRICS, Check, Rule, check_regressions, parse_fail_on, rerun_noise
from .tables import render_markdown, render_table


@dataclass
class Row:
    run_id: str
    target: str
    profile: Optional[str]
    artifact: str                         # precision.format, or "-" for a target that failed as a whole
    format: Optional[str] = None
    precision: Optional[str] = None
    status: str = "ok"
    error: Optional[str] = None
    size_bytes: Optional[int] = None
    p50_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    mean_ms: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    energy_mj: Optional[float] = None     # millijoules per inference
    energy_method: Optional[str] = None   # measured | estimated | unavailable
    energy_source: Optional[str] = None
    accuracy: Optional[float] = None      # on the device, with labels
    reference_accuracy: Optional[float] = None
    top1_agreement: Optional[float] = None
    cosine: Optional[float] = None
    fidelity_samples: Optional[int] = None
    runtime: Optional[str] = None
    threads: Optional[int] = None
    sha256: Optional[str] = None          # the artifact's bytes: the same sha256 is the same artifact
    arch: Optional[str] = None
    runs: Optional[int] = None
    pareto: bool = False
    emulated: bool = False                # measured on an emulated CPU: timings shown, never compared
    samples: list = field(default_factory=list, repr=False)
    p50_ci: Optional[list] = None         # 95 % CI of the median, from the raw samples
    cv: Optional[float] = None            # coefficient of variation of the samples
    stable: Optional[bool] = None         # None: the result did not say (older or native results)
    stability_reasons: list = field(default_factory=list)
    valid: Optional[bool] = None          # minimum runs and duration met
    memory_limit_mb: Optional[float] = None
    ops: list = field(default_factory=list, repr=False)   # per-op profile {name, op_type, ms, where}
    diagnosis: Optional[str] = None       # why it is slower than its FP32 twin
    recommended: bool = False             # the recommended artifact of its run x target

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def delta_accuracy(self) -> Optional[float]:
        """Device accuracy minus the source model's accuracy on the same samples (fraction)."""
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return self.accuracy - self.reference_accuracy

    @property
    def quality(self) -> Optional[float]:
        """What Pareto and ``--fail-on accuracy`` use: accuracy, else top-1 agreement, else the worst
        output's cosine (never blank for an artifact that ran with fidelity inputs)."""
        for v in (self.accuracy, self.top1_agreement, self.cosine):
            if v is not None:
                return v
        return None

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"

    def to_dict(self, samples: bool = False, ops: bool = True) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples")
        if not ops:
            d.pop("ops")
        d["delta_accuracy"] = self.delta_accuracy
        return d


@dataclass
class Comparison:
    db: str
    runs: list[RunInfo]
    rows: list[Row]
    targets: list[dict]                   # per run × target: status, error, device facts
    checks: list[Check] = field(default_factory=list)
    baseline: Optional[RunInfo] = None
    notes: list[str] = field(default_factory=list)
    recommendations: list = field(default_factory=list)    # recommend.Recommendation per run x target

    @property
    def unstable(self) -> list[Check]:
        return [c for c in self.checks if c.unstable and not c.failed]

    @property
    def exit_code(self) -> int:
        """0 passed; 1 a regression (significant, above the limit) or a failure; 3 no regression but
        some rows were unstable and could not be judged."""
        return 1 if self.regressions else (3 if self.unstable else 0)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def to_dict(self, samples: bool = False) -> dict:
        return {"db": self.db, "runs": [r.to_dict() for r in self.runs],
                "baseline": self.baseline.to_dict() if self.baseline else None,
                "rows": [r.to_dict(samples) for r in self.rows], "targets": self.targets,
                "checks": [c.to_dict() for c in self.checks], "notes": self.notes,
                "recommendations": [r.to_dict() for r in self.recommendations]}


def _num(v) -> Optional[float]:
    return None if v is None else float(v)


def _row_from_result(run_id: str, r: dict) -> Row:
    from ..device.stats import median_ci

    res = r["result"]
    fid = res.fidelity or {}
    lat = res.latency_ms
    samples = [float(s) for s in r["samples"]]
    ci = (lat.p50_ci if lat is not None else None) or (list(median_ci(samples)) if samples else None)
    cv = lat.cv if lat is not None else None
    if cv is None and len(samples) > 1:
        import statistics

        cv = statistics.pstdev(samples) / statistics.fmean(samples)
    host = fid.get("host") or {}
    return Row(run_id=run_id, target=r["target"], profile=r["profile"], artifact=r["artifact_key"],
               format=r["format"], precision=r["precision"], status=r["status"], error=r["error"],
               size_bytes=r["size_bytes"], p50_ms=_num(r["p50_ms"]), p90_ms=_num(r["p90_ms"]),
               p99_ms=_num(r["p99_ms"]), mean_ms=_num(r["mean_ms"]), peak_rss_mb=_num(r["peak_rss_mb"]),
               energy_mj=_num(r["mj_per_inference"]), energy_method=r["energy_method"],
               energy_source=r["energy_source"], accuracy=_num(r["fid_accuracy"]),
               reference_accuracy=_num(r["fid_reference_accuracy"]),
               top1_agreement=_num(r["fid_top1_agreement"]),
               cosine=_num(fid.get("cosine") if fid.get("cosine") is not None else host.get("cosine")),
               fidelity_samples=r["fid_samples"], runtime=r["runtime"], threads=r["threads"], runs=r["runs"],
               sha256=r["artifact_sha256"], arch=r["arch"],
               samples=samples, p50_ci=ci, cv=cv, stable=res.stable,
               stability_reasons=list((res.stability or {}).get("reasons") or []), valid=res.valid,
               emulated=bool(res.emulated), ops=list(res.ops or []))


def rows_for_run(store: ResultsStore, run: RunInfo) -> tuple[list[Row], list[dict]]:
    """Rows of one run (results, then artifacts that failed to build, then targets that failed)."""
    targets = store.targets(run.id)
    rows = [_row_from_result(run.id, r) for r in store.results(run.id)]
    # keep only the newest result per target × artifact (a re-benchmark replaces the older one)
    latest: dict[tuple, Row] = {}
    for row in rows:
        latest[(row.target, row.artifact)] = row
    rows = list(latest.values())
    have = set(latest)
    artifacts = store.artifacts(run.id)
    for t in targets:
        for a in artifacts:
            if a["profile"] == t["profile"] and a["status"] == "failed" and (t["target"], a["key"]) not in have:
                rows.append(Row(run_id=run.id, target=t["target"], profile=t["profile"], artifact=a["key"],
                                format=a["format"], precision=a["precision"], status="failed",
                                error=f"compress: {a['error']}"))
                have.add((t["target"], a["key"]))
        if t["status"] in ("failed", "partial") and t["error"] and not any(
                k[0] == t["target"] for k in have):
            rows.append(Row(run_id=run.id, target=t["target"], profile=t["profile"], artifact="-",
                            status="failed", error=t["error"]))
    for t in targets:
        t["run_id"] = run.id
    order = {t["target"]: i for i, t in enumerate(targets)}
    rows.sort(key=lambda r: (order.get(r.target, len(order)), r.target, not r.ok, r.artifact))
    mark_pareto(rows)
    return rows, targets


def mark_pareto(rows: list[Row]) -> None:
    """Set ``pareto`` on the ok rows no other ok row of the same run × target dominates: faster
    beyond the noise, smaller by more than 10 %, or better quality by more than half a point
    (:mod:`edgecompress.report.pareto`; quality only when every row has one). Emulated rows are
    never marked: their latency says nothing about a real device."""
    from .pareto import Point, front

    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        r.pareto = False
        if r.ok and r.p50_ms is not None and not r.emulated:
            groups.setdefault((r.run_id, r.target), []).append(r)
    for group in groups.values():
        use_quality = all(r.quality is not None for r in group)
        marks = front([Point(r.p50_ms, r.size_bytes, r.quality, r.p50_ci) for r in group], use_quality)
        for r, m in zip(group, marks):
            r.pareto = m


def _open(db) -> tuple[ResultsStore, bool]:
    if isinstance(db, ResultsStore):
        return db, False
    return ResultsStore(db), True


def compare(run_ids: list[str] | None = None, db: str | Path | ResultsStore | None = None, *,
            fail_on: list[str] | list[Rule] | None = None, baseline: str | None = None,
            objective: Optional[str] = None, max_accuracy_drop: Optional[float] = None,
            min_agreement: Optional[float] = None, min_cosine: Optional[float] = None,
            max_memory_mb: Optional[float] = None) -> Comparison:
    """Rows for ``run_ids`` (unique prefixes work; the latest run when empty).

    ``recommendations`` holds one :class:`~edgecompress.report.recommend.Recommendation` per
    run x target: the best artifact by ``objective`` (default: each profile's budget, p50)
    within the quality budget and the device's memory (overrides: the keyword arguments).

    With ``fail_on`` (e.g. ``["p50:+5%"]``), compares the (single) run against ``baseline``
    (default: the previous run of the same model) and fills ``checks``. Without a previous run
    (a model's first run) nothing is checked and ``notes`` says so; an unknown ``baseline`` id
    raises ResultsError.
    """
    from ..errors import UsageError

    store, own = _open(db)
    try:
        runs = [store.run(r) for r in run_ids] if run_ids else [store.latest_run()]
        rows, targets = [], []
        notes = []
        for run in runs:
            r, t = rows_for_run(store, run)
            rows += r
            targets += t
            notes += [n for n in (run.options or {}).get("notes", []) if n not in notes]
        comp = Comparison(db=str(store.path), runs=runs, rows=rows, targets=targets, notes=notes)
        from .diagnose import diagnose_rows
        from .recommend import recommend_all

        diagnose_rows(rows)
        noise = {t: rerun_noise(store.reruns(t)) for t in sorted({r.target for r in rows})}
        comp.recommendations = recommend_all(comp, noise, objective=objective, max_accuracy_drop=max_accuracy_drop,
                                             min_agreement=min_agreement, min_cosine=min_cosine,
                                             max_memory_mb=max_memory_mb)
        chosen = {(r.run_id, r.target, r.artifact) for r in comp.recommendations if r.artifact}
        for row in rows:
            row.recommended = (row.run_id, row.target, row.artifact) in chosen
        rules = [parse_fail_on(f) if isinstance(f, str) else f for f in (fail_on or [])]
        if rules or baseline:
            if len(runs) != 1:
                raise UsageError("--fail-on/--baseline check one run against a baseline; "
                                 f"got {len(runs)} runs ({', '.join(r.id for r in runs)})")
            base = store.run(baseline) if baseline else store.previous_run(runs[0])
            if base is None:             # the first run of a model (e.g. a CI's first): nothing to check
                comp.notes.append(
                    f"no baseline: run {runs[0].id} is the first run of model {(runs[0].model_sha256 or '?')[:12]} "
                    f"in {store.path}; nothing was checked (name one with --baseline RUN_ID)")
                return comp
            comp.baseline = base
            base_rows, _ = rows_for_run(store, base)
            comp.checks = check_regressions(rows, base_rows, rules, noise)
            emulated = sorted({r.target for r in rows + base_rows if r.emulated})
            if emulated:
                comp.notes.append(f"emulated target(s) {', '.join(emulated)} not checked: timings and energy "
                                  "on an emulated CPU are not compared")
        return comp
    finally:
        if own:
            store.close()


def write_html(comparison: Comparison, path: str | Path) -> Path:
    """Write the self-contained HTML report (see :mod:`edgecompress.report.html`)."""
    from .html import write_html as _write

    return _write(comparison, path)


__all__ = ["compare", "Comparison", "Row", "Rule", "Check", "METRICS", "parse_fail_on", "check_regressions",
           "rerun_noise",
           "mark_pareto", "rows_for_run", "render_table", "render_markdown", "write_html"]
