"""Every pass composes with INT8 export: ``compress`` with passes for a profile with INT8
artifacts; each artifact runs (onnxruntime / LiteRT) on compress's held-out digits with
accuracy near the float accuracy the pass measured on the same samples. (Keras QAT to
full-integer TFLite: tests/passes/test_qat_specs.py.)"""
from __future__ import annotations

import pytest

from edgecompress.compress import compress

PROFILE = """name: {name}
hardware: {{arch: x86_64, cores: 2, memory_mb: 4096, peak_gflops: 50, memory_gbps: 10}}
power: {{idle_w: 5, load_w: 15}}
runtimes: [onnxruntime, tflite]
artifacts: [{artifacts}]
passes: {passes}
quality: {{max_accuracy_drop: 15}}   # 600 fine-tuning samples leave a pruned model 1-8 points below its source
"""


def _profile(tmp_path, name, artifacts, passes="[]"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(PROFILE.format(name=name, artifacts=artifacts, passes=passes))
    return path


@pytest.fixture(scope="module")
def digits_data(mnist):
    """1,000 held-out digits: compress evaluates on 400 of them, the passes train on the other 600."""
    from edgecompress.data import Dataset

    return Dataset(mnist[2], mnist[3], "mnist test", "as-is")


PASS_CASES = [
    pytest.param([{"pass": "fuse"}], id="fuse"),
    pytest.param([{"pass": "prune", "method": "structured", "amount": 0.5, "epochs": 5, "lr": 0.01}],
                 id="prune-structured"),
    pytest.param([{"pass": "prune", "method": "global", "amount": 0.7, "epochs": 4}], id="prune-global"),
    pytest.param([{"pass": "distill", "shrink": 0.5, "epochs": 6}], id="distill"),
    pytest.param([{"pass": "cluster", "clusters": 16, "epochs": 0}], id="cluster"),
]


@pytest.mark.parametrize("passes", PASS_CASES)
def test_torch_pass_then_onnx_int8(passes, torch_model, digits_data, tmp_path):
    profile = _profile(tmp_path, "int8-host", "{format: onnx, precision: int8}")
    m = compress(torch_model, profile, digits_data, tmp_path / "out", passes=passes)
    (art,) = m.artifacts
    assert art.status == "ok", (art.error, art.fidelity.reasons)
    (rep,) = art.passes
    assert rep["pass"] == passes[0]["pass"] and rep["settings"]["pass"] == passes[0]["pass"]
    assert rep["data"]["eval_samples"] == art.fidelity.samples == 400
    float_acc = rep["measured"]["accuracy_after"]
    assert art.fidelity.accuracy >= float_acc - 0.03, (art.fidelity.accuracy, float_acc)
    assert (tmp_path / "out" / "int8-host" / art.path).stat().st_size == art.size_bytes


def test_merge_from_a_profile_then_onnx_int8(torch_model, digits_checkpoints, digits_data, tmp_path):
    passes = f"[{{pass: merge, checkpoints: [{', '.join(digits_checkpoints)}]}}]"
    profile = _profile(tmp_path, "soup", "{format: onnx, precision: int8}", passes)
    m = compress(torch_model, profile, digits_data, tmp_path / "out")
    (art,) = m.artifacts
    assert art.status == "ok", art.error
    assert art.passes[0]["pass"] == "merge"
    assert art.fidelity.accuracy >= art.passes[0]["measured"]["accuracy_after"] - 0.02
