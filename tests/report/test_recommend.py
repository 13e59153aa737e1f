"""The recommended artifact per target: the measured fastest within the quality budget and the
device's memory, checked against the raw samples; on `local` and on a lab device with a CPU quota."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.cli_helpers import cli
from edgecompress.report import compare
from edgecompress.report.recommend import Budget, recommend
from edgecompress.results import ResultsStore

TINY = Path(__file__).resolve().parents[1] / "runs" / "tiny-x86.yaml"
DIGITS = Path(__file__).resolve().parents[2] / "edgecompress" / "examples" / "digits.py"


def _fastest(rows, allowed):
    """The artifact with the lowest median of its RAW samples among ``allowed``."""
    med = {r.artifact: float(np.median(r.samples)) for r in rows if r.artifact in allowed}
    return min(med, key=med.get)


def test_recommendation_from_stored_results_obeys_budget_memory_and_status(tmp_path, measured, store_run):
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        run_id = store_run(store, measured)
    comp = compare(db=db)
    rows = [r for r in comp.rows if r.target == "local"]
    rec = comp.recommendations[0]
    assert rec.target == "local" and rec.objective == "p50"
    assert rec.artifact == _fastest(rows, {"fp32.onnx", "dynamic.onnx"})
    best = next(r for r in rows if r.artifact == rec.artifact)
    assert rec.value == best.p50_ms and best.recommended
    other = next(r for r in rows if r.artifact != rec.artifact)
    assert rec.runner_up == other.artifact
    assert abs(rec.margin_pct - (other.p50_ms - best.p50_ms) / best.p50_ms * 100) < 1e-9
    assert rec.runner_up in rec.reason and ("above the noise" in rec.reason or "within the noise" in rec.reason)
    # over the memory limit: the fastest is excluded, the other one is chosen
    limit = best.peak_rss_mb - 0.01
    if other.peak_rss_mb <= limit:
        rec2 = compare(db=db, max_memory_mb=limit).recommendations[0]
        assert rec2.artifact == other.artifact and "memory limit" in rec2.excluded[best.artifact]
    tight = recommend(rows, Budget(max_memory_mb=min(r.peak_rss_mb for r in rows) - 1))
    assert tight.artifact is None and "nothing may ship" in tight.reason
    # a degraded result (fidelity floor missed: the status #10's fidelity check gives) never ships
    degraded = [copy.deepcopy(r) for r in rows]
    for r in degraded:
        if r.artifact == rec.artifact:
            r.status = "degraded"
    rec3 = recommend(degraded, Budget())
    assert rec3.artifact == other.artifact and rec3.excluded[rec.artifact] == "status degraded"
    emu = [copy.deepcopy(r) for r in rows]
    for r in emu:
        r.emulated = True
    assert recommend(emu, Budget()).artifact is None
    assert recommend(emu, Budget(objective="size")).artifact == min(rows, key=lambda r: r.size_bytes).artifact
    # the quality budget: demanding more agreement than an artifact has excludes it
    worst = min(rows, key=lambda r: r.top1_agreement)
    if worst.top1_agreement < 1.0:
        rec4 = recommend(rows, Budget(min_agreement=min(1.0, worst.top1_agreement + 1e-6)))
        assert worst.artifact in rec4.excluded
    rc, out, _ = cli("compare", run_id, "--db", db, "--json")
    d = json.loads(out)
    assert rc == 0 and [set(x) >= {"target", "artifact", "objective", "value", "reason"}
                        for x in d["recommendations"]] == [True]
    rc, out, _ = cli("compare", run_id, "--db", db, "--markdown")
    assert f"recommended on local (p50): {rec.artifact}" in out
    rc, out, _ = cli("compare", run_id, "--db", db, "--objective", "size")
    assert f"recommended on local (size): {min(rows, key=lambda r: r.size_bytes).artifact}" in out
    rc, _, err = cli("compare", run_id, "--db", db, "--min-agreement", "97")
    assert rc == 2 and "min-agreement" in err and "0..1" in err


@pytest.mark.lab
@pytest.mark.slow
def test_run_recommends_the_measured_fastest_on_local_and_a_cpu_quota_device(
        torch_digits, digits_npz, lab_sshd, tmp_path):
    import torch

    from edgecompress import lab
    from edgecompress.lab.limits import cgroup_support

    if cgroup_support():
        pytest.skip(f"no cgroup CPU quota here: {cgroup_support()}")
    weights = tmp_path / "digits.pt"
    torch.save(torch_digits[0].state_dict(), weights)
    dev = lab.start_device("recq", tmp_path, cpu_quota=0.5)
    try:
        quota = dict(dev.target_dict(), name="quota", profile=str(TINY))
        local = {"name": "local", "profile": str(TINY), "transport": "local", "workdir": str(tmp_path / "local")}
        targets = tmp_path / "targets.yaml"
        targets.write_text(yaml.safe_dump({"targets": [local, quota]}, sort_keys=False))
        rc, out, err = cli("run", f"{DIGITS}:factory", "--weights", weights, "--data", digits_npz,
                           "--targets", targets, "--target", "local", "--target", "quota", "--out", tmp_path / "out",
                           "--db", tmp_path / "r.db", "--eval-samples", "100", "--json")
    finally:
        lab.stop_device(dev)
    assert rc == 0, err[-3000:]
    d = json.loads(out)
    recs = {r["target"]: r for r in d["recommendations"]}
    assert set(recs) == {"local", "quota"}
    comp = compare([d["run_id"]], db=tmp_path / "r.db")
    for target in ("local", "quota"):
        rows = [r for r in comp.rows if r.target == target]
        budget = Budget.for_profile(str(TINY))
        within = {r.artifact for r in rows if r.ok and (r.delta_accuracy is None or
                                                        -r.delta_accuracy * 100 <= budget.max_accuracy_drop + 1e-9)
                  and r.top1_agreement >= budget.min_agreement and (r.cosine is None or r.cosine >= budget.min_cosine)}
        assert within, [(r.artifact, r.accuracy, r.top1_agreement) for r in rows]
        assert recs[target]["artifact"] == _fastest(rows, within), recs[target]["reason"]
        assert recs[target]["objective"] == "p50" and recs[target]["value"] > 0
    quota_res = [r for r in d["targets"]["quota"]["results"]]
    assert all(abs(r["stability"]["cpu_quota"] - 0.5) < 1e-6 for r in quota_res), \
        [r["stability"] for r in quota_res]


def test_a_margin_within_the_targets_rerun_noise_is_not_above_the_noise():
    """Two artifacts 10 % apart with well separated samples: above the noise by Mann-Whitney, unless
    the target's reruns of one artifact moved by more than that (then either may be faster)."""
    from edgecompress.report import Row
    from edgecompress.report.checks import Noise

    rng = np.random.default_rng(0)

    def row(name, p50):
        s = list(rng.normal(p50, p50 * 0.01, 200))
        return Row(run_id="r", target="t", profile="p", artifact=name, p50_ms=float(np.median(s)), samples=s,
                   size_bytes=1000, top1_agreement=1.0)

    rows = [row("a.onnx", 1.0), row("b.onnx", 1.1)]
    budget = Budget()
    rec = recommend(rows, budget, {"target": "t"})
    assert rec.artifact == "a.onnx" and rec.above_noise is True and "above the noise" in rec.reason
    rec = recommend(rows, budget, {"target": "t"}, Noise({"p50": 20.0}, 3))
    assert rec.artifact == "a.onnx" and rec.above_noise is False
    assert "within this target's rerun noise" in rec.reason and "20.0%, 3 rerun(s)" in rec.reason
    rec = recommend(rows, budget, {"target": "t"}, Noise({"p50": 4.0}, 3))     # 10 % > 4 %: still above
    assert rec.above_noise is True
