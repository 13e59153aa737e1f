"""Conv-BN folding and k-means weight sharing on the digits CNN trained on real MNIST."""
from __future__ import annotations

import numpy as np

from edgecompress.passes import apply_passes
from edgecompress.passes.cluster import kmeans_1d


def test_fuse_folds_every_conv_bn_pair_and_keeps_outputs(torch_model, digits_sets, torch_accuracy):
    import torch.nn as nn

    _, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "fuse"}], test)
    m = rep["measured"]
    assert m["folded"] == [["0", "1"], ["4", "5"], ["8", "9"]]
    assert not any(isinstance(x, nn.BatchNorm2d) for x in out.obj.modules())
    assert m["max_abs_diff"] < 1e-4
    np.testing.assert_allclose(out.predict(test.x[:64]), torch_model.predict(test.x[:64]), atol=1e-4)
    assert m["params_after"] == m["params_before"] - 2 * (16 + 32 + 64)   # BN gamma/beta gone


def test_fuse_on_keras_is_reported_as_done_at_export(tfk_model):
    out, (rep,) = apply_passes(tfk_model, [{"pass": "fuse"}], None)
    assert out is tfk_model and rep["measured"]["folded"] == []
    assert len(rep["measured"]["batchnorm_at_export"]) == 3
    assert "at export" in rep["measured"]["note"]


def test_kmeans_linear_init_finds_the_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([-1.0, -0.2, 0.3, 1.5])
    values = np.concatenate([c + 0.01 * rng.standard_normal(500) for c in centers])
    c, labels = kmeans_1d(values, 4, init="linear")
    np.testing.assert_allclose(c, centers, atol=0.01)
    assert np.array_equal(np.bincount(labels), [500] * 4)


def test_cluster_16_leaves_at_most_16_values_per_layer(torch_model, torch_accuracy, digits_sets):
    train, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "cluster", "clusters": 16, "epochs": 1}], test,
                               train_data=train.subset(slice(0, 2000)))
    m = rep["measured"]
    for name, mod in out.obj.named_modules():
        if hasattr(mod, "weight") and mod.weight is not None and mod.weight.dim() > 1:
            assert len(np.unique(mod.weight.detach().numpy())) <= 16, name      # after fine-tuning too
    assert set(m["distinct_values"]) == {"0", "4", "8", "13"}
    assert m["size_after"]["gzip_bytes"] < 0.4 * m["size_before"]["gzip_bytes"]
    assert m["coded_bytes"] < 0.25 * m["size_before"]["dense_bytes"]
    assert m["accuracy_after"] >= torch_accuracy - 0.02


def test_keras_clustering_with_tfmot(tfk_model, tfk_digits, digits_sets_nhwc):
    _, test = digits_sets_nhwc
    out, (rep,) = apply_passes(tfk_model, [{"pass": "cluster", "clusters": 16, "epochs": 0}], test)
    m = rep["measured"]
    assert m["layers"] and all(v <= 16 for v in m["distinct_values"].values())
    for layer in out.obj.layers:
        if layer.name in m["layers"]:
            assert len(np.unique(layer.get_weights()[0])) <= 16
    assert m["size_after"]["gzip_bytes"] < 0.5 * m["size_before"]["gzip_bytes"]
    assert m["accuracy_after"] >= tfk_digits[1] - 0.03


def test_fuse_on_onnx_lists_what_export_folds(torch_digits, tmp_path):
    """An ONNX source (exported here from the trained digits CNN) is left as is; its BN nodes are named."""
    import torch

    from edgecompress.models import load_model

    path = tmp_path / "digits.onnx"
    torch.onnx.export(torch_digits[0].eval(), (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False,
                      opset_version=17, do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    model = load_model(path)
    out, (rep,) = apply_passes(model, [{"pass": "fuse"}], None)
    assert out is model and len(rep["measured"]["batchnorm_at_export"]) == 3
