"""Run an artifact (``.onnx`` in ONNX Runtime, ``.tflite`` in the LiteRT interpreter) on samples.

Inputs are float32 in the SOURCE model's layout (NCHW for PyTorch/ONNX sources). For an
artifact whose ``layout`` differs (onnx2tf's TFLite files take NHWC), 4-D inputs are
transposed; 4-D outputs are transposed back when that is what makes them match
``expect_shape``. Integer inputs are quantized and integer outputs dequantized with the
scale / zero-point stored in the model. Fixed-batch models run sample by sample.

Only numpy and the runtime are imported (lazily), so any part of the project can reuse it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8",
               "tensor(uint8)": "uint8", "tensor(int64)": "int64", "tensor(int32)": "int32"}


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * scale


def _transpose(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    if x.ndim != 4 or src == dst:
        return x
    return x.transpose(_TO_NHWC if dst == "NHWC" else _TO_NCHW)


class ArtifactRunner:
    """``ArtifactRunner(path, layout="NHWC", source_layout="NCHW").run(x) -> first output``."""

    def __init__(self, path: str | Path, *, layout: str = "NCHW", source_layout: str = "NCHW",
                 threads: int = 1):
        self.path = Path(path)
        self.layout, self.source_layout = layout, source_layout
        if self.path.suffix == ".onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            inp = self._sess.get_inputs()[0]
            self._in_name = inp.name
            self._batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
            self._in_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        elif self.path.suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interp = Interpreter(model_path=str(self.path), num_threads=threads)
            self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()[0]
            self._out = self._interp.get_output_details()[0]
            self._batch = int(self._in["shape"][0])
        else:
            raise ValueError(f"{path}: unknown artifact type (expected .onnx or .tflite)")

    def run(self, x: np.ndarray, expect_shape: Optional[tuple] = None) -> np.ndarray:
        x = _transpose(np.asarray(x, dtype=np.float32), self.source_layout, self.layout)
        step = self._batch or len(x)
        outs = [self._run_batch(x[i:i + step]) for i in range(0, len(x), step)]
        out = np.concatenate(outs).astype(np.float32)
        if expect_shape is not None and tuple(out.shape) != tuple(expect_shape) and out.ndim == 4:
            back = _transpose(out, self.layout, self.source_layout)
            if tuple(back.shape) == tuple(expect_shape):
                return back
        return out

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        if hasattr(self, "_sess"):
            return self._sess.run(None, {self._in_name: x.astype(self._in_dtype)})[0]
        it, i, o = self._interp, self._in, self._out
        if i["dtype"] in (np.int8, np.uint8, np.int16):
            scale, zp = i["quantization"]
            x = quantize(x, scale, zp, i["dtype"])
        else:
            x = x.astype(i["dtype"])
        it.set_tensor(i["index"], np.ascontiguousarray(x))
        it.invoke()
        y = it.get_tensor(o["index"])
        if o["dtype"] in (np.int8, np.uint8, np.int16):
            scale, zp = o["quantization"]
            y = dequantize(y, scale, zp)
        return y


def run_artifact(path: str | Path, x: np.ndarray, *, layout: str = "NCHW", source_layout: str = "NCHW",
                 expect_shape: Optional[tuple] = None) -> np.ndarray:
    """One-shot :class:`ArtifactRunner`."""
    return ArtifactRunner(path, layout=layout, source_layout=source_layout).run(x, expect_shape)


def describe(runner: ArtifactRunner):
    """(inputs, outputs) of the artifact as ``manifest.TensorSpec`` lists (its own layout and dtypes)."""
    from ..manifest import TensorSpec

    def spec(name, shape, dtype):
        return TensorSpec(str(name), [d if isinstance(d, int) else None for d in list(shape)], str(dtype))

    if hasattr(runner, "_sess"):
        return ([spec(i.name, i.shape, _ORT_DTYPES.get(i.type, i.type)) for i in runner._sess.get_inputs()],
                [spec(o.name, o.shape, _ORT_DTYPES.get(o.type, o.type)) for o in runner._sess.get_outputs()])
    it = runner._interp
    return ([spec(d["name"], [int(s) for s in d["shape"]], np.dtype(d["dtype"]).name) for d in it.get_input_details()],
            [spec(d["name"], [int(s) for s in d["shape"]], np.dtype(d["dtype"]).name) for d in it.get_output_details()])
