"""A Keras 3 model with two inputs of different dtypes and two outputs of very different ranges,
trained here on real digits, through compress (ONNX and TFLite, FP32 and INT8), run and bench on
`local`, with every value checked per output by name -- and its host fidelity recomputed outside
edgecompress (onnxruntime / LiteRT by hand against ``model.predict``).

The model: an 8x8x1 float32 image (NHWC) and the digit's parity, an int64 category through an
Embedding -> ``logits`` (10 classes, about -30..20) and ``ink`` (the digit's total ink, 0..1024,
about 230..430 here).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_helpers import cli
from profile_yaml import write_profile

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = [("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8")]
QUICK = ["--runs", "3", "--warmup", "1", "--min-seconds", "0", "--eval-samples", "40"]
OUTPUTS = ("logits", "ink")
#: INT8 floors per output, measured: cosine 0.9993 / 1.0000, SQNR 28 / 43 dB (ONNX and TFLite alike)
INT8_MIN_COSINE = {"logits": 0.995, "ink": 0.9999}
INT8_MIN_SQNR_DB = {"logits": 20.0, "ink": 30.0}
TRAIN = 1197                       # of load_digits' 1797 samples; the other 600 are the --data


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    image = (d.images[order] / 16.0).astype(np.float32)[..., None]           # (N, 8, 8, 1) NHWC
    y = d.target[order].astype(np.int64)
    parity = (y % 2).astype(np.int64)[:, None]                                 # (N, 1) int64
    ink = d.images[order].reshape(len(y), -1).sum(1, keepdims=True).astype(np.float32)
    return image, parity, y, ink


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("keras-io")
    image, parity, y, ink = _digits()
    keras.utils.set_random_seed(0)
    img = keras.Input((8, 8, 1), name="image")
    cat = keras.Input((1,), dtype="int64", name="parity")
    h = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(img))
    e = keras.layers.Flatten()(keras.layers.Embedding(2, 4)(cat))
    z = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([h, e]))
    logits = keras.layers.Dense(10, name="logits")(z)
    ink_out = keras.layers.Rescaling(100.0, name="ink")(keras.layers.Dense(1)(z))
    model = keras.Model([img, cat], [logits, ink_out])
    model.compile(keras.optimizers.Adam(0.01), loss_weights={"logits": 1.0, "ink": 1e-3},
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "ink": "mse"})
    model.fit({"image": image[:TRAIN], "parity": parity[:TRAIN]}, {"logits": y[:TRAIN], "ink": ink[:TRAIN]},
              epochs=30, batch_size=64, verbose=0)
    path = root / "two_io.keras"
    model.save(path)
    data = root / "two_io.npz"
    np.savez(data, image=image[TRAIN:], parity=parity[TRAIN:], y=y[TRAIN:])
    profile = write_profile(root / "profiles" / "keras-io.yaml", "keras-io", ARTIFACTS,
                            runtimes=["onnxruntime", "tflite"])
    local = {"name": "local", "profile": str(profile), "transport": "local", "workdir": str(root / "localdev")}
    targets = root / "targets.yaml"
    targets.write_text(yaml.safe_dump({"targets": [local]}))
    rc, out, err = cli("compress", path, "-p", profile, "--data", data, "--out", root / "out",
                       "--cache", root / "cache", "--json")
    return {"root": root, "model": path, "data": data, "profile": profile, "targets": targets,
            "compress": (rc, out, err), "keras": model}


def _cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_compress_every_artifact_per_output(env):
    rc, out, err = env["compress"]
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    model = doc["model"]
    assert [(t["name"], t["dtype"]) for t in model["inputs"]] == [("image", "float32"), ("parity", "int64")]
    assert [t["name"] for t in model["outputs"]] == list(OUTPUTS)
    assert doc["data"]["calibration_samples"] == 100 and doc["data"]["evaluation_samples"] == 400
    arts = {f"{a['precision']}.{a['format']}": a for a in doc["artifacts"]}
    assert sorted(arts) == sorted(f"{p}.{f}" for f, p in ARTIFACTS)
    for key, a in arts.items():
        assert a["status"] == "ok", (key, a["error"])
        ins = {t["model_name"]: t for t in a["inputs"]}
        outs = {t["model_name"]: t for t in a["outputs"]}
        assert set(ins) == {"image", "parity"} and set(outs) == set(OUTPUTS), key
        assert ins["parity"]["dtype"] in ("int32", "int64"), (key, ins["parity"])     # never float, never quantized
        assert ins["parity"]["scale"] in (None, 0.0)
        if a["format"] == "onnx":
            # the model's own names, and a dynamic batch called batch
            assert {t["name"] for t in a["outputs"]} == set(OUTPUTS) and ins["parity"]["dtype"] == "int64"
            assert ins["image"]["shape"] == ["batch", 8, 8, 1] and outs["logits"]["shape"] == ["batch", 10]
        else:
            assert {t["name"] for t in a["outputs"]} == set(OUTPUTS)      # signature names
            assert ins["image"]["shape"] == [1, 8, 8, 1]
        if key == "int8.tflite":
            assert ins["image"]["dtype"] == "int8" and ins["image"]["scale"] > 0
            assert all(t["dtype"] == "int8" for t in a["outputs"])
        fid = {o["name"]: o for o in a["fidelity"]["outputs"]}
        assert set(fid) == set(OUTPUTS)
        for name in OUTPUTS:
            o = fid[name]
            if a["precision"] == "fp32":
                assert o["cosine"] > 0.9999 and o["sqnr_db"] > 80, (key, o)
            else:
                assert o["cosine"] > INT8_MIN_COSINE[name] and o["sqnr_db"] > INT8_MIN_SQNR_DB[name], (key, o)
        cls = fid["logits"]
        assert cls["reference_accuracy"] >= 0.9                              # the trained model is a real one
        assert abs(cls["accuracy"] - cls["reference_accuracy"]) <= (0.0025 if a["precision"] == "fp32" else 0.02)
        assert cls["top1_agreement"] >= (0.9975 if a["precision"] == "fp32" else 0.98)
        assert fid["ink"]["accuracy"] is None and fid["ink"]["top1_agreement"] is None    # not class scores
        # on a ~230..430 output (INT8 measured: mean 1.1, max 28 -- one digit of 400)
        assert fid["ink"]["mean_abs"] < (0.01 if a["precision"] == "fp32" else 4.0), (key, fid["ink"])
        assert fid["ink"]["max_abs"] < (0.01 if a["precision"] == "fp32" else 50.0), (key, fid["ink"])


def test_host_fidelity_matches_an_independent_computation(env):
    """int8.onnx with onnxruntime and int8.tflite with LiteRT, run here by hand on the held-out samples
    compress chose, against keras model.predict: the manifest's per-output numbers."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from edgecompress.compress import CALIB_SAMPLES, EVAL_SAMPLES
    from edgecompress.data import load_data
    from edgecompress.models import load_model

    rc, out, _ = env["compress"]
    doc = json.loads(out)
    _, held = load_data(env["data"], load_model(env["model"])).split(CALIB_SAMPLES, EVAL_SAMPLES)
    image = np.concatenate(list(held.inputs["image"]))                   # (400, 8, 8, 1)
    parity = np.concatenate(list(held.inputs["parity"]))                 # (400, 1) int64
    assert image.shape == (400, 8, 8, 1) and parity.dtype == np.int64
    ref = dict(zip(OUTPUTS, env["keras"].predict({"image": image, "parity": parity}, verbose=0)))
    assert ref["ink"].min() > 150 and np.abs(ref["logits"]).max() < 60          # very different ranges
    folder = env["root"] / "out" / "keras-io"
    sess = ort.InferenceSession(str(folder / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    got_onnx = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": image, "parity": parity})))
    runner = Interpreter(model_path=str(folder / "model.int8.tflite")).get_signature_runner()
    qin, qout = runner.get_input_details(), runner.get_output_details()
    scale, zero = qin["image"]["quantization"]
    got_tfl = {n: [] for n in OUTPUTS}
    for i in range(len(image)):
        q = np.clip(np.round(image[i:i + 1] / scale + zero), -128, 127).astype(np.int8)
        res = runner(image=q, parity=parity[i:i + 1].astype(qin["parity"]["dtype"]))
        for n in OUTPUTS:
            s, z = qout[n]["quantization"]
            got_tfl[n].append((res[n].astype(np.float32) - z) * s)
    got_tfl = {n: np.concatenate(v) for n, v in got_tfl.items()}
    arts = {f"{a['precision']}.{a['format']}": a for a in doc["artifacts"]}
    for key, got in (("int8.onnx", got_onnx), ("int8.tflite", got_tfl)):
        fid = {o["name"]: o for o in arts[key]["fidelity"]["outputs"]}
        for n in OUTPUTS:
            assert got[n].shape == ref[n].shape
            assert abs(_cosine(got[n], ref[n]) - fid[n]["cosine"]) < 1e-5, (key, n)
            assert abs(float(np.abs(got[n] - ref[n]).max()) - fid[n]["max_abs"]) < 1e-3 * max(1, fid[n]["max_abs"])
        labels = held.y
        assert abs(float((got["logits"].argmax(1) == labels).mean()) - fid["logits"]["accuracy"]) < 1e-9
        assert abs(float((ref["logits"].argmax(1) == labels).mean()) - fid["logits"]["reference_accuracy"]) < 1e-9


def test_run_and_bench_on_local_per_output(env):
    root = env["root"]
    rc, out, err = cli("run", env["model"], "--target", "local", "--targets", env["targets"], "--data", env["data"],
                       "--out", root / "run-out", "--db", root / "results.db", "--cache", root / "cache", "--json",
                       *QUICK)
    assert rc == 0, err[-3000:]
    results = json.loads(out)["targets"]["local"]["results"]
    assert sorted(f"{r['artifact']['precision']}.{r['artifact']['format']}" for r in results) == \
        sorted(f"{p}.{f}" for f, p in ARTIFACTS)
    for r in results:
        key = f"{r['artifact']['precision']}.{r['artifact']['format']}"
        assert r["status"] == "ok", (key, r["error"])
        assert r["latency_ms"]["p50"] > 0
        fid = r["fidelity"]
        assert fid["samples"] == 40
        dev = {o["name"]: o for o in fid["outputs"]}
        assert set(dev) == set(OUTPUTS), key
        for name in OUTPUTS:
            floor = 0.9999 if r["artifact"]["precision"] == "fp32" else INT8_MIN_COSINE[name]
            assert dev[name]["cosine"] > floor, (key, dev[name])
        assert dev["logits"]["accuracy"] >= 0.9 and dev["logits"]["top1_agreement"] >= 0.95
    rc, out, err = cli("bench", root / "run-out" / "keras-io", "--target", "local", "--targets", env["targets"],
                       "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--db", root / "results.db", "--json")
    assert rc == 0, err[-3000:]
    benched = json.loads(out)
    assert len(benched) == len(ARTIFACTS)
    for r in benched:
        assert r["status"] == "ok" and r["latency_ms"]["p50"] > 0, r.get("error")
        ins = {t["name"]: t for t in r["inputs"]}
        assert ins["parity"]["dtype"] == "int64" and ins["image"]["dtype"] in ("float32", "int8")
        assert {t["name"] for t in r["output_tensors"]} == set(OUTPUTS)


@pytest.mark.parametrize("case", ["float parity", "no parity key"])
def test_bad_data_for_one_input_names_it(env, tmp_path, case):
    d = dict(np.load(env["data"]))
    if case == "float parity":
        d["parity"] = d["parity"].astype(np.float32)
    else:
        d["category"] = d.pop("parity")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **d)
    rc, out, err = cli("compress", env["model"], "-p", env["profile"], "--data", bad, "--out", tmp_path / "out")
    assert rc == 2 and out == ""
    assert "input 'parity'" in err, err[-2000:]
    if case == "float parity":
        assert "int64" in err and "float32" in err
    else:
        assert "category" in err and "parity [None, 1] int64" in err
    assert not (tmp_path / "out" / "keras-io" / "manifest.json").exists()


NOISE = ("cuda", "onednn", "tf_enable_onednn_opts", "absl", "cpu_feature_guard", "this tensorflow binary is optimized",
         "xnnpack", "fully_quantize", "i0000", "w0000")


def test_compress_keras_in_a_fresh_process_prints_no_framework_noise(env, tmp_path):
    """TF reads its settings only before it is imported: a real `python -m edgecompress` process."""
    from edgecompress.quiet import ENV

    profile = write_profile(tmp_path / "noise.yaml", "noise", [("onnx", "fp32"), ("tflite", "int8")],
                            runtimes=["onnxruntime", "tflite"])
    base = {k: v for k, v in os.environ.items() if k not in ENV}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    args = [sys.executable, "-m", "edgecompress", "compress", str(env["model"]), "-p", str(profile), "--data",
            str(env["data"]), "--cache", str(tmp_path / "cache")]     # a cache of its own: every converter runs
    proc = subprocess.run([*args, "--out", str(tmp_path / "quiet")], env=base, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    low = proc.stderr.lower()
    assert not [m for m in NOISE if m in low], proc.stderr
    lines = proc.stderr.splitlines()
    assert all(ln.startswith("[") for ln in lines), proc.stderr         # only our own progress lines
    assert any("[noise] fp32.onnx" in ln for ln in lines) and any("keras-tflite-int8: done" in ln for ln in lines)
    assert "model.int8.tflite" in proc.stdout and "ok" in proc.stdout
    verbose = subprocess.run([sys.executable, "-m", "edgecompress", "-v", *args[3:], "--out", str(tmp_path / "v"),
                              "--json"], env=base, capture_output=True, text=True, timeout=600)
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert [a["status"] for a in json.loads(verbose.stdout)["artifacts"]] == ["ok", "ok"]
    assert "[noise] fp32.onnx" in verbose.stderr


def test_dict_inputs_and_outputs_keep_their_keys(tmp_path):
    """A model called with a dict and giving a dict: every artifact names its tensors by those keys
    (Keras's own ``output_names`` are the layers' names there)."""
    import keras

    image, parity, y, ink = _digits()
    keras.utils.set_random_seed(1)
    pixels = keras.Input((64,), name="pixels")
    odd = keras.Input((1,), dtype="int32", name="odd")
    z = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()(
        [pixels, keras.layers.Flatten()(keras.layers.Embedding(2, 4)(odd))]))
    model = keras.Model({"pixels": pixels, "odd": odd},
                        {"digit": keras.layers.Dense(10)(z), "ink": keras.layers.Rescaling(100.0)(keras.layers.Dense(1)(z))})
    model.compile(keras.optimizers.Adam(0.01), loss_weights={"digit": 1.0, "ink": 1e-3},
                  loss={"digit": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "ink": "mse"})
    flat = image.reshape(len(image), 64)
    model.fit({"pixels": flat[:TRAIN], "odd": parity[:TRAIN].astype(np.int32)}, {"digit": y[:TRAIN], "ink": ink[:TRAIN]},
              epochs=15, batch_size=64, verbose=0)
    assert set(model.output_names) != {"digit", "ink"}          # what the keys fix
    path, data = tmp_path / "dict.keras", tmp_path / "dict.npz"
    model.save(path)
    np.savez(data, pixels=flat[TRAIN:], odd=parity[TRAIN:].astype(np.int32), y=y[TRAIN:])
    profile = write_profile(tmp_path / "dict.yaml", "dict", [("onnx", "fp32"), ("tflite", "int8")],
                            runtimes=["onnxruntime", "tflite"])
    rc, out, err = cli("compress", path, "-p", profile, "--data", data, "--out", tmp_path / "out", "--json")
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    assert sorted(t["name"] for t in doc["model"]["outputs"]) == ["digit", "ink"]
    for a in doc["artifacts"]:
        assert a["status"] == "ok", a["error"]
        assert sorted(t["name"] for t in a["outputs"]) == ["digit", "ink"]            # the file's own names
        assert sorted(t["name"] for t in a["inputs"]) == ["odd", "pixels"]
        fid = {o["name"]: o for o in a["fidelity"]["outputs"]}
        floor = 0.9999 if a["precision"] == "fp32" else 0.995
        assert fid["digit"]["cosine"] > floor and fid["ink"]["cosine"] > floor, fid
        assert fid["digit"]["reference_accuracy"] >= 0.9
        assert abs(fid["digit"]["accuracy"] - fid["digit"]["reference_accuracy"]) <= 0.02


def test_saved_model_folder_with_two_inputs(env, tmp_path):
    """The same model as a TensorFlow SavedModel folder: inputs and outputs by its signature's names."""
    saved = tmp_path / "saved"
    env["keras"].export(str(saved), verbose=False)
    profile = write_profile(tmp_path / "sm.yaml", "sm", [("onnx", "fp32"), ("tflite", "int8")],
                            runtimes=["onnxruntime", "tflite"])
    rc, out, err = cli("compress", saved, "-p", profile, "--data", env["data"], "--out", tmp_path / "out", "--json")
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    assert [(t["name"], t["dtype"]) for t in doc["model"]["inputs"]] == [("image", "float32"), ("parity", "int64")]
    names = [t["name"] for t in doc["model"]["outputs"]]
    assert names == ["output_0", "output_1"]                    # Keras's export names them so
    for a in doc["artifacts"]:
        assert a["status"] == "ok", a["error"]
        fid = {o["name"]: o for o in a["fidelity"]["outputs"]}
        floor = {"output_0": 0.9999, "output_1": 0.9999} if a["precision"] == "fp32" else \
            {"output_0": INT8_MIN_COSINE["logits"], "output_1": INT8_MIN_COSINE["ink"]}
        assert all(fid[n]["cosine"] > floor[n] for n in names), fid
        assert {t["model_name"] for t in a["inputs"]} == {"image", "parity"}
        assert next(t for t in a["inputs"] if t["model_name"] == "parity")["dtype"] in ("int32", "int64")
