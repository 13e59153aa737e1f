"""Load a trained model (PyTorch factory / TorchScript / ONNX / Keras) and describe its inputs.

``load_model(spec)`` accepts what the command line's MODEL accepts:

* ``model.onnx``                                  -> kind ``"onnx"``  (``onnx.ModelProto``)
* ``model.keras`` / ``model.h5`` / a SavedModel folder -> kind ``"keras"`` (``keras.Model``)
* ``model.pt`` / ``model.pth`` (TorchScript)      -> kind ``"torch"`` (``torch.jit.ScriptModule``)
* ``file.py:factory`` / ``package.module:factory`` -> kind ``"torch"`` (``nn.Module``; ``weights=``
  a ``state_dict`` file is loaded into it)

Input names, shapes and dtypes come from the model; PyTorch models do not record them, so
``input_shape`` is required there (a factory's module may declare ``INPUT_SHAPE`` instead).
A symbolic batch dimension becomes 1 (device artifacts use a fixed batch of one).
Every failure raises :class:`~edgecompress.errors.ModelError` naming the path and what is valid.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import ModelError
from .manifest import TensorSpec, sha256_file

KINDS = ("torch", "onnx", "keras")
VALID_SPECS = ("file.onnx, file.keras, file.h5, a SavedModel folder, file.pt (TorchScript), "
               "file.py:factory or package.module:factory (with optional --weights)")
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
                11: "float64"}


@dataclass
class LoadedModel:
    """A model in its own framework, ready to export. ``predict`` gives the FP32 reference."""

    kind: str
    obj: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    layout: str
    source: str
    sha256: str
    _session: Any = field(default=None, repr=False, compare=False)

    def predict(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        """First output for ``x`` (float32, shape (N, ...) in ``layout``), computed in batches."""
        x = np.asarray(x, dtype=np.float32)
        outs = [self._predict_batch(x[i:i + batch]) for i in range(0, len(x), batch)]
        return np.concatenate(outs).astype(np.float32)

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "torch":
            import torch

            with torch.no_grad():
                out = self.obj(torch.from_numpy(np.ascontiguousarray(x)))
            return _first(out).detach().cpu().numpy()
        if self.kind == "onnx":
            if self._session is None:
                import onnxruntime as ort

                self._session = ort.InferenceSession(self.obj.SerializeToString(),
                                                     providers=["CPUExecutionProvider"])
            name = self.inputs[0].name
            if self.inputs[0].shape[0] == 1 and len(x) != 1:   # fixed batch of one
                return np.concatenate([self._session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
            return self._session.run(None, {name: x})[0]
        out = self.obj(x, training=False)
        return np.asarray(_first(out))

    @property
    def input_shape(self) -> tuple:
        return tuple(self.inputs[0].shape)


def _first(out):
    if isinstance(out, dict):
        out = out[sorted(out)[0]]
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out


def load_model(spec: str | Path, *, weights: str | Path | None = None,
               input_shape: Optional[tuple] = None) -> LoadedModel:
    """Load ``spec`` (see the module docstring); raise ModelError naming what was wrong."""
    spec = str(spec)
    if input_shape is not None:
        input_shape = _check_shape(input_shape)
    path = Path(spec)
    if not path.exists() and ":" in spec and not spec.endswith(":"):
        return _load_factory(spec, weights, input_shape)
    if weights is not None:
        raise ModelError(f"--weights is only for a file.py:factory model, not for {spec}")
    if not path.exists():
        raise ModelError(f"{spec}: model not found; MODEL is one of: {VALID_SPECS}")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _load_saved_model(path, input_shape)
        raise ModelError(f"{spec}: is a folder without saved_model.pb; MODEL is one of: {VALID_SPECS}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(path, input_shape)
    if suffix in (".keras", ".h5", ".hdf5"):
        return _load_keras(path, input_shape)
    if suffix in (".pt", ".pth", ".torchscript"):
        return _load_torchscript(path, input_shape)
    raise ModelError(f"{spec}: unknown model file type {suffix or '(no suffix)'!r}; MODEL is one of: {VALID_SPECS}")


def parse_shape(text: str) -> tuple:
    """``"1,3,224,224"`` -> ``(1, 3, 224, 224)``; ModelError for anything else."""
    try:
        return _check_shape(tuple(int(p) for p in str(text).split(",")))
    except ValueError:
        raise ModelError(f"--input-shape {text!r}: expected positive integers separated by commas, "
                         f"e.g. 1,3,224,224") from None


def _check_shape(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s <= 0 for s in shape):
        raise ModelError(f"input shape {shape}: expected positive integers, e.g. 1,3,224,224")
    return shape


def _guess_layout(shape) -> str:
    """NCHW unless a 4-D input clearly has channels last (1/3/4 last, more in dim 1)."""
    if len(shape) == 4 and shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        return "NHWC"
    return "NCHW"


# --- ONNX -----------------------------------------------------------------------------------------

def _load_onnx(path: Path, input_shape) -> LoadedModel:
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        raise ModelError(f"{path}: not a valid ONNX model ({type(e).__name__}: {str(e)[:300]})") from e
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    if not graph_inputs:
        raise ModelError(f"{path}: the ONNX graph has no inputs")
    inputs = []
    for k, vi in enumerate(graph_inputs):
        inputs.append(_onnx_spec(vi, path, input_shape if k == 0 else None))
    outputs = [_onnx_spec(vi, path, None, strict=False) for vi in model.graph.output]
    # make the batch dimension concrete so every exporter sees a fixed batch of one
    for vi, spec in zip(graph_inputs, inputs):
        for d, n in zip(vi.type.tensor_type.shape.dim, spec.shape):
            d.dim_value = n
    return LoadedModel("onnx", model, inputs, outputs, _guess_layout(inputs[0].shape), str(path),
                       sha256_file(path))


def _onnx_spec(vi, path, input_shape, strict=True) -> TensorSpec:
    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if input_shape is not None:
        if len(input_shape) != len(dims) or any(d not in (None, s) for d, s in zip(dims, input_shape)):
            raise ModelError(f"{path}: --input-shape {list(input_shape)} does not fit input "
                             f"{vi.name!r} of shape {dims}")
        dims = list(input_shape)
    if dims and dims[0] is None:
        dims[0] = 1
    if strict and any(d is None for d in dims):
        raise ModelError(f"{path}: input {vi.name!r} has symbolic dimensions {dims}; "
                         f"give a fixed shape with --input-shape, e.g. 1,3,224,224")
    return TensorSpec(vi.name, dims, _ONNX_DTYPES.get(t.elem_type, str(t.elem_type)))


# --- Keras ----------------------------------------------------------------------------------------

def _keras_specs(model, input_shape):
    ins = []
    for k, t in enumerate(model.inputs):
        shape = [1 if s is None else int(s) for s in t.shape]
        if k == 0 and input_shape is not None:
            if len(input_shape) != len(shape):
                raise ModelError(f"--input-shape {list(input_shape)} does not fit Keras input shape {list(t.shape)}")
            shape = list(input_shape)
        name = getattr(t, "name", None) or f"input_{k}"
        ins.append(TensorSpec(str(name).split(":")[0], shape, str(getattr(t.dtype, "name", t.dtype))))
    outs = [TensorSpec(str(getattr(t, "name", f"output_{k}")).split(":")[0],
                       [1 if s is None else int(s) for s in t.shape]) for k, t in enumerate(model.outputs)]
    return ins, outs


def _load_keras(path: Path, input_shape) -> LoadedModel:
    try:
        import keras

        model = keras.models.load_model(str(path), compile=False)
    except Exception as e:
        raise ModelError(f"{path}: cannot load as a Keras model ({type(e).__name__}: {str(e)[:300]})") from e
    if not getattr(model, "inputs", None):
        raise ModelError(f"{path}: the Keras model has no defined inputs (build it with keras.Input)")
    ins, outs = _keras_specs(model, input_shape)
    model(np.zeros(ins[0].shape, np.float32), training=False)   # an .h5 model must be called once
    return LoadedModel("keras", model, ins, outs, "NHWC" if len(ins[0].shape) == 4 else "NCHW",
                       str(path), sha256_file(path))


def _load_saved_model(path: Path, input_shape) -> LoadedModel:
    """A TensorFlow SavedModel folder, wrapped as a Keras model around its serving signature."""
    try:
        import keras
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        sig = loaded.signatures["serving_default"]
        (spec,) = sig.structured_input_signature[1].values()
        shape = [1 if s is None else int(s) for s in spec.shape]
        if input_shape is not None:
            shape = list(input_shape)
        inp = keras.Input(shape=shape[1:], batch_size=1, name=spec.name or "x")
        out = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
        model = keras.Model(inp, _first(out))
    except Exception as e:
        raise ModelError(f"{path}: cannot load as a SavedModel with a single-input 'serving_default' "
                         f"signature ({type(e).__name__}: {str(e)[:300]})") from e
    ins, outs = _keras_specs(model, input_shape)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + sha256_file(f).encode())
    return LoadedModel("keras", model, ins, outs, _guess_layout(ins[0].shape), str(path), h.hexdigest())


# --- PyTorch --------------------------------------------------------------------------------------

def _torch_specs(model, shape, where) -> tuple[list, list]:
    import torch

    try:
        with torch.no_grad():
            out = _first(model(torch.zeros(shape)))
    except Exception as e:
        raise ModelError(f"{where}: running the model on an input of shape {list(shape)} failed "
                         f"({type(e).__name__}: {str(e)[:300]}); check --input-shape") from e
    return [TensorSpec("x", list(shape))], [TensorSpec("output", list(out.shape))]


def _need_shape(where: str):
    raise ModelError(f"{where}: a PyTorch model does not record its input shape; "
                     f"give it with --input-shape, e.g. --input-shape 1,3,224,224")


def _load_torchscript(path: Path, input_shape) -> LoadedModel:
    import torch

    try:
        model = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise ModelError(f"{path}: not a TorchScript model ({type(e).__name__}: {str(e)[:200]}); a plain "
                         f"state_dict needs its code: use file.py:factory --weights {path}") from e
    if input_shape is None:
        _need_shape(str(path))
    ins, outs = _torch_specs(model, input_shape, path)
    return LoadedModel("torch", model, ins, outs, _guess_layout(input_shape), str(path), sha256_file(path))


def _load_factory(spec: str, weights, input_shape) -> LoadedModel:
    import torch

    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        file = Path(target)
        if not file.exists():
            raise ModelError(f"{spec}: file {target} not found; MODEL is one of: {VALID_SPECS}")
        mod_name = f"_edgecompress_model_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]}"
        try:
            mspec = importlib.util.spec_from_file_location(mod_name, file)
            module = importlib.util.module_from_spec(mspec)
            sys.modules[mod_name] = module
            mspec.loader.exec_module(module)
        except Exception as e:
            raise ModelError(f"{spec}: importing {target} failed ({type(e).__name__}: {e})") from e
    else:
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise ModelError(f"{spec}: cannot import module {target!r} ({type(e).__name__}: {e}); "
                             f"MODEL is one of: {VALID_SPECS}") from e
        file = Path(getattr(module, "__file__", "") or "")
    fn = getattr(module, attr, None)
    if not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        from .registry import suggest

        raise ModelError(f"{spec}: {target} has no callable {attr!r}{suggest(attr, names)}")
    try:
        model = fn()
    except Exception as e:
        raise ModelError(f"{spec}: calling {attr}() failed ({type(e).__name__}: {e})") from e
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{spec}: {attr}() returned {type(model).__name__}, expected a torch.nn.Module")
    h = hashlib.sha256(f"{attr}\0".encode())
    if file.is_file():
        h.update(file.read_bytes())
    if weights is not None:
        _load_weights(model, Path(weights), spec)
        h.update(b"\0weights\0" + sha256_file(weights).encode())
    model.eval()
    if input_shape is None:
        declared = getattr(module, "INPUT_SHAPE", None)
        input_shape = _check_shape(declared) if declared else _need_shape(spec)
    ins, outs = _torch_specs(model, input_shape, spec)
    return LoadedModel("torch", model, ins, outs, _guess_layout(input_shape), spec, h.hexdigest())


def _load_weights(model, path: Path, spec: str) -> None:
    import torch

    if not path.exists():
        raise ModelError(f"--weights {path}: file not found")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"--weights {path}: not a readable PyTorch state_dict "
                         f"({type(e).__name__}: {str(e)[:200]})") from e
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ModelError(f"--weights {path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"--weights {path} does not fit {spec}: {str(e)[:500]}") from e
