"""Per-operator profiles on the device, asserted against the model's own node list (ONNX, TFLite)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_helpers import cli
from tests.device.conftest import run_runner
from edgecompress.device import ops


@pytest.fixture(scope="module")
def int8_onnx(digits_artifacts, tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    x = digits_artifacts["x"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"x": x[i:i + 1]} for i in range(32))

        def get_next(self):
            return next(self.it, None)

    out = tmp_path_factory.mktemp("ops") / "model.int8.onnx"
    quantize_static(str(digits_artifacts["onnx"]), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    return out


def _nodes(path):
    import onnx

    return [(n.name, n.op_type, list(n.output), list(n.input)) for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_onnx_profile_accounts_for_every_node_of_the_model(digits_artifacts, int8_onnx, device_python, runner_pyz,
                                                           which):
    path = digits_artifacts["onnx"] if which == "fp32" else int8_onnx
    nodes = _nodes(path)
    feed = {"x": digits_artifacts["x"][:1]}
    # without ORT's graph optimizations the profile is exactly the model's node list, op types included
    plain = ops.profile_onnx(str(path), feed, runs=5, optimization="none")
    assert sorted((o["name"], o["op_type"]) for o in plain) == sorted((n[0], n[1]) for n in nodes)
    # (ORT's trace has whole microseconds: a reshape can take "0")
    assert all(o["where"] == "CPUExecutionProvider" and o["ms"] >= 0 for o in plain)
    assert sum(o["ms"] for o in plain) > 0
    # as benchmarked (optimized), on the device through the runner: every model node ran in an
    # executed node or was fused/folded into one, and every executed node comes from the model
    doc, _ = run_runner(device_python, runner_pyz, "bench", "--model", path, "--runs", "20", "--warmup", "2",
                        "--min-seconds", "0", "--energy", "none", "--ops")
    assert doc["status"] == "ok" and doc["ops_source"] == "onnxruntime profiler"
    executed = doc["ops"]
    assert executed and all(set(o) >= {"name", "op_type", "ms", "where"} for o in executed)
    cover = ops.onnx_coverage(nodes, executed)
    assert set(cover) == {n[0] for n in nodes}
    ran = {v for v in cover.values() if v}
    assert all(cover[n[0]] for n in nodes if n[1] != "DequantizeLinear"), cover   # all ran (DQ of weights
    folded = [n[0] for n in nodes if cover[n[0]] is None]                        # may be constant-folded)
    assert all(n.endswith("_DequantizeLinear") for n in folded), folded
    model_names = {n[0] for n in nodes} | {t for n in nodes for t in n[2]}
    unexplained = [o["name"] for o in executed if o["name"] not in ran and not any(
        o["name"].startswith(m) for m in model_names)]
    assert all(o["op_type"] in ("Transpose", "ReorderInput", "ReorderOutput") for o in executed
               if o["name"] in unexplained), unexplained   # layout changes ORT inserts itself
    # the profiler's own overhead inflates kernel times: the shares are what to read
    assert sum(o["ms"] for o in executed) > 0
    assert [o["ms"] for o in executed] == sorted((o["ms"] for o in executed), reverse=True)
    if which == "fp32":                                     # the three convolutions ran, and were timed
        assert sum(o["ms"] for o in executed if o["op_type"] == "Conv") > 0


@pytest.fixture(scope="module")
def prelu_tflite(tmp_path_factory):
    """A small PReLU CNN (as face-landmark models are) as FP32 and full-INT8 TFLite."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = inp
    for w in (8, 16, 16):
        x = keras.layers.Conv2D(w, 3, padding="same")(x)
        x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    folder = tmp_path_factory.mktemp("prelu")
    paths = {}
    for precision in ("fp32", "int8"):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if precision == "int8":
            rng = np.random.default_rng(0)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([rng.random((1, 32, 32, 3), dtype=np.float32)] for _ in range(20))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int8
        paths[precision] = folder / f"model.{precision}.tflite"
        paths[precision].write_bytes(conv.convert())
    return paths


def _model_ops(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return [(d["index"], d["op_name"]) for d in it._get_ops_details()]


def test_tflite_profile_places_every_op_in_a_partition_or_outside_xnnpack(prelu_tflite, device_python, runner_pyz):
    docs = {}
    for precision, path in prelu_tflite.items():
        doc, _ = run_runner(device_python, runner_pyz, "bench", "--model", path, "--runs", "30", "--warmup", "3",
                            "--min-seconds", "0", "--energy", "none", "--ops")
        assert doc["status"] == "ok", doc["error"]
        own = _model_ops(path)                            # the model's own node list, no delegate
        assert [(int(o["name"].split(":")[1]), o["op_type"]) for o in doc["ops"]] == own
        docs[precision] = doc
    fp32, int8 = docs["fp32"], docs["int8"]
    assert fp32["delegate_partitions"] == 1 and fp32["outside_delegate"] == 0
    assert all(o["where"] == "XNNPACK partition 0" for o in fp32["ops"])
    prelu = [o for o in int8["ops"] if o["op_type"] == "PRELU"]
    assert len(prelu) == 3 and all(o["where"] == "TFLite CPU (outside XNNPACK)" for o in prelu)
    assert int8["outside_delegate"] == 3 and int8["delegate_partitions"] == 4      # split by each PRELU
    # the diagnosis line built from the profile
    from edgecompress.report.diagnose import summarize_ops

    assert summarize_ops(int8["ops"], "tflite") == "4 delegate partitions; PRELU x3 outside XNNPACK"


def test_bench_ops_cli_prints_top_ops_and_keeps_them_in_json(digits_artifacts, tmp_path):
    rc, out, err = cli("bench", digits_artifacts["onnx"], "--target", "local", "--runs", "20", "--min-seconds", "0",
                       "--ops", "--json")
    assert rc == 0, err[-2000:]
    (res,) = json.loads(out)
    assert res["ops"] and res["ops"][0]["ms"] >= res["ops"][-1]["ms"]
    rc, out, _ = cli("bench", digits_artifacts["onnx"], "--target", "local", "--runs", "20", "--min-seconds", "0",
                     "--ops")
    assert rc == 0 and "top ops of fp32.onnx" in out and "CPUExecutionProvider" in out and "p50 95% CI" in out
