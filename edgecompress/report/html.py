"""The HTML report: one self-contained file (inline CSS, plots as base64 PNG, no URLs).

Sections: the runs compared (model, time, version, host), regression checks (when asked),
the comparison table (every row, failed ones with their reason), then per target: device
facts and the four plots of :mod:`edgecompress.report.plots`.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from ..manifest import atomic_write_bytes
from .tables import HEADERS, LEGEND, cells

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1320px}
h1{font-size:22px;margin:0 0 6px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fdecea;color:#8a1c1c} tr.degraded td{background:#fff4e0;color:#7a4a00} tr.pareto td{background:#eaf6ea}
tr.recommended td{background:#e3efff;font-weight:600} .star{color:#c48a00}
.meta{color:#555;font-size:13px} .legend{color:#555;font-size:12px;max-width:1100px}
.fail{color:#b00020;font-weight:bold} .pass{color:#1b7f3b;font-weight:bold}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px;margin:6px 0}
dl.facts dt{color:#555} dl.facts dd{margin:0}
img.plot{width:100%;max-width:1296px;border:1px solid #eee}
"""

_NUMERIC = {"size_kb", "p50_ms", "p90_ms", "peak_mb", "energy_mj"}


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _when(ts) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _runs_section(comparison) -> list[str]:
    out = ["<table><tr><th>run</th><th>state</th><th>model</th><th>sha256</th><th>started</th>"
           "<th>finished</th><th>edgecompress</th><th>host</th></tr>"]
    for r in comparison.runs:
        host = r.host or {}
        out.append(f"<tr><td>{_e(r.id)}</td><td>{_e(r.state)}</td><td>{_e(r.model_source)}</td>"
                   f"<td><code>{_e((r.model_sha256 or '')[:16])}</code></td><td>{_when(r.started_at)}</td>"
                   f"<td>{_when(r.finished_at)}</td><td>{_e(r.edgecompress_version)}</td>"
                   f"<td>{_e(host.get('hostname'))} {_e(host.get('arch'))}</td></tr>")
    out.append("</table>")
    return out


def _checks_section(comparison) -> list[str]:
    notes = [f"<p class='meta'>note: {_e(n)}</p>" for n in comparison.notes]
    if not comparison.checks:
        return notes
    n = len(comparison.regressions)
    verdict = f"<span class='fail'>{n} regression(s)</span>" if n else "<span class='pass'>no regression</span>"
    out = [f"<h2>Regression checks against {_e(comparison.baseline.id if comparison.baseline else '?')}</h2>",
           f"<p>{verdict}</p><table><tr><th>result</th><th>target</th><th>artifact</th><th>limit</th>"
           "<th>baseline</th><th>now</th><th>change</th><th>note</th></tr>"]
    for c in comparison.checks:
        change = "" if c.change is None else f"{c.change:+.2f}" + ("pp" if c.metric == "accuracy" else "%")
        out.append(f"<tr class='{'failed' if c.failed else ''}'><td>{'FAIL' if c.failed else 'ok'}</td>"
                   f"<td>{_e(c.target)}</td><td>{_e(c.artifact)}</td><td>{_e(c.rule)}</td>"
                   f"<td class='num'>{_e(c.baseline if c.baseline is None else f'{c.baseline:.4g}')}</td>"
                   f"<td class='num'>{_e(c.current if c.current is None else f'{c.current:.4g}')}</td>"
                   f"<td class='num'>{_e(change)}</td><td>{_e(c.note)}</td></tr>")
    out.append("</table>")
    return notes + out


def _table_section(comparison) -> list[str]:
    multi = len(comparison.runs) > 1
    out = ["<table id='comparison'><tr>" + "".join(f"<th>{_e(h)}</th>" for h in HEADERS) + "</tr>"]
    for row in comparison.rows:
        cls = ("degraded" if row.status == "degraded" else "failed") if not row.ok else ("recommended" if row.recommended else ("pareto" if row.pareto else ""))
        tds = []
        for h, c in zip(HEADERS, cells(row, multi)):
            if h == "status" and not row.ok:
                c = f"{row.status}: " + (row.error or "")
            if h == "artifact" and row.recommended:
                tds.append(f"<td>{_e(c)} <span class='star' title='recommended'>&#9733; recommended</span></td>")
                continue
            tds.append(f"<td class='num'>{_e(c)}</td>" if h in _NUMERIC else f"<td>{_e(c)}</td>")
        out.append(f"<tr class='{cls}'>" + "".join(tds) + "</tr>")
    out.append(f"</table><p class='legend'>{_e(LEGEND)}</p>")
    return out


