"""Real I/O shapes through `compress` (every format and precision): named, typed, multi-input and
multi-output, recurrent state, token ids, opset 12, dynamic H/W -- values asserted per output.

The models are trained here in seconds on real data (tests/io_models.py); each is compressed once
per session by the command line into one shared folder and cache (`compressed` fixture)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import io_models as M
from cli_helpers import cli
import digits_artifacts as D

pytestmark = pytest.mark.slow
ALL = D.ALL_ARTIFACTS


@pytest.fixture(scope="session")
def io_root(tmp_path_factory):
    return tmp_path_factory.mktemp("io")


@pytest.fixture(scope="session")
def full_profile():
    return D.profile_yaml("io-all", ALL)


_DONE: dict = {}


def compressed(name, io_root, full_profile):
    """(exit code, manifest dict, stderr) of `compress` for io model ``name`` (once per session)."""
    if name not in _DONE:
        m = M.broken() if name == "broken" else M.ALL[name]()
        args = ["compress", m.onnx, "--profile", full_profile, "--data", m.data, "--out", io_root / name,
                "--cache", io_root / "cache", "--json"]
        for o, i in m.feedback.items():
            args += ["--feedback", f"{o}={i}"]
        rc, out, err = cli(*args)
        _DONE[name] = (rc, json.loads(out) if out.strip().startswith("{") else None, err, m)
    return _DONE[name]


def arts(manifest):
    return {f"{a['precision']}.{a['format']}": a for a in manifest["artifacts"]}


def outs(a):
    return {o["name"]: o for o in a["fidelity"]["outputs"]}


def check_common(name, io_root, full_profile, min_int8_cos=0.97):
    rc, man, err, m = compressed(name, io_root, full_profile)
    assert man is not None, err[-3000:]
    by = arts(man)
    assert set(by) == {f"{p}.{f}" for f, p in ALL}
    for key, a in by.items():
        assert a["status"] == "ok", (key, a["error"], a["fidelity"]["reasons"])
        assert {o["name"] for o in a["fidelity"]["outputs"]} == set(m.outputs)
        # every artifact tensor is mapped to the model's tensor by name, never by position
        assert sorted(t["model_name"] for t in a["outputs"]) == sorted(m.outputs), a["outputs"]
        assert sorted(t["model_name"] for t in a["inputs"]) == sorted(m.inputs)
        for o in a["fidelity"]["outputs"]:
            floor = 0.999 if a["precision"] in ("fp32", "fp16") else min_int8_cos
            assert o["cosine"] >= floor, (key, o)
            assert o["sqnr_db"] is not None and o["mean_abs"] <= o["max_abs"]
        worst = min(o["cosine"] for o in a["fidelity"]["outputs"])
        assert a["fidelity"]["cosine"] == pytest.approx(worst)
        # dtypes preserved: an integer model input stays that integer kind in every artifact
        for t in a["inputs"]:
            want = m.inputs[t["model_name"]]
            if not want.startswith("float"):
                assert t["dtype"].startswith("int") and "scale" not in t or t.get("scale") is None, t
        if a["format"] == "onnx":     # the source's dynamic batch is kept
            assert all(t["shape"][0] in ("batch", None) or name == "recurrent" for t in a["inputs"]), a["inputs"]
        else:
            assert any("batch 1" in n for n in a["notes"]), a["notes"]
    assert rc == 0, err[-2000:]
    model_in = {t["name"]: t["dtype"] for t in man["model"]["inputs"]}
    assert model_in == m.inputs
    return man, by, err


def test_two_inputs_of_different_dtypes(io_root, full_profile):
    man, by, err = check_common("two_inputs", io_root, full_profile)
    assert [t["shape"] for t in man["model"]["inputs"]] == [["batch", 1, 8, 8], ["batch"]]
    assert "input 'category': dims [1] from --data" in err
    int8 = by["int8.onnx"]
    assert "integer input(s) category are not quantized" in int8["notes"]
    tfl = {t["model_name"]: t for t in by["int8.tflite"]["inputs"]}
    assert tfl["image"]["dtype"] == "int8" and tfl["image"]["shape"] == [1, 8, 8, 1]     # NHWC, quantized
    assert tfl["category"]["dtype"] in ("int64", "int32")                                 # never float
    for a in by.values():
        o = outs(a)["logits"]
        assert o["accuracy"] >= 0.85 and o["top1_agreement"] >= 0.95, (a["path"], o)


def test_two_heads_with_very_different_ranges(io_root, full_profile):
    man, by, _ = check_common("two_heads", io_root, full_profile)
    for a in by.values():
        o = outs(a)
        assert o["logits"]["top1_agreement"] is not None and o["ink"]["top1_agreement"] is None
        assert o["ink"]["cosine"] >= 0.99
    # the INT8 TFLite lists its outputs in another order (onnx2tf): mapped by signature, not position
    names = [t["model_name"] for t in by["int8.tflite"]["outputs"]]
    assert sorted(names) == ["ink", "logits"]


def test_recurrent_state_fed_back(io_root, full_profile):
    man, by, err = check_common("recurrent", io_root, full_profile, min_int8_cos=0.95)
    assert man["model"]["feedback"] == {"state_out": "state"}
    assert "(in order: --feedback)" in err
    for a in by.values():
        assert set(outs(a)) == {"logits", "state_out"}


def test_token_ids_and_mask_on_real_text(io_root, full_profile):
    man, by, _ = check_common("tokens", io_root, full_profile)
    for a in by.values():
        o = outs(a)["logits"]
        assert o["reference_accuracy"] >= 0.7 and o["accuracy"] >= o["reference_accuracy"] - 0.05
        assert {t["model_name"]: t["dtype"] for t in a["inputs"]}["input_ids"] in ("int64", "int32")


def test_opset12_is_converted_before_qdq(io_root, full_profile):
    import onnx
    import onnxruntime as ort

    man, by, _ = check_common("opset12", io_root, full_profile)
    assert man["model"]["opset"] == 12
    for key in ("int8.onnx", "dynamic.onnx"):
        assert by[key]["opset"] == {"source": 12, "converted_to": 13}
        assert any("opset 12 to 13" in n for n in by[key]["notes"])
    path = io_root / "opset12" / "io-all" / "model.int8.onnx"
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(path)).graph.node)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])      # loads (it did not before)


def test_dynamic_height_and_width(io_root, full_profile):
    man, by, _ = check_common("dynamic_hw", io_root, full_profile)
    assert man["model"]["inputs"][0]["shape"] == ["batch", 1, "height", "width"]
    assert man["model"]["shapes"] == {"image": [1, 1, 16, 16]} and man["model"]["shape_source"] == {"image": "data"}
    assert by["fp32.onnx"]["inputs"][0]["shape"] == ["batch", 1, "height", "width"]       # stays dynamic
    assert by["fp32.tflite"]["inputs"][0]["shape"] == [1, 16, 16, 1]


def test_broken_output_is_degraded_with_the_reason(io_root, full_profile):
    rc, man, err, _ = compressed("broken", io_root, full_profile)
    assert rc == 1, err[-2000:]
    by = arts(man)
    int8 = by["int8.onnx"]
    assert int8["status"] == "degraded" and int8["sha256"] and int8["size_bytes"] > 0     # built, measured
    o = outs(int8)
    assert o["ink"]["cosine"] < 0.9 and o["logits"]["cosine"] > 0.99
    assert any("output 'ink': cosine" in r for r in int8["fidelity"]["reasons"])
    assert int8["fidelity"]["worst_output"] == "ink"
    assert by["fp32.onnx"]["status"] == "ok"
    assert "DEGRADED model.int8.onnx" in err


def test_bad_data_for_each_input_names_it(io_root, full_profile, tmp_path):
    m = M.two_inputs()
    d = dict(np.load(m.data))
    cases = {
        "float_category": ({**d, "category": d["category"].astype(np.float32)},
                           "input 'category' takes int64; the data is float32"),
        "missing_key": ({"image": d["image"], "cat": d["category"]}, "no array for input 'category'"),
        "image_shape": ({**d, "image": d["image"][:, :, :4]}, "input 'image': samples have shape [397, 1, 4, 8]"),
        "counts": ({**d, "category": d["category"][:10]}, "inputs have different numbers of samples"),
    }
    for case, (arrays, msg) in cases.items():
        path = tmp_path / f"{case}.npz"
        np.savez(path, **arrays)
        rc, _, err = cli("compress", m.onnx, "--profile", full_profile, "--data", path, "--out", tmp_path / case)
        assert rc == 2 and msg in err, (case, err[-600:])
    rc, _, err = cli("compress", m.onnx, "--profile", full_profile, "--data", m.data, "--out", tmp_path / "s",
                     "--input-shape", "1,1,8,8")
    assert rc == 2 and "has no name, but the model has 2 inputs (image, category)" in err
    assert "--input-shape image=1,1,8,8" in err
    rc, _, err = cli("compress", m.onnx, "--profile", full_profile, "--random-calibration", "--out", tmp_path / "r",
                     "--input-shape", "imag=1,1,8,8")
    assert rc == 2 and "no input 'imag' (did you mean 'image'?)" in err
    rc, _, err = cli("compress", M.recurrent().onnx, "--profile", full_profile, "--data", M.recurrent().data,
                     "--out", tmp_path / "f", "--feedback", "state=state_out")
    assert rc == 2 and "the model has no output 'state'; outputs: logits, state_out" in err
