"""Quantization-aware training to full-integer TFLite (tf_keras digits CNN on real MNIST), and
validation of pass settings (profile and command-line errors name the key path and valid values)."""
from __future__ import annotations

import pytest

from edgecompress.errors import PassError, ProfileError
from edgecompress.passes import PASSES, apply_passes, validate_pass_specs


def test_qat_exports_to_full_int8_tflite_within_a_few_points(tfk_model, tfk_digits, digits_sets_nhwc, tmp_path):
    """QAT, then compress's full-integer TFLite artifact: int8 in and out, run by LiteRT on 400
    held-out digits, within 3 points of the float model."""
    from edgecompress.compress import compress
    from edgecompress.data import Dataset

    test = digits_sets_nhwc[1]
    profile = tmp_path / "qat.yaml"
    profile.write_text("name: qat\nhardware: {arch: aarch64, cores: 4, memory_mb: 4096, peak_gflops: 24, "
                       "memory_gbps: 4}\npower: {idle_w: 3, load_w: 6}\nruntimes: [tflite]\n"
                       "artifacts: [{format: tflite, precision: int8}]\n")
    m = compress(tfk_model, profile, Dataset(test.x, test.y, "mnist test", "NHWC"), tmp_path / "out",
                 passes=[{"pass": "qat", "epochs": 1}])
    (art,) = m.artifacts
    assert art.status == "ok", art.error
    assert art.inputs[0].dtype == "int8" and art.outputs[0].dtype == "int8"
    (rep,) = art.passes
    assert rep["pass"] == "qat" and rep["data"] == {"train_samples": 600, "eval_samples": 400,
                                                    "data": rep["data"]["data"]}
    assert art.fidelity.accuracy >= tfk_digits[1] - 0.03, (art.fidelity.accuracy, tfk_digits[1])
    assert art.fidelity.accuracy >= rep["measured"]["accuracy_after"] - 0.03


def test_qat_on_torch_is_a_clear_error(torch_model, digits_sets):
    with pytest.raises(PassError, match="'qat' does not support torch models; it works on Keras"):
        apply_passes(torch_model, [{"pass": "qat"}], digits_sets[1])


def test_registry_lists_all_passes_lazily():
    assert PASSES.names() == ["cluster", "distill", "fuse", "merge", "prune", "qat"]


@pytest.mark.parametrize("spec, message", [
    ({"pass": "prune", "method": "structred", "amount": 0.5},
     "passes[0].method: bad value 'structred' (did you mean 'structured'?); valid values: global, local, structured"),
    ({"pass": "prune", "amout": 0.5}, "passes[0].amout: unknown key 'amout' (did you mean 'amount'?)"),
    ({"pass": "prune", "amount": 1.5}, "passes[0].amount: bad value 1.5"),
    ({"pass": "prune", "method": "global", "macs_target": 0.5}, "macs_target works only with method 'structured'"),
    ({"pass": "prune"}, "give 'amount'"),
    ({"pass": "cluster", "clusters": 1}, "passes[0].clusters: bad value 1"),
    ({"pass": "merge"}, "passes[0].checkpoints: required key is missing"),
    ({"pass": "prun", "amount": 0.5}, "passes[0].pass: unknown pass 'prun' (did you mean 'prune'?); valid: cluster"),
])
def test_bad_specs_name_the_key_and_valid_values(spec, message):
    with pytest.raises(PassError) as e:
        validate_pass_specs([spec], "cli")
    assert message in str(e.value)
    assert str(e.value).startswith("cli: passes[0]")


def test_profile_passes_are_validated_on_load(tmp_path):
    from edgecompress.profiles import PROFILES_DIR, load_profile

    text = (PROFILES_DIR / "x86-64-host.yaml").read_text()
    bad = tmp_path / "p.yaml"
    bad.write_text(text.replace("passes: []", "") + "\npasses: [{pass: cluster, clusters: 16, inti: linear}]\n")
    with pytest.raises(ProfileError, match=r"p.yaml: passes\[0\].inti: unknown key 'inti' \(did you mean 'init'\?\)"):
        load_profile(bad)
    good = tmp_path / "g.yaml"
    good.write_text(text.replace("passes: []", "") + "\npasses: [{pass: prune, method: structured, amount: 0.5}]\n")
    assert load_profile(good).passes == [{"pass": "prune", "method": "structured", "amount": 0.5}]


def test_keras3_chain_is_rebuilt_in_tf_keras_with_the_same_outputs(mnist):
    """tfmot needs tf_keras: the Keras 3 digits twin is rebuilt layer by layer, weights copied."""
    import numpy as np

    from edgecompress.examples.digits import keras_model
    from edgecompress.passes import _keras as K

    k3 = keras_model()
    x = mnist[2][:8].transpose(0, 2, 3, 1)
    tfk = K.to_tf_keras(k3)
    assert K.is_tf_keras(tfk) and not K.is_tf_keras(k3)
    np.testing.assert_allclose(np.asarray(tfk(x, training=False)), np.asarray(k3(x, training=False)), atol=1e-5)


def test_keras3_model_stays_keras3_after_pruning_and_exports_to_onnx(mnist, tmp_path):
    """A Keras 3 model is pruned through tf_keras/tfmot and handed back as Keras 3 (same sparsity),
    so compress's Keras -> ONNX export still takes it."""
    from edgecompress.compress import compress
    from edgecompress.data import Dataset
    from edgecompress.examples.digits import keras_model
    from edgecompress.manifest import TensorSpec
    from edgecompress.models import LoadedModel
    from edgecompress.passes import _keras as K

    k3 = keras_model()
    model = LoadedModel("keras", k3, [TensorSpec("x", [1, 28, 28, 1])], [TensorSpec("output", [1, 10])],
                        "NHWC", "digits-k3", "1" * 64)
    x = mnist[2].transpose(0, 2, 3, 1)
    profile = tmp_path / "onnx.yaml"
    profile.write_text("name: onnx32\nhardware: {arch: x86_64, cores: 2, memory_mb: 4096, peak_gflops: 50, "
                       "memory_gbps: 10}\npower: {idle_w: 5, load_w: 15}\nruntimes: [onnxruntime]\n"
                       "artifacts: [{format: onnx, precision: fp32}]\n")
    m = compress(model, profile, Dataset(x, mnist[3], "mnist test", "NHWC"), tmp_path / "out",
                 passes=[{"pass": "prune", "method": "local", "amount": 0.5, "epochs": 1}])
    (art,) = m.artifacts
    assert art.status == "ok", art.error
    assert all(abs(v - 0.5) < 0.01 for v in art.passes[0]["measured"]["sparsity"]["layers"].values())
    assert not K.is_tf_keras(k3)
