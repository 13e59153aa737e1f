"""Plain-text and Markdown renderings of a comparison (same columns, same cell text).

Columns: target, artifact, size (KB), p50 / p90 latency (ms), peak memory (MB), energy per
inference (mJ, ``meas`` = measured by a sensor, ``est`` = estimated from the power model),
quality (device accuracy and its change against the source model in points, or top-1
agreement with the host reference when there are no labels), ``*`` for Pareto-best, status.
Rows measured on an emulated CPU (the lab's qemu aarch64 device) show their timings tagged
``emu`` and ``emulated`` in their status; their energy is ``n/a``.
"""
from __future__ import annotations

from typing import Any, Sequence

HEADERS = ["target", "artifact", "size_kb", "p50_ms", "p90_ms", "peak_mb", "energy_mj", "quality", "pareto",
           "status"]

LEGEND = ("energy: meas = measured by a sensor, est = estimated from the profile's power model; "
          "quality: device accuracy (change vs. the source model, points) or top-1 agreement with the host "
          "reference, or the worst output's cosine; * = Pareto-best on this target (latency, size, quality); "
          "DEGRADED = runs but below the quality floor (never starred); emu = timed on an emulated CPU "
          "(qemu): outputs and quality are real, timings mean nothing for a real device and are not compared")


def _f(v, digits=3) -> str:
    return "" if v is None else f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def energy_cell(row) -> str:
    if row.energy_mj is None or row.energy_method in (None, "unavailable"):
        return "n/a" if row.ok else ""
    tag = "meas" if row.energy_method == "measured" else "est"
    return f"{row.energy_mj:.3g} {tag}"


def quality_cell(row) -> str:
    if row.accuracy is not None:
        d = row.delta_accuracy
        return f"{row.accuracy * 100:.1f}%" + ("" if d is None else f" ({d * 100:+.1f})")
    if row.top1_agreement is not None:
        return f"agree {row.top1_agreement * 100:.1f}%"
    if row.cosine is not None:
        return f"cos {row.cosine:.4f}"
    return ""


def _t(row, v) -> str:
    """A timing cell; tagged ``emu`` when it was measured on an emulated CPU."""
    text = _f(v)
    return f"{text} emu" if text and getattr(row, "emulated", False) else text


def cells(row, multi_run: bool = False) -> list[str]:
    status = row.status if row.ok else f"{row.status}: {(row.error or '').splitlines()[0][:70] if row.error else ''}"
    if getattr(row, "emulated", False):
        status = f"{status} (emulated)"
    target = f"{row.target} [{row.run_id}]" if multi_run else row.target
    return [target, row.artifact,
            "" if row.size_bytes is None else f"{row.size_bytes / 1024:.1f}",
            _t(row, row.p50_ms), _t(row, row.p90_ms), _f(row.peak_rss_mb), energy_cell(row), quality_cell(row),
            "*" if row.pareto else "", status]


def _is_num(s: str) -> bool:
    try:
        float(s.rstrip("%x×"))
        return True
    except ValueError:
        return False


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table drawn by rich (no colour, no wrapping); numeric columns right-aligned."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="", highlight=False)
    for i, h in enumerate(headers):
        numeric = any(r[i] for r in cells) and all(_is_num(r[i]) for r in cells if r[i])
        t.add_column(h, justify="right" if numeric else "left", no_wrap=True)
    for r in cells:
        t.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=100_000, color_system=None, force_terminal=False, highlight=False,
            emoji=False, markup=False).print(t)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())


def render_table(comparison) -> str:
    table = text_table
    multi = len(comparison.runs) > 1
    lines = []
    for run in comparison.runs:
        lines.append(f"run {run.id}  {run.model_source or ''}  ({run.state})")
    lines.append(table(HEADERS, [cells(r, multi) for r in comparison.rows]))
    lines.append(LEGEND)
    lines += recommendation_lines(comparison)
    lines += _checks_text(comparison)
    return "\n".join(lines)


def render_markdown(comparison) -> str:
    multi = len(comparison.runs) > 1
    esc = (lambda s: s.replace("|", "\\|"))
    runs = ", ".join(f"`{r.id}` ({r.state})" for r in comparison.runs)
    lines = [f"### edgecompress comparison: {runs}", "",
             "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---:" if h.endswith(("_kb", "_ms", "_mb", "_mj")) else "---" for h in HEADERS) + "|"]
    for r in comparison.rows:
        lines.append("| " + " | ".join(esc(c) for c in cells(r, multi)) + " |")
    lines += ["", f"_{LEGEND}_"]
    recs = recommendation_lines(comparison)
    if recs:
        lines += ["", *[f"- {x}" for x in recs]]
    checks = _checks_text(comparison)
    if checks:
        lines += ["", "```"] + checks + ["```"]
    return "\n".join(lines)


def recommendation_lines(comparison) -> list[str]:
    """``recommended on TARGET (objective): ARTIFACT -- reason`` and the diagnosis lines."""
    multi = len(comparison.runs) > 1
    out = []
    for r in getattr(comparison, "recommendations", []):
        where = f"{r.target} [{r.run_id}]" if multi else r.target
        out.append(f"recommended on {where} ({r.objective}): {r.artifact or 'none'} -- {r.reason}")
    for row in comparison.rows:
        if row.diagnosis:
            out.append(f"why slow on {row.target}: {row.diagnosis}")
    return out


def _checks_text(comparison) -> list[str]:
    notes = [f"note: {n}" for n in comparison.notes]
    if not comparison.checks:
        return notes
    base = comparison.baseline.id if comparison.baseline else "?"
    n, u = len(comparison.regressions), len(comparison.unstable)
    head = f"regression checks against {base}: " + (f"{n} FAILED" if n else (
        f"no regression, {u} UNSTABLE (not judged)" if u else "all passed"))
    return notes + [head] + ["  " + c.describe() for c in comparison.checks]


CSV_FIELDS = ["run_id", "target", "artifact", "format", "precision", "status", "size_bytes", "p50_ms", "p50_ci_low",
              "p50_ci_high", "p90_ms", "p99_ms", "mean_ms", "cv", "stable", "valid", "peak_rss_mb", "energy_mj",
              "energy_method", "accuracy", "reference_accuracy", "delta_accuracy", "top1_agreement", "cosine",
              "pareto", "recommended", "emulated", "runs", "threads", "runtime", "diagnosis", "error"]


def render_csv(comparison) -> str:
    """Every row as CSV (header first; empty cells for unknown values)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in comparison.rows:
        d = r.to_dict(ops=False)
        ci = r.p50_ci or [None, None]
        d["p50_ci_low"], d["p50_ci_high"] = ci[0], ci[1]
        w.writerow({k: ("" if d.get(k) is None else d.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()
