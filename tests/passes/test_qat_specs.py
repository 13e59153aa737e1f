"""Quantization-aware training to full-integer TFLite (tf_keras digits CNN on real MNIST), and
validation of pass settings (profile and command-line errors name the key path and valid values)."""
from __future__ import annotations

import numpy as np
import pytest

from edgecompress.errors import PassError, ProfileError
from edgecompress.passes import PASSES, apply_passes, validate_pass_specs


def test_qat_exports_to_full_int8_tflite_within_a_few_points(tfk_model, tfk_digits, digits_sets_nhwc):
    from edgecompress.passes.qat import tflite_predict, to_int8_tflite

    train, test = digits_sets_nhwc
    out, (rep,) = apply_passes(tfk_model, [{"pass": "qat", "epochs": 1}], test,
                               train_data=train.subset(slice(0, 2000)))
    assert any("Quantize" in type(l).__name__ for l in out.obj.layers)
    tfl = to_int8_tflite(out.obj, train.x[:100])
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tfl)
    assert it.get_input_details()[0]["dtype"] == np.int8
    assert it.get_output_details()[0]["dtype"] == np.int8
    acc = float((tflite_predict(tfl, test.x[:500]).argmax(1) == test.y[:500]).mean())
    assert acc >= tfk_digits[1] - 0.03, (acc, tfk_digits[1])
    assert rep["measured"]["accuracy_after"] >= tfk_digits[1] - 0.03


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
