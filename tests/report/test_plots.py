"""The report's figures never let labels overlap (rendered extents checked), and the
cross-target figure puts every artifact's latency on every target side by side."""
from __future__ import annotations

import copy

from edgecompress.report import compare
from edgecompress.report.plots import cross_target_fig, overlaps, target_fig
from edgecompress.report.recommend import recommend, Budget
from edgecompress.results import ResultsStore


def _crowd(rows, n=8):
    """Copies of the measured rows a hair apart (as many near-identical int8 variants are)."""
    out = []
    for i in range(n):
        for r in rows:
            c = copy.deepcopy(r)
            c.artifact = f"{r.artifact}-variant{i}"
            c.p50_ms = r.p50_ms * (1 + 0.002 * i)
            c.size_bytes = int(r.size_bytes * (1 - 0.002 * i))     # each one Pareto-best: labelled
            c.pareto = True
            out.append(c)
    return out


def test_labels_never_overlap_in_the_target_and_cross_target_figures(tmp_path, measured, store_run):
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        store_run(store, measured, targets=("local", "lab"))
    comp = compare(db=db)
    local = [r for r in comp.rows if r.target == "local"]
    crowd = _crowd(local)
    fig = target_fig(crowd, "local")
    labels = fig.edgecompress_labels
    assert len(labels) == len(crowd)                         # every Pareto point is named
    assert overlaps(fig, labels) == []
    cross = cross_target_fig(comp.rows, comp.recommendations)
    texts = cross.edgecompress_labels
    assert len(texts) == 4 and overlaps(cross, texts) == []  # 2 artifacts x 2 targets, one label each
    stars = [t.get_text() for t in texts if "\u2605" in t.get_text()]
    assert len(stars) == 2                                   # the recommended artifact on each target
    rec = recommend(local, Budget())
    assert any(f"{next(r.p50_ms for r in local if r.artifact == rec.artifact):.3g} ms" in s for s in stars)