def _recommend_section(comparison) -> list[str]:
    recs = getattr(comparison, "recommendations", [])
    if not recs:
        return []
    out = ["<h2>Recommendation</h2><table id='recommendations'><tr><th>target</th><th>artifact</th>"
           "<th>objective</th><th>value</th><th>why</th></tr>"]
    for r in recs:
        val = "" if r.value is None else f"{r.value:.4g} {r.unit}"
        out.append(f"<tr><td>{_e(r.target)}</td><td><b>{_e(r.artifact or 'none')}</b></td><td>{_e(r.objective)}</td>"
                   f"<td class='num'>{_e(val)}</td><td>{_e(r.reason)}</td></tr>")
    out.append("</table>")
    diag = [r for r in comparison.rows if r.diagnosis]
    if diag:
        out.append("<h2>Why slower than FP32</h2><ul id='diagnoses'>" + "".join(
            f"<li>{_e(r.target)}: {_e(r.diagnosis)}</li>" for r in diag) + "</ul>")
    return out


def _cross_target_section(comparison) -> list[str]:
    from .plots import cross_target_figure

    targets = sorted({(r.run_id, r.target) for r in comparison.rows if r.ok and r.p50_ms is not None})
    if len(targets) < 2:
        return []
    png = base64.b64encode(cross_target_figure(comparison.rows, comparison.recommendations)).decode()
    return ["<h2>Across targets</h2>", "<p class='meta'>p50 latency of each artifact on every target "
            "(log scale; &#9733; = recommended there; emulated targets hatched)</p>",
            f"<img class='plot' id='cross-target' alt='p50 per artifact and target' src='data:image/png;base64,{png}'>"]


def _ops_table(rows) -> str:
    out = []
    for r in rows:
        if not r.ops:
            continue
        timed = sorted([o for o in r.ops if o.get("ms") is not None], key=lambda o: -o["ms"])
        shown = (timed or r.ops)[:8]
        total = sum(o["ms"] for o in timed) or None
        out.append(f"<p class='meta'>top ops of {_e(r.artifact)} ({len(r.ops)} nodes)</p><table class='ops'>"
                   "<tr><th>node</th><th>op type</th><th>ms / inference</th><th>share</th><th>where</th></tr>")
        for o in shown:
            ms = "" if o.get("ms") is None else f"{o['ms']:.4f}"
            share = "" if o.get("ms") is None or not total else f"{o['ms'] / total:.0%}"
            out.append(f"<tr><td>{_e(o['name'])}</td><td>{_e(o['op_type'])}</td><td class='num'>{ms}</td>"
                       f"<td class='num'>{share}</td><td>{_e(o.get('where'))}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _facts(t: dict) -> str:
    dev = t.get("device") or {}
    items = [("profile", t.get("profile")), ("transport", t.get("transport")), ("status", t.get("status"))]
    if t.get("error"):
        items.append(("error", t["error"]))
    if dev.get("emulated"):
        items.append(("emulated", "yes: the CPU is emulated (qemu); timings are not a real device's"))
    for k in ("arch", "os", "python", "numpy", "cpu_model", "cores", "memory_mb", "free_disk_mb"):
        if dev.get(k) is not None:
            items.append((k, dev[k]))
    runtimes = dev.get("runtimes") or {}
    if runtimes:
        items.append(("runtimes", ", ".join(f"{k} {v or '(missing)'}" for k, v in sorted(runtimes.items()))))
    for k in ("energy_meters", "thermal_zones"):
        if k in dev:
            items.append((k, ", ".join(map(str, dev[k])) or "none"))
    return "<dl class='facts'>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _target_sections(comparison) -> list[str]:
    from .plots import target_figure

    out = []
    multi = len(comparison.runs) > 1
    seen = set()
    for t in comparison.targets:
        key = (t.get("run_id"), t["target"])
        if key in seen:
            continue
        seen.add(key)
        rows = [r for r in comparison.rows if r.target == t["target"] and r.run_id == t.get("run_id")]
        title = f"{t['target']}" + (f" [{t.get('run_id')}]" if multi else "")
        if any(r.emulated for r in rows):
            title += " (emulated CPU: timings are not a real device's)"
        out.append(f"<h2>Target {_e(title)}</h2>")
        out.append(_facts(t))
        if any(r.ok and r.p50_ms is not None for r in rows):
            png = base64.b64encode(target_figure(rows, title)).decode()
            out.append(f"<img class='plot' alt='plots for {_e(title)}' src='data:image/png;base64,{png}'>")
            out.append(_ops_table(rows))
        else:
            out.append("<p class='fail'>no successful results on this target</p>")
    return out


def render_html(comparison) -> str:
    runs = ", ".join(r.id for r in comparison.runs)
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>edgecompress report {_e(runs)}</title><style>{_CSS}</style></head><body>",
             "<h1>edgecompress report</h1>",
             f"<p class='meta'>results database: {_e(comparison.db)}</p>"]
    parts += _runs_section(comparison)
    parts += _checks_section(comparison)
    parts.append("<h2>Comparison</h2>")
    parts += _table_section(comparison)
    parts += _recommend_section(comparison)
    parts += _cross_target_section(comparison)
    parts += _target_sections(comparison)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(comparison, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, render_html(comparison).encode("utf-8"))
    return path
