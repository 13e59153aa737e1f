"""Plots for the HTML report (matplotlib, Agg canvas, no pyplot state; PNG bytes out).

One figure per target, four panels: p50 latency vs. quality with the Pareto front, size
bars, energy-per-inference bars (hatched = estimated), and the latency distribution of each
artifact from its raw samples. :func:`cross_target_figure`: each artifact's p50 on every
target side by side (the recommended one starred). Labels never overlap: after drawing,
:func:`declutter` moves colliding annotations apart using their rendered extents
(:func:`overlaps` is what the tests check).
"""
from __future__ import annotations

import io

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def target_figure(rows: list, title: str) -> bytes:
    """PNG of the four panels for one target's ok rows (sorted by artifact name)."""
    return _png(target_fig(rows, title))


def target_fig(rows: list, title: str):
    """The figure of :func:`target_figure` (its annotations in ``fig.edgecompress_labels``)."""
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
        fig.edgecompress_labels = []
        return fig
    labels = _scatter(axes[0], rows, colors)
    _bars(axes[1], rows, colors, [r.size_bytes / 1024 if r.size_bytes else 0 for r in rows], "size (KB)")
    _energy(axes[2], rows, colors)
    _distribution(axes[3], rows, colors)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    declutter(fig, labels)
    fig.edgecompress_labels = labels
    return fig


def _bbox(fig, text):
    return text.get_window_extent(renderer=fig.canvas.get_renderer())


def overlaps(fig, texts) -> list[tuple]:
    """Pairs of ``texts`` whose rendered boxes intersect (empty labels ignored)."""
    fig.canvas.draw()
    boxes = [(t, _bbox(fig, t)) for t in texts if t.get_text() and t.get_visible()]
    return [(a.get_text(), b.get_text()) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
            if ba.overlaps(bb)]


def declutter(fig, texts, step_pt: float = 9.0, rounds: int = 60) -> None:
    """Move annotations (offset-point texts) down/up in turn until none overlaps another."""
    texts = [t for t in texts if t.get_text()]
    if len(texts) < 2:
        return
    for i in range(rounds):
        pairs = overlaps(fig, texts)
        if not pairs:
            return
        moved = set()
        for a, b in pairs:
            for t in texts:
                if t.get_text() == b and b not in moved:
                    x, y = t.xyann if hasattr(t, "xyann") else (0, 0)
                    t.xyann = (x, y - step_pt if i % 2 == 0 else y + step_pt * 2)
                    moved.add(b)
                    break


def cross_target_figure(rows: list, recommendations=()) -> bytes:
    """PNG: grouped horizontal bars, one group per artifact, one bar per target (p50, log scale)."""
    return _png(cross_target_fig(rows, recommendations))


def cross_target_fig(rows: list, recommendations=()):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [r for r in rows if r.ok and r.p50_ms is not None]
    targets = sorted({(r.run_id, r.target) for r in ok})
    artifacts = sorted({r.artifact for r in ok})
    chosen = {(x.run_id, x.target, x.artifact) for x in recommendations or () if x.artifact}
    multi_run = len({t[0] for t in targets}) > 1
    height = 0.8 / max(1, len(targets))
    fig = Figure(figsize=(11, 0.55 + 0.32 * len(artifacts) * len(targets) + 0.6), dpi=96)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = []
    by = {(r.run_id, r.target, r.artifact): r for r in ok}
    for j, t in enumerate(targets):
        name = f"{t[1]} [{t[0]}]" if multi_run else t[1]
        ys, xs, hatch = [], [], []
        for i, a in enumerate(artifacts):
            r = by.get((t[0], t[1], a))
            if r is None:
                continue
            ys.append(i + j * height)
            xs.append(r.p50_ms)
            hatch.append("//" if r.emulated else "")
        bars = ax.barh(ys, xs, height=height * 0.9, color=_color(j), label=name, edgecolor="black", linewidth=0.4)
        for b, h, y, x in zip(bars, hatch, ys, xs):
            b.set_hatch(h)
            art = artifacts[int(round(y - j * height))]
            star = " \u2605" if (t[0], t[1], art) in chosen else ""
            labels.append(ax.text(x, y, f" {x:.3g} ms{star}", va="center", fontsize=7))
    ax.set_yticks([i + height * (len(targets) - 1) / 2 for i in range(len(artifacts))], artifacts)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms, log scale)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    ax.margins(x=0.2)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("p50 per artifact on every target (\u2605 = recommended there)", fontsize=9)
    fig.tight_layout()
    declutter(fig, labels)
    fig.edgecompress_labels = labels        # for the overlap tests
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _scatter(ax, rows, colors):
    have_quality = all(r.quality is not None for r in rows)
    ys = [(r.quality * 100 if have_quality else (r.size_bytes or 0) / 1024) for r in rows]
    xs = [r.p50_ms for r in rows]
    labels = []
    for r, x, y in zip(rows, xs, ys):
        ax.scatter([x], [y], s=70 if r.pareto else 35, color=colors[r.artifact],
                   edgecolors="black" if r.pareto else "none", linewidths=1.2, zorder=3)
        if r.pareto or r.recommended:     # names on the front only; colours match the other panels
            name = r.artifact + (" \u2605" if getattr(r, "recommended", False) else "")
            labels.append(ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7))
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
    return labels


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
