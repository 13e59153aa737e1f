"""A profile's ``batch: N`` fixes the batch dim of every ONNX artifact (the source's dynamic one is
kept otherwise); host and device feed such an artifact N samples a call, the last call padded,
so fidelity covers every held-out sample. A source that fixes another batch fails with a reason."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import io_models as M
from cli_helpers import cli

pytestmark = pytest.mark.slow
PROFILE = {"name": "batch4", "hardware": {"arch": "x86_64", "cores": 2, "memory_mb": 4096, "peak_gflops": 50,
                                          "memory_gbps": 10},
           "power": {"idle_w": 5, "load_w": 15}, "runtimes": ["onnxruntime"],
           "artifacts": [{"format": "onnx", "precision": "fp32"}, {"format": "onnx", "precision": "int8"},
                         {"format": "onnx", "precision": "dynamic"}]}
QUICK = ["--runs", "3", "--warmup", "1", "--min-seconds", "0", "--eval-samples", "38"]


def _lead(path) -> list:
    import onnx

    g = onnx.load(str(path)).graph
    return [t.type.tensor_type.shape.dim[0].dim_value or t.type.tensor_type.shape.dim[0].dim_param
            for t in list(g.input) + list(g.output)]


def _env(tmp_path, batch):
    prof = dict(PROFILE, **({"batch": batch} if batch else {}))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(prof))
    targets = tmp_path / "targets.yaml"
    targets.write_text(yaml.safe_dump({"targets": [{"name": "local", "profile": str(tmp_path / "p.yaml"),
                                                     "transport": "local", "workdir": str(tmp_path / "dev")}]}))
    return targets


def test_profile_batch_fixes_onnx_artifacts_and_every_sample_is_checked(tmp_path):
    import onnxruntime as ort

    m = M.two_heads()
    rc, out, err = cli("run", m.onnx, "--target", "local", "--targets", _env(tmp_path, 4), "--data", m.data,
                       "--out", tmp_path / "out", "--db", tmp_path / "r.db", "--json", *QUICK)
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    man = json.loads((tmp_path / "out" / "batch4" / "manifest.json").read_text())
    for a in man["artifacts"]:
        assert a["status"] == "ok", a
        assert _lead(tmp_path / "out" / "batch4" / a["path"]) == [4, 4, 4]     # pixels, logits, ink
        assert any("batch fixed at 4" in n for n in a["notes"]), a["notes"]
        assert [t["shape"][0] for t in a["inputs"]] == [4]
    for r in doc["targets"]["local"]["results"]:
        assert r["status"] == "ok", r.get("error")
        assert r["fidelity"]["samples"] == 38                                  # 9 calls of 4 + one padded
        if r["artifact"]["precision"] == "fp32":
            assert min(o["cosine"] for o in r["fidelity"]["outputs"]) > 0.99999
    # checked outside the code under test: the FP32 file takes exactly 4 samples and computes the source
    x = np.load(m.data)["pixels"][:8].astype(np.float32)
    src = ort.InferenceSession(str(m.onnx), providers=["CPUExecutionProvider"])
    art = ort.InferenceSession(str(tmp_path / "out" / "batch4" / "model.fp32.onnx"),
                               providers=["CPUExecutionProvider"])
    want = src.run(None, {"pixels": x})
    got = [np.concatenate(p) for p in zip(*(art.run(None, {"pixels": x[i:i + 4]}) for i in (0, 4)))]
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        art.run(None, {"pixels": x[:1]})


def test_without_batch_the_dynamic_dim_is_kept(tmp_path):
    m = M.two_heads()
    _env(tmp_path, None)
    rc, out, err = cli("compress", m.onnx, "-p", tmp_path / "p.yaml",
                       "--data", m.data, "--out", tmp_path / "out", "--json", "-q")
    assert rc == 0, err[-2000:]
    for a in json.loads(out)["artifacts"]:
        lead = _lead(tmp_path / "out" / "batch4" / a["path"])
        assert all(isinstance(d, str) and d for d in lead), lead


def test_a_source_with_another_fixed_batch_fails_with_the_fix(tmp_path):
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    m = M.two_heads()
    model = onnx.load(str(m.onnx))
    make_dim_param_fixed(model.graph, "batch", 1)
    onnx.save(model, str(tmp_path / "fixed1.onnx"))
    _env(tmp_path, 4)
    rc, out, err = cli("compress", tmp_path / "fixed1.onnx", "-p", tmp_path / "p.yaml", "--data", m.data,
                       "--out", tmp_path / "out", "--json", "-q")
    assert rc == 1
    for a in json.loads(out)["artifacts"]:
        assert a["status"] == "failed"
        assert "fixes the batch dim of pixels at 1" in a["error"] and "dynamic_axes" in a["error"], a["error"]
