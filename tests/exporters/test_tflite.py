"""TFLite through onnx2tf: RGB inputs convert offline (a converter failure: tests/test_cli_compress.py)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import digits_artifacts as D

RGB = textwrap.dedent('''
    import torch

    INPUT_SHAPE = (1, 3, 32, 32)


    def factory():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
''')


def test_rgb_model_converts_without_network(tmp_path):
    """3-channel 4-D inputs make onnx2tf fetch a sample file from the internet; here (offline) it
    must find ours in its working directory instead."""
    from edgecompress.compress import compress

    (tmp_path / "rgb.py").write_text(RGB)
    x = np.random.default_rng(0).random((60, 3, 32, 32), dtype=np.float32)
    np.save(tmp_path / "rgb.npy", x)
    m = compress(f"{tmp_path}/rgb.py:factory", D.profile_yaml("rgb", [("tflite", "fp32"), ("tflite", "int8")]),
                 tmp_path / "rgb.npy", tmp_path / "out")
    assert [a.status for a in m.artifacts] == ["ok", "ok"], [a.error for a in m.artifacts]
    fp32, int8 = m.artifacts
    assert fp32.inputs[0].shape == [1, 32, 32, 3] and fp32.fidelity.max_abs < 1e-4
    assert int8.inputs[0].dtype == "int8" and int8.fidelity.cosine > 0.99


@pytest.mark.slow
def test_channels_last_onnx_stays_channels_last(tmp_path):
    """An ONNX file that takes NHWC (here: the Keras twin exported to ONNX) is not transposed again."""
    from edgecompress.compress import compress

    keras_onnx = D.compressed("keras").folder / "model.fp32.onnx"
    m = compress(keras_onnx, D.profile_yaml("nhwc", [("tflite", "fp32"), ("tflite", "int8")]),
                 D.data_files()[1], tmp_path / "out")
    assert m.model["layout"] == "NHWC"
    for a in m.artifacts:
        assert a.status == "ok", a.error
        assert a.layout == "NHWC" and a.inputs[0].shape == [1, 28, 28, 1]
        assert a.fidelity.accuracy >= a.fidelity.reference_accuracy - 0.01
