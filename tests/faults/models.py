"""ONNX files the fault cases need, built with ``onnx.helper`` and run by the real onnxruntime.

- :func:`dense_onnx`: a dense layer with ``mb`` megabytes of weights — a payload big enough that
  an upload takes a measurable time on a slow link (seeded weights; its outputs are checked
  against the host's onnxruntime, so a corrupted upload would show).
- :func:`hang_onnx`: a ``Loop`` with 2**62 iterations — a model that never returns.
- :func:`oom_onnx`: ``Expand`` of the input to ``gb`` GiB of float32 — a model whose first
  inference needs more memory than a small device has.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def dense_onnx(path: Path, mb: float = 1.0, width: int = 256, seed: int = 0) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    cols = max(1, int(mb * (1 << 20) / 4 / width))
    w = (np.random.default_rng(seed).standard_normal((width, cols)) / np.sqrt(width)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])],
        "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cols])],
        [numpy_helper.from_array(w, "w")])
    return _save(graph, path)


def hang_onnx(path: Path) -> Path:
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Add", ["v_in", "one"], ["v_out"]),
         helper.make_node("Greater", ["v_out", "low"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [1, 1]),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
         helper.make_tensor("low", TensorProto.FLOAT, [], [-1e30])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "hang", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [2 ** 62]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    return _save(graph, path)


def oom_onnx(path: Path, gb: float = 2.0) -> Path:
    from onnx import TensorProto, helper

    n = int(gb * (1 << 30) / 4)
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["big"]),
         helper.make_node("ReduceSum", ["big"], ["y"], keepdims=1)],
        "oom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, n])])
    return _save(graph, path)


def train_softmax(x: np.ndarray, y: np.ndarray, steps: int = 150, lr: float = 0.5, seed: int = 0):
    """Softmax regression trained with plain numpy gradient descent -> (W [784, 10], b [10])."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    w = np.random.default_rng(seed).standard_normal((flat.shape[1], 10)) * 0.01
    b = np.zeros(10)
    onehot = np.eye(10)[y]
    for _ in range(steps):
        z = flat @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(flat)
        w -= lr * flat.T @ g
        b -= lr * g.sum(0)
    return w.astype(np.float32), b.astype(np.float32)


def digits_onnx(path: Path, w: np.ndarray, b: np.ndarray) -> Path:
    """The trained classifier as ONNX: x [1, 1, 28, 28] (NCHW, like the torch digits model) -> logits [1, 10]."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("MatMul", ["f", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["logits"])],
        "digits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return _save(graph, path)
