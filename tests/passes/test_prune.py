"""Pruning on the digits CNN trained on real MNIST: structured (Torch-Pruning), unstructured
(torch.nn.utils.prune, global and local) and Keras tfmot pruning with a polynomial schedule."""
from __future__ import annotations

import pytest

from edgecompress.errors import PassError
from edgecompress.passes import apply_passes


def test_structured_half_channels_cuts_macs_and_finetune_recovers(torch_model, torch_accuracy, digits_sets):
    train, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "prune", "method": "structured", "amount": 0.5,
                                              "epochs": 5, "lr": 0.01}], test, train_data=train)
    m = rep["measured"]
    assert m["macs_after"] <= 0.6 * m["macs_before"]                 # >= 40 % fewer MACs
    assert m["params_after"] < 0.5 * m["params_before"]
    assert m["ignored_layers"] == ["13"]                              # the classifier keeps its 10 outputs
    assert out.predict(test.x[:4]).shape == (4, 10)
    assert m["accuracy_pruned"] < m["accuracy_after"]                 # fine-tuning recovered accuracy ...
    assert m["accuracy_after"] >= torch_accuracy - 0.02               # ... to within 2 points
    assert m["accuracy_before"] == pytest.approx(torch_accuracy)
    assert m["size_after"]["dense_bytes"] < 0.5 * m["size_before"]["dense_bytes"]
    assert out.sha256 != torch_model.sha256
    assert torch_model.obj[0].out_channels == 16                      # the input model is untouched


def test_structured_to_a_macs_target(torch_model, digits_sets):
    _, test = digits_sets
    _, (rep,) = apply_passes(torch_model, [{"pass": "prune", "method": "structured", "macs_target": 0.6,
                                            "epochs": 0}], test)
    m = rep["measured"]
    assert m["macs_after"] <= 0.6 * m["macs_before"]
    assert m["macs_after"] > 0.3 * m["macs_before"]                   # stops near the target, not far below
    assert m["finetune"]["skipped"] == "epochs is 0"


def test_global_unstructured_reaches_sparsity_and_gzip_shrinks(torch_model, torch_accuracy, digits_sets):
    train, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "prune", "method": "global", "amount": 0.8,
                                              "epochs": 2}], test, train_data=train.subset(slice(0, 1500)))
    m = rep["measured"]
    assert m["sparsity"]["overall"] == pytest.approx(0.8, abs=0.005)
    assert len(set(m["sparsity"]["layers"].values())) > 1            # global: layers differ
    weights = [mod.weight.detach().numpy() for mod in out.obj.modules() if hasattr(mod, "weight")
               and mod.weight is not None and mod.weight.dim() > 1]
    assert sum((w == 0).sum() for w in weights) / sum(w.size for w in weights) == pytest.approx(0.8, abs=0.005)
    assert not any(hasattr(mod, "weight_orig") for mod in out.obj.modules())   # made permanent
    assert m["size_after"]["dense_bytes"] == m["size_before"]["dense_bytes"]   # dense file: same size
    assert m["size_after"]["gzip_bytes"] < 0.5 * m["size_before"]["gzip_bytes"]
    assert m["accuracy_after"] >= torch_accuracy - 0.03


def test_local_prunes_every_layer_alike(torch_model, digits_sets):
    from edgecompress.data import Dataset

    unlabelled = Dataset(digits_sets[1].x[:100], None, "x.npy", "as-is")
    _, (rep,) = apply_passes(torch_model, [{"pass": "prune", "method": "local", "amount": 0.5}], unlabelled)
    layers = rep["measured"]["sparsity"]["layers"]
    assert all(v == pytest.approx(0.5, abs=0.01) for v in layers.values()), layers
    assert rep["measured"]["finetune"]["skipped"] == "no labelled data"


def test_unlabelled_data_with_requested_finetuning_is_an_error(torch_model, digits_sets):
    from edgecompress.data import Dataset

    unlabelled = Dataset(digits_sets[1].x[:50], None, "x.npy", "as-is")
    with pytest.raises(PassError, match="labelled training data"):
        apply_passes(torch_model, [{"pass": "prune", "method": "global", "amount": 0.5, "epochs": 2}], unlabelled)


def test_ignore_names_a_missing_layer(torch_model):
    with pytest.raises(PassError, match="no module named.*weight layers: 0, 4, 8, 13"):
        apply_passes(torch_model, [{"pass": "prune", "method": "structured", "amount": 0.3,
                                    "ignore": ["fc"], "epochs": 0}], None)


def test_keras_polynomial_schedule_reaches_sparsity_after_strip(tfk_model, tfk_digits, digits_sets_nhwc):
    acc = tfk_digits[1]
    train, test = digits_sets_nhwc
    out, (rep,) = apply_passes(tfk_model, [{"pass": "prune", "method": "local", "amount": 0.6,
                                                     "schedule": "polynomial", "epochs": 2}],
                               test, train_data=train)
    m = rep["measured"]
    layers = {l.name: l for l in out.obj.layers}
    assert not any("prune" in type(l).__name__.lower() for l in layers.values())   # stripped
    for name, s in m["sparsity"]["layers"].items():
        kernel = layers[name].get_weights()[0]
        assert (kernel == 0).mean() == pytest.approx(0.6, abs=0.01), name
    assert m["size_after"]["gzip_bytes"] < 0.75 * m["size_before"]["gzip_bytes"]
    assert m["accuracy_after"] >= acc - 0.05


def test_keras_global_gives_layers_different_targets(tfk_model, digits_sets_nhwc):
    train, test = digits_sets_nhwc
    _, (rep,) = apply_passes(tfk_model, [{"pass": "prune", "method": "global", "amount": 0.7,
                                                   "schedule": "constant", "epochs": 1}], test, train_data=train)
    m = rep["measured"]
    assert m["sparsity"]["overall"] == pytest.approx(0.7, abs=0.01)
    assert len({round(v, 2) for v in m["target_sparsity"].values()}) > 1


def test_keras_pruning_without_labels_is_an_error(tfk_model):
    with pytest.raises(PassError, match="needs labelled training data"):
        apply_passes(tfk_model, [{"pass": "prune", "method": "local", "amount": 0.5}], None)
