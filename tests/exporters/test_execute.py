"""Running artifacts: layout transposes and int8 quantization of inputs and outputs."""
from __future__ import annotations

import numpy as np

import digits_artifacts as D
from edgecompress.exporters.execute import ArtifactRunner, dequantize, quantize


def test_quantize_round_trip_within_half_a_step():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    q = quantize(x, 1 / 127, 0, np.int8)
    assert q.dtype == np.int8 and q.min() == -127 and q.max() == 127
    assert np.abs(dequantize(q, 1 / 127, 0) - x).max() <= 0.5 / 127 + 1e-7
    assert quantize(np.array([5.0]), 0.01, 3, np.int8)[0] == 127          # saturates


def test_nchw_inputs_reach_an_nhwc_int8_tflite_file_correctly():
    m = D.compressed("factory")
    _, _, (_, _, xte, yte) = D.torch_model()
    x = xte[-100:]
    path = m.folder / "model.int8.tflite"
    from_nchw = ArtifactRunner(path, layout="NHWC", source_layout="NCHW").run(x)
    from_nhwc = ArtifactRunner(path, layout="NHWC", source_layout="NHWC").run(x.transpose(0, 2, 3, 1))
    assert np.array_equal(from_nchw, from_nhwc)
    assert from_nchw.dtype == np.float32 and from_nchw.shape == (100, 10)
    assert (from_nchw.argmax(1) == yte[-100:]).mean() > 0.94
