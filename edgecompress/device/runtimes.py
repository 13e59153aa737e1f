"""Load a .tflite or .onnx artifact with whichever runtime the device has; adapt inputs.

TFLite: ``ai_edge_litert`` -> ``tflite_runtime`` -> ``tensorflow.lite`` (last, heavy).
ONNX: ``onnxruntime`` (CPU provider). numpy is imported here (not by ``facts``).

Tensors keep their declared dims (``full_shape``, None where dynamic) and, for TFLite, the
signature's names (onnx2tf and Keras name the model's tensors there, not in the tensor names).
Feeding by name, layout, (de)quantization and output mapping live in :mod:`.execute`.
"""
from __future__ import annotations

import importlib
import os
import time
from importlib import metadata
from typing import Optional

import numpy as np

TFLITE_RUNTIMES = (("ai-edge-litert", "ai_edge_litert.interpreter"),
                   ("tflite-runtime", "tflite_runtime.interpreter"),
                   ("tensorflow", "tensorflow.lite"))
ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
             "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


class RuntimeMissing(Exception):
    """No runtime for this artifact's format is installed on the device."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


class Tensor:
    def __init__(self, name: str, shape, dtype, scale: float = 0.0, zero_point: int = 0, index: int = 0,
                 signature=None, tensor_name: str = ""):
        self.name = name
        self.tensor_name = tensor_name or name
        sig = list(signature) if signature is not None else list(shape)
        #: dims as the artifact declares them: None where symbolic / dynamic
        self.full_shape = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else (d if isinstance(d, str) else None)
                           for d in sig]
        self.shape = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else 1 for d in shape]
        self.dtype = np.dtype(dtype)
        self.scale, self.zero_point, self.index = float(scale), int(zero_point), index

    @property
    def quantized(self) -> bool:
        return self.dtype.kind in "iu" and self.scale > 0

    def to_dict(self) -> dict:
        d = {"name": self.name, "shape": [d if d is not None else "?" for d in self.full_shape],
             "dtype": self.dtype.name}
        if self.quantized:
            d.update(scale=self.scale, zero_point=self.zero_point)
        return d


class Model:
    """One loaded artifact. ``invoke()`` is the timed call; ``feed()`` sets inputs."""

    runtime = "?"
    inputs: list[Tensor]
    outputs: list[Tensor]
    layout = "NCHW"

    def feed(self, arrays: list[np.ndarray]) -> None:
        raise NotImplementedError

    def set_shape(self, name: str, dims) -> None:
        """Give a dynamic input the concrete ``dims`` used for random inputs (--input-shape)."""
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def results(self) -> list[np.ndarray]:
        raise NotImplementedError

    def timed_call(self):
        """A zero-argument callable doing exactly one inference on the fed inputs — the bare
        runtime call, so the timing loop adds nothing around it."""
        return self.invoke

    # -- inputs ---------------------------------------------------------------------
    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        out = []
        for t in self.inputs:
            if t.dtype.kind in "iu" and not t.quantized:      # ids, categories: small valid values
                out.append(rng.integers(0, 2, t.shape).astype(t.dtype))
            elif t.dtype.kind in "iu":
                info = np.iinfo(t.dtype)
                out.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, t.shape).astype(t.dtype))
            elif t.dtype.kind == "b":
                out.append(rng.integers(0, 2, t.shape).astype(bool))
            else:
                out.append(rng.random(t.shape, dtype=np.float32).astype(t.dtype))
        return out


class TFLiteModel(Model):
    layout = "NHWC"

    def __init__(self, path: str, threads: int):
        last = None
        for dist, module in TFLITE_RUNTIMES:
            try:
                mod = importlib.import_module(module)
                self.runtime = f"{dist} {_version(dist)}"
                break
            except ImportError as e:
                last = e
        else:
            raise RuntimeMissing(f"no TFLite runtime: install ai-edge-litert (or tflite-runtime); last error: {last}")
        self.interp = mod.Interpreter(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        names = _signature_names(self.interp)
        self.inputs = [_tfl_tensor(d, names) for d in self.interp.get_input_details()]
        self.outputs = [_tfl_tensor(d, names) for d in self.interp.get_output_details()]

    def set_shape(self, name: str, dims) -> None:
        t = next(t for t in self.inputs if t.name == name)
        self.interp.resize_tensor_input(t.index, list(dims))
        self.interp.allocate_tensors()
        t.shape = list(dims)
        t.full_shape = list(dims)
        for o, d in zip(self.outputs, self.interp.get_output_details()):
            o.shape = [int(s) for s in d["shape"]]

    def feed(self, arrays):
        for t, a in zip(self.inputs, arrays):
            self.interp.set_tensor(t.index, a)

    def invoke(self):
        self.interp.invoke()

    def timed_call(self):
        return self.interp.invoke

    def results(self):
        return [self.interp.get_tensor(t.index) for t in self.outputs]


def _signature_names(interp) -> dict:
    """tensor index -> signature name (onnx2tf and Keras name a model's tensors there)."""
    try:
        sigs = interp._get_full_signature_list()
    except Exception:  # noqa: BLE001 - older runtimes: tensor names only
        return {}
    if not sigs:
        return {}
    sig = sigs.get("serving_default") or next(iter(sigs.values()))
    out = {}
    for part in ("inputs", "outputs"):
        for name, index in (sig.get(part) or {}).items():
            out[int(index)] = name
    return out


def _tfl_tensor(d: dict, names: dict) -> Tensor:
    # the allocated shape: onnx2tf leaves -1 in shape_signature for a batch it fixed to 1
    t = Tensor(names.get(d["index"], d["name"]), d["shape"], d["dtype"], *d["quantization"], index=d["index"],
               tensor_name=d["name"])
    sig = [int(s) for s in d.get("shape_signature", d["shape"])]
    if any(s < 0 for s in sig):
        t.resizable = [None if s < 0 else s for s in sig]     # dims resized per input (set_shape)
    return t


class OnnxModel(Model):
    layout = "NCHW"
    batches = True          # a dynamic dim takes any size per call (TFLite's are allocated once)

    def __init__(self, path: str, threads: int):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeMissing(f"no ONNX runtime: install onnxruntime ({e})") from e
        self.runtime = f"onnxruntime {ort.__version__}"
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        self.inputs = [Tensor(i.name, i.shape, ORT_TYPES.get(i.type, np.float32)) for i in self.sess.get_inputs()]
        self.outputs = [Tensor(o.name, o.shape, ORT_TYPES.get(o.type, np.float32)) for o in self.sess.get_outputs()]
        self._feed: dict = {}
        self._out: list = []

    def feed(self, arrays):
        self._feed = {t.name: a for t, a in zip(self.inputs, arrays)}

    def set_shape(self, name: str, dims) -> None:
        t = next(t for t in self.inputs if t.name == name)
        t.shape = list(dims)
        t.full_shape = list(dims)

    def invoke(self):
        self._out = self.sess.run(None, self._feed)

    def timed_call(self):
        import functools

        return functools.partial(self.sess.run, None, self._feed)

    def results(self):
        return self._out


def import_runtime(path: str) -> float:
    """Import the runtime for this artifact (so load time is the model's alone); seconds taken."""
    start = time.perf_counter()
    ext = os.path.splitext(path)[1].lower()
    names = [m for _, m in TFLITE_RUNTIMES] if ext == ".tflite" else ["onnxruntime"]
    for name in names:
        try:
            importlib.import_module(name)
            break
        except ImportError:
            continue
    return time.perf_counter() - start


def load(path: str, threads: int, layout: Optional[str] = None) -> tuple[Model, float]:
    """(model, load seconds) for a .tflite or .onnx file."""
    ext = os.path.splitext(path)[1].lower()
    start = time.perf_counter()
    if ext == ".tflite":
        model: Model = TFLiteModel(path, threads)
    elif ext == ".onnx":
        model = OnnxModel(path, threads)
    else:
        raise ValueError(f"{path}: unknown artifact format {ext!r}; valid: .onnx, .tflite")
    seconds = time.perf_counter() - start
    if layout:
        model.layout = layout
    return model, seconds
