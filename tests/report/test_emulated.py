"""Results of an emulated target (the lab's qemu aarch64 device) in comparisons: timings shown
tagged as emulated, never Pareto-ranked, never regression-checked, no energy; quality kept."""
from __future__ import annotations

import copy

from edgecompress.cli import main
from edgecompress.deploy.session import mark_emulated
from edgecompress.device.result import BenchmarkResult
from edgecompress.report import compare, render_markdown, render_table
from edgecompress.report.html import render_html
from edgecompress.results import ResultsStore


def _run(store, measured, scale_arm=1.0):
    """One run: target 'local' (as measured) and 'arm' (the same results marked emulated, latency x scale)."""
    run_id = store.start_run(model_source="digits.onnx", model_sha256=measured["sha256"], targets=["local", "arm"])
    store.add_artifacts(run_id, "x86-64-host", measured["records"], folder=measured["folder"])
    for t, emulated in (("local", False), ("arm", True)):
        store.set_target(run_id, t, status="running", profile="x86-64-host", transport="ssh",
                         device={"arch": "aarch64" if emulated else "x86_64", "os": "Linux", "emulated": emulated})
        for r in measured["results"]:
            r = copy.deepcopy(r)
            r["target"] = t
            if emulated:
                r["device"]["arch"] = "aarch64"
                for k in ("mean", "p50", "p90", "p99"):
                    r["latency_ms"][k] *= scale_arm
                r = mark_emulated(BenchmarkResult.from_dict(r))
            store.add_result(run_id, r, profile="x86-64-host")
        store.set_target(run_id, t, status="ok")
    store.finish_run(run_id, "ok")
    return run_id


def test_mark_emulated_sets_the_flag_and_makes_energy_unavailable(measured):
    r = mark_emulated(BenchmarkResult.from_dict(copy.deepcopy(measured["results"][0])))
    assert r.emulated is True and r.device.get("emulated") is True
    doc = r.to_dict()
    assert doc["emulated"] is True and doc["device"]["emulated"] is True
    assert doc["energy"] == {"method": "unavailable", "source": None, "avg_power_w": None, "mj_per_inference": None,
                             "reason": "emulated", "note": "no energy on an emulated CPU"}
    assert any("emulated CPU" in n for n in doc["notes"])
    before = measured["results"][0]["latency_ms"]
    assert {k: doc["latency_ms"][k] for k in before} == before            # timings kept, only labelled
    # and read back as stored
    back = BenchmarkResult.from_dict(doc)
    assert back.emulated is True and back.energy.get("reason") == "emulated"


def test_emulated_rows_are_labelled_not_ranked_and_not_checked(tmp_path, measured, capsys):
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        base = _run(store, measured)
        now = _run(store, measured, scale_arm=5.0)      # the emulated timings 5x: must not be a regression
    comp = compare([now], db=db, fail_on=["p50:+5%", "energy:+5%"])
    arm = [r for r in comp.rows if r.target == "arm"]
    local = [r for r in comp.rows if r.target == "local"]
    assert len(arm) == len(local) == 2
    assert all(r.emulated and r.ok and r.energy_mj is None and r.energy_method == "unavailable" for r in arm)
    assert not any(r.pareto for r in arm) and any(r.pareto for r in local)
    # quality on the emulated device is kept (the fidelity is real)
    assert sorted(r.accuracy for r in arm) == sorted(r.accuracy for r in local)
    assert comp.baseline.id == base and comp.checks
    assert {c.target for c in comp.checks} == {"local"} and not comp.regressions
    assert any("arm" in n and "not checked" in n for n in comp.notes)

    table = render_table(comp)
    arm_lines = [ln for ln in table.splitlines() if ln.startswith("arm ")]
    assert len(arm_lines) == 2 and all(" emu " in ln and "ok (emulated)" in ln and "n/a" in ln for ln in arm_lines)
    assert not any(" emu " in ln for ln in table.splitlines() if ln.startswith("local "))
    assert "emu = timed on an emulated CPU" in table
    md = render_markdown(comp)
    assert sum(1 for ln in md.splitlines() if ln.startswith("| arm ") and " emu |" in ln) == 2
    html = render_html(comp)
    assert "Target arm (emulated CPU: timings are not a real device&#x27;s)" in html
    assert "<dt>emulated</dt>" in html

    # the CLI: --fail-on passes although the emulated timings are 5x the baseline's
    assert main(["compare", now, "--db", str(db), "--fail-on", "p50:+5%"]) == 0
    out = capsys.readouterr().out
    assert "not checked" in out and "arm" in out
