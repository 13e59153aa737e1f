"""`tune` on the models users bring: several inputs of different dtypes (by name, never cast), and
a PyTorch model whose candidates include pruning (the pass settings the search builds are valid
pass specs, and --apply writes a profile that loads and rebuilds the winner)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import io_models as M
from cli_helpers import cli

pytestmark = pytest.mark.slow
TINY = Path(__file__).resolve().parents[1] / "runs" / "tiny-x86.yaml"


def _targets(root: Path) -> Path:
    path = root / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": [{"name": "local", "profile": str(TINY), "transport": "local",
                                                  "workdir": str(root / "dev")}]}))
    return path


def test_every_pass_choice_is_a_valid_pass_spec():
    from edgecompress.passes import validate_pass_specs
    from edgecompress.tune.space import PASS_CHOICES, _pass_spec

    for choice in PASS_CHOICES:
        assert len(validate_pass_specs(_pass_spec(choice), "passes")) == (0 if choice == "none" else 1), choice


def test_tune_a_two_input_model_feeds_each_input_by_name_in_its_dtype(tmp_path):
    import onnxruntime as ort

    m = M.two_inputs()                     # image float32 [batch,1,8,8] + category int64 [batch]
    rc, out, err = cli("tune", m.onnx, "--targets", _targets(tmp_path), "--target", "local", "--data", m.data,
                       "--artifacts", "fp32.onnx,int8.onnx", "--trials", "4", "--db", tmp_path / "r.db",
                       "--out", tmp_path / "out", "--eval-samples", "120", "--json")
    assert rc == 0, err[-3000:]
    t = json.loads(out)["targets"]["local"]
    ok = [c for c in t["candidates"] if c["status"] == "ok"]
    # the first (FP32) is always measured in full; a later one may be dropped early, dominated by one before
    assert t["candidates"][0]["settings"]["artifact"] == "fp32.onnx" and t["candidates"][0]["status"] == "ok"
    assert {c["status"] for c in t["candidates"]} <= {"ok", "dropped"}, [(c["label"], c["error"])
                                                                         for c in t["candidates"]]
    # the reference accuracy, computed again outside the code under test on the same 120 samples
    # (compress's split: the last EVAL samples of the data are held out; tune takes the first 120 of them)
    from edgecompress.compress import CALIB_SAMPLES, EVAL_SAMPLES
    from edgecompress.data import load_data
    from edgecompress.models import load_model

    ds = load_data(str(m.data), load_model(str(m.onnx)))
    _, held = ds.split(CALIB_SAMPLES, EVAL_SAMPLES)
    d = np.load(m.data)
    idx = [int(np.flatnonzero((d["image"] == held.inputs["image"][i][0]).all(axis=(1, 2, 3)))[0]) for i in range(120)]
    sess = ort.InferenceSession(str(m.onnx), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"image": d["image"][idx].astype(np.float32), "category": d["category"][idx]})[0]
    ref = float((logits.argmax(1) == d["y"][idx]).mean())
    assert ref > 0.9
    for c in ok:
        assert c["reference_accuracy"] == pytest.approx(ref, abs=1e-9), c
        if c["settings"]["artifact"] == "fp32.onnx":
            assert c["accuracy"] == pytest.approx(ref, abs=1e-9) and c["top1_agreement"] == 1.0
        else:
            assert c["accuracy"] >= ref - 0.1 and c["top1_agreement"] > 0.85, c
    assert t["sensitivity"] and all(d["op_type"] in ("Conv", "Gemm", "MatMul") for d in t["sensitivity"])
    assert t["recommended"] is not None


def test_a_pruned_candidate_is_built_measured_and_applied(torch_digits, tmp_path):
    """The Tuner itself, on the digits CNN: the structured-pruning candidate builds from a valid
    spec, fine-tunes on samples other than the held-out ones, and is measured on the target."""
    import torch

    from edgecompress.models import load_model
    from edgecompress.profiles import load_profile
    from edgecompress.report.recommend import Budget
    from edgecompress.targets import load_targets
    from edgecompress.tune import Candidate
    from edgecompress.tune.space import Space, Tuner
    from edgecompress.tune.store import Measurements

    model, (_, _, xte, yte) = torch_digits
    weights = tmp_path / "digits.pt"
    torch.save(model.state_dict(), weights)
    data = tmp_path / "digits.npz"
    np.savez(data, x=xte, y=yte)
    loaded = load_model("edgecompress/examples/digits.py:factory", weights=str(weights), input_shape=(1, 1, 28, 28))
    targets = _targets(tmp_path)
    target = load_targets(targets)["local"]
    profile = load_profile(str(TINY))
    space = Space.for_target(loaded, profile, artifacts=["fp32.onnx"], data=str(data))
    assert "prune:0.5" in space.passes
    cache = Measurements(tmp_path / "r.db")
    tuner = Tuner(loaded, target, profile, space, Budget.for_profile(str(TINY)), data=str(data),
                  out=tmp_path / "out", cache=cache, cache_dir=tmp_path / "cache", targets_file=targets,
                  measure={"runs": 5, "warmup": 1, "min_seconds": 0}, eval_samples=100, trust_new_host=False,
                  say=lambda msg: print(msg, file=sys.stderr), seed=0)
    settings = {"artifact": "fp32.onnx", "threads": 1, "pass": "prune:0.5"}
    rec = tuner.build(settings)
    plain = tuner.build({"artifact": "fp32.onnx", "threads": 1, "pass": "none"})
    assert rec.size_bytes < 0.5 * plain.size_bytes              # half the channels of each layer: ~1/4 of weights
    assert [t.model_name for t in rec.inputs] == ["x"] and [t.model_name for t in rec.outputs] == ["output"]
    from edgecompress.deploy import DeviceSession

    with DeviceSession(target, targets_file=targets) as session:
        tuner.session = session
        d = tuner._bench(rec, 1, quick=False)
    cache.close()
    assert d["status"] == "ok", d.get("error")
    fid = d["fidelity"]
    assert fid["samples"] == 100 and fid["accuracy"] > 0.85           # 2 fine-tuning epochs after pruning
    assert fid["reference_accuracy"] > fid["accuracy"] - 0.15
    c = Candidate(number=0, settings=settings, status="ok", label="fp32.onnx prune:0.5 t1",
                  size_bytes=rec.size_bytes, path=rec.path)
    applied = tuner.apply(c, tmp_path / "applied")
    prof = load_profile(str(applied / "profile.yaml"))            # validated, pass specs included
    assert prof.passes == [{"pass": "prune", "method": "structured", "amount": 0.5, "epochs": 2}]
    assert (applied / "model.fp32.onnx").read_bytes() == Path(rec.path).read_bytes()


def test_tune_a_recurrent_model_feeds_its_state_back_on_the_device(tmp_path):
    """`recurrent` (a GRU over the rows of a digit) with --feedback state_out=state: each candidate's
    device top-1 agreement is the one computed again here, running the artifact and the source in
    order with their own state fed back — not the one of zero state at every step."""
    import onnxruntime as ort

    m = M.recurrent()
    rc, out, err = cli("tune", m.onnx, "--targets", _targets(tmp_path), "--target", "local", "--data", m.data,
                       "--feedback", "state_out=state", "--artifacts", "fp32.onnx,int8.onnx", "--trials", "3",
                       "--db", tmp_path / "r.db", "--out", tmp_path / "out", "--eval-samples", "120", "--json")
    assert rc == 0, err[-3000:]
    t = json.loads(out)["targets"]["local"]
    rows = np.load(m.data)["chunk"]
    held = range(100, 220)       # ordered split: the first 100 steps calibrate, the next 120 are held out

    def argmax(path, fed=True):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        state, top = np.zeros((2, 1, 16), np.float32), []
        for i in held:
            logits, new = sess.run(["logits", "state_out"], {"chunk": rows[i:i + 1], "state": state})
            state = new if fed else state
            top.append(int(logits.argmax()))
        return np.array(top)

    ref = argmax(m.onnx)
    assert (argmax(m.onnx, fed=False) == ref).mean() < 0.8       # the state matters: the check has teeth
    ok = [c for c in t["candidates"] if c["status"] == "ok"]
    assert {c["settings"]["artifact"] for c in ok} >= {"fp32.onnx"}, [(c["label"], c["error"]) for c in t["candidates"]]
    for c in ok:
        assert c["top1_agreement"] == pytest.approx(float((argmax(c["path"]) == ref).mean()), abs=1e-9), c
        if c["settings"]["artifact"] == "fp32.onnx":
            assert c["top1_agreement"] == 1.0
    assert t["recommended"] is not None
    assert t["sensitivity"] and all(d["op_type"] in ("Gemm", "MatMul", "GRU") for d in t["sensitivity"])
