"""Plots for the HTML report (matplotlib, Agg canvas, no pyplot state; PNG bytes out).

One figure per target, four panels: p50 latency vs. quality with the Pareto front, size
bars, energy-per-inference bars (hatched = estimated), and the latency distribution of each
artifact from its raw samples.
"""
from __future__ import annotations

import io

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def target_figure(rows: list, title: str) -> bytes:
    """PNG of the four panels for one target's ok rows (sorted by artifact name)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = sorted([r for r in rows if r.ok and r.p50_ms is not None], key=lambda r: r.artifact)
    fig = Figure(figsize=(13.5, 3.6), dpi=96)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1.3, 1, 1, 1.3]})
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    colors = {r.artifact: _color(i) for i, r in enumerate(rows)}
    if not rows:
        for ax in axes:
            ax.text(0.5, 0.5, "no successful results", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return _png(fig)
    _scatter(axes[0], rows, colors)
    _bars(axes[1], rows, colors, [r.size_bytes / 1024 if r.size_bytes else 0 for r in rows], "size (KB)")
    _energy(axes[2], rows, colors)
    _distribution(axes[3], rows, colors)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _png(fig)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _scatter(ax, rows, colors):
    have_quality = all(r.quality is not None for r in rows)
    ys = [(r.quality * 100 if have_quality else (r.size_bytes or 0) / 1024) for r in rows]
    xs = [r.p50_ms for r in rows]
    for r, x, y in zip(rows, xs, ys):
        ax.scatter([x], [y], s=70 if r.pareto else 35, color=colors[r.artifact],
                   edgecolors="black" if r.pareto else "none", linewidths=1.2, zorder=3)
        if r.pareto:                      # names on the front only; colours match the other panels
            ax.annotate(r.artifact, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    front = sorted([(x, y) for r, x, y in zip(rows, xs, ys) if r.pareto])
    if len(front) > 1:
        # the front in this projection: best quality so far as latency grows
        px, py, best = [], [], None
        for x, y in front:
            if best is None or (y > best if have_quality else y < best):
                best = y
                px.append(x)
                py.append(y)
        if len(px) > 1:
            ax.step(px, py, where="post", color="black", linewidth=1, linestyle="--", zorder=2,
                    label="Pareto front")
            ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("p50 latency (ms)", fontsize=8)
    ax.set_ylabel("accuracy / agreement (%)" if have_quality else "size (KB)", fontsize=8)
    ax.set_title("p50 latency vs. " + ("accuracy" if have_quality else "size") + " (ringed: Pareto-best)",
                 fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.margins(0.15)


def _bars(ax, rows, colors, values, label, hatches=None):
    names = [r.artifact for r in rows]
    bars = ax.barh(names, values, color=[colors[n] for n in names], edgecolor="black", linewidth=0.5)
    if hatches:
        for b, h in zip(bars, hatches):
            b.set_hatch(h)
    for b, v in zip(bars, values):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:.3g}", va="center", fontsize=7)
    ax.set_title(label, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.invert_yaxis()
    ax.margins(x=0.25)


def _energy(ax, rows, colors):
    vals = [r.energy_mj or 0.0 for r in rows]
    if not any(vals):
        ax.text(0.5, 0.5, "energy unavailable", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_title("energy per inference (mJ)", fontsize=9)
        ax.set_axis_off()
        return
    hatches = ["//" if r.energy_method == "estimated" else "" for r in rows]
    methods = sorted({r.energy_method for r in rows if r.energy_method})
    _bars(ax, rows, colors, vals, "energy per inference (mJ): " + "/".join(methods), hatches)


def _distribution(ax, rows, colors):
    data = [r.samples or [r.p50_ms] for r in rows]
    parts = ax.boxplot(data, vert=False, patch_artist=True, showfliers=True, widths=0.6,
                       flierprops={"markersize": 2})
    for patch, r in zip(parts["boxes"], rows):
        patch.set_facecolor(colors[r.artifact])
        patch.set_alpha(0.8)
    ax.set_yticks(range(1, len(rows) + 1), [r.artifact for r in rows])
    ax.invert_yaxis()
    flat = [v for d in data for v in d if v > 0]
    if flat and max(flat) / min(flat) > 20:      # long tails (a busy device) would hide the boxes
        ax.set_xscale("log")
    n = sum(len(r.samples) for r in rows)
    ax.set_title(f"latency (ms), {n} raw samples", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, axis="x")
