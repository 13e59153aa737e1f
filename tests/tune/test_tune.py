"""`edgecompress tune` on a trained model with one quantization-sensitive layer: a mixed-precision
candidate recovers the accuracy full INT8 lost; --apply rebuilds it; a killed study resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import cli

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _args(m, tmp, *extra):
    return ["tune", m["model"], "--targets", m["targets"], "--target", "local", "--data", m["data"],
            "--artifacts", "int8.onnx,fp32.onnx", "--db", tmp / "r.db", "--out", tmp / "out", *extra]


def test_tune_finds_mixed_precision_that_recovers_what_full_int8_lost(sensitive_mlp, tmp_path):
    rc, out, err = cli(*_args(sensitive_mlp, tmp_path, "--trials", "10", "--objective", "size",
                              "--apply", tmp_path / "applied", "--json"))
    assert rc == 0, err[-3000:]
    t = json.loads(out)["targets"]["local"]
    cands = t["candidates"]
    assert t["trials"] == len(cands) >= 8
    for c in cands:
        assert set(c) >= {"settings", "status", "p50_ms", "accuracy", "top1_agreement", "size_bytes", "pareto"}
    ok = [c for c in cands if c["status"] == "ok"]
    # the sensitivity analysis found the layers around the outlier tensor (the 2nd and 3rd Gemm)
    sens = t["sensitivity"]
    assert [d["op_type"] for d in sens] == ["Gemm"] * 3 and sens[-1]["sqnr_db"] > sens[1]["sqnr_db"] + 20
    full = [c for c in ok if c["settings"]["artifact"] == "int8.onnx" and not c["settings"].get("keep_float")]
    mixed = [c for c in ok if c["settings"]["artifact"] == "int8.onnx" and c["settings"].get("keep_float")]
    fp32 = [c for c in ok if c["settings"]["artifact"] == "fp32.onnx"]
    assert full and mixed and fp32
    ref = fp32[0]["reference_accuracy"]
    assert abs(ref - sensitive_mlp["float_accuracy"]) < 0.05
    # every fully quantized candidate is outside the 1-point budget (min-max ones collapse to chance;
    # a clipping calibration, entropy or percentile, loses the outlier unit and some points)
    assert all(c["accuracy"] < ref - 0.01 for c in full), [(c["settings"], c["accuracy"]) for c in full]
    assert min(c["accuracy"] for c in full) < 0.3
    good = [c for c in mixed if c["accuracy"] >= ref - 0.01]
    assert good, [(c["settings"], c["accuracy"]) for c in mixed]
    best = min(good, key=lambda c: c["size_bytes"])
    assert best["size_bytes"] < min(c["size_bytes"] for c in fp32) and best["pareto"]
    rec = t["recommended"]
    assert rec["number"] == best["number"] or rec["size_bytes"] == best["size_bytes"]
    assert rec["settings"]["keep_float"] >= 1 and "size" in t["reason"]
    # --apply: the artifact and a profile that rebuilds it (a fresh cache: really rebuilt)
    applied = Path(t["applied"])
    art = applied / "model.int8.onnx"
    assert art.read_bytes() == Path(rec["path"]).read_bytes()
    rc, out, err = cli("compress", sensitive_mlp["model"], "--profile", applied / "profile.yaml", "--data",
                       sensitive_mlp["data"], "--out", tmp_path / "rebuilt", "--cache", tmp_path / "fresh-cache",
                       "--json")
    assert rc == 0, err[-2000:]
    import onnx

    rebuilt = next((tmp_path / "rebuilt").rglob("model.int8.onnx"))
    a, b = onnx.load(str(art)).graph, onnx.load(str(rebuilt)).graph
    assert [n.op_type for n in a.node] == [n.op_type for n in b.node]
    assert rebuilt.read_bytes() == art.read_bytes()


def _finished(storage: Path) -> int:
    import optuna

    if not storage.exists():
        return 0
    try:
        names = optuna.get_all_study_names(f"sqlite:///{storage}")
        if not names:
            return 0
        study = optuna.load_study(study_name=names[0], storage=f"sqlite:///{storage}")
        return sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    except Exception:  # noqa: BLE001 - the writer holds the file for a moment
        return 0


def test_a_killed_tune_resumes_where_it_stopped(sensitive_mlp, tmp_path):
    argv = [str(a) for a in _args(sensitive_mlp, tmp_path, "--trials", "10", "--no-passes")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edgecompress", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    storage = tmp_path / "tune-studies.db"
    deadline = time.monotonic() + 240
    while _finished(storage) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
    done_before = _finished(storage)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= done_before < 10, proc.stderr.read().decode()[-2000:]
    rc, out, err = cli(*argv, "--json")
    assert rc == 0, err[-3000:]
    t = json.loads(out)["targets"]["local"]
    assert f"{done_before} trial(s) done" in err or "trial(s) done" in err
    numbers = sorted(c["number"] for c in t["candidates"])
    assert len(numbers) >= 8 and numbers[0] == 0            # the killed run's trials are in the study
    assert t["measured"] <= 10 - done_before                # what it had measured is not measured again
    assert t["recommended"] is not None
    rc, out, _ = cli(*argv, "--json")                       # finished: a third call measures nothing
    assert rc == 0 and json.loads(out)["targets"]["local"]["measured"] == 0
