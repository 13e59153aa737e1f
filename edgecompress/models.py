"""Load a trained model (PyTorch factory / TorchScript / ONNX / Keras) and describe its inputs.

``load_model(spec)`` accepts what the command line's MODEL accepts:

* ``model.onnx``                                  -> kind ``"onnx"``  (``onnx.ModelProto``)
* ``model.keras`` / ``model.h5`` / a SavedModel folder -> kind ``"keras"`` (``keras.Model``)
* ``model.pt`` / ``model.pth`` (TorchScript)      -> kind ``"torch"`` (``torch.jit.ScriptModule``)
* ``file.py:factory`` / ``package.module:factory`` -> kind ``"torch"`` (``nn.Module``; ``weights=``
  a ``state_dict`` file is loaded into it)

Every input and output is described by name, dtype and shape; symbolic dims are kept by name
(``"batch"``, ``"height"``; None where unnamed). ``--input-shape [NAME=]DIMS`` (``shapes=``)
fixes an input's dims; otherwise they come from ``--data`` (:meth:`LoadedModel.fix_shapes`), and a
dim still unknown where one is needed is an error naming the input and the flag that fixes it.
PyTorch models do not record their inputs, so there ``--input-shape`` is required (a factory's
module may declare ``INPUT_SHAPE``, or ``INPUT_SHAPES = {name: dims}`` and ``INPUT_DTYPES``).
``run(samples)`` gives the reference outputs by name through THE executor's sample loop
(:mod:`edgecompress.device.execute`), the same loop that runs every artifact.
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
from .quiet import import_quietly

KINDS = ("torch", "onnx", "keras")
VALID_SPECS = ("file.onnx, file.keras, file.h5, a SavedModel folder, file.pt (TorchScript), "
               "file.py:factory or package.module:factory (with optional --weights)")
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
                11: "float64"}


@dataclass
class LoadedModel:
    """A model in its own framework, ready to export. ``run`` gives the FP32 reference."""

    kind: str
    obj: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    layout: str
    source: str
    sha256: str
    _session: Any = field(default=None, repr=False, compare=False)
    shapes: dict = field(default_factory=dict)      # input name -> concrete dims (flag or data)
    shape_source: dict = field(default_factory=dict)  # input name -> "--input-shape" | "data"
    opset: Optional[int] = None

    # -- shapes ----------------------------------------------------------------------------
    def concrete_shape(self, name: str, need: str = "this") -> tuple:
        """Concrete dims of input ``name``: fixed ones, else a leading symbolic batch as 1; else ModelError."""
        if name in self.shapes:
            return tuple(self.shapes[name])
        spec = next(t for t in self.inputs if t.name == name)
        dims = list(spec.shape)
        if dims and not isinstance(dims[0], int):
            dims[0] = 1
        if any(not isinstance(d, int) for d in dims):
            example = ",".join(str(d) if isinstance(d, int) else str(d or "N").upper() for d in dims)
            raise ModelError(f"input {name!r} has unknown dims {spec.shape} and {need} needs them: give them with "
                             f"--input-shape {name}={example} (a number for each name), or --data with samples "
                             f"of that input")
        return tuple(dims)

    def fix_shapes(self, samples: dict, source: str = "data") -> None:
        """Take the dims of inputs not fixed by --input-shape from one sample each (said in shape_source)."""
        for t in self.inputs:
            if t.name in samples and t.name not in self.shapes:
                self.shapes[t.name] = tuple(int(d) for d in np.shape(samples[t.name][0]))
                self.shape_source[t.name] = source

    @property
    def input_shape(self) -> tuple:
        return self.concrete_shape(self.inputs[0].name)

    @property
    def batchable(self) -> bool:
        """Whether samples may be stacked on axis 0 (every input's leading dim is not fixed, or torch/keras)."""
        if self.kind == "onnx":
            return all(t.shape and not isinstance(t.shape[0], int) for t in self.inputs)
        return all(t.shape and t.shape[0] in (1, None) or not isinstance(t.shape[0], int) for t in self.inputs)

    # -- running ---------------------------------------------------------------------------
    def call(self, feeds: dict) -> dict:
        """One forward pass: {input name: array} -> {output name: array}."""
        names = [t.name for t in self.inputs]
        if self.kind == "torch":
            import torch

            with torch.no_grad():
                out = self.obj(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
            return self._named([o.detach().cpu().numpy() for o in _as_list(out)])
        if self.kind == "onnx":
            if self._session is None:
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.log_severity_level = 3
                self._session = ort.InferenceSession(self.obj.SerializeToString(), so,
                                                     providers=["CPUExecutionProvider"])
            return dict(zip([o.name for o in self._session.get_outputs()],
                            self._session.run(None, {n: feeds[n] for n in names})))
        out = self.obj(keras_args(self.obj, feeds, names), training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        return self._named([np.asarray(o) for o in _as_list(out)])

    def _named(self, arrays: list) -> dict:
        if len(arrays) != len(self.outputs):
            raise ModelError(f"{self.source}: the model gave {len(arrays)} outputs, {len(self.outputs)} expected")
        return {o.name: a for o, a in zip(self.outputs, arrays)}

    def run(self, samples: dict, feedback: Optional[dict] = None, record: Optional[dict] = None) -> dict:
        """Reference outputs {output name: array over all samples} (see device.execute.run_samples)."""
        from .device.execute import run_samples

        return run_samples(self.call, samples, feedback=feedback, batchable=self.batchable, record=record)

    def predict(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        """First output for ``x`` (N, ...) samples of the only input (old single-I/O convenience)."""
        x = np.asarray(x, dtype=np.float32)
        return np.asarray(self.run({self.inputs[0].name: x[:, None]})[self.outputs[0].name]).astype(np.float32)


def _as_list(out) -> list:
    if isinstance(out, dict):
        return [out[k] for k in out]
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def _first(out):
    if isinstance(out, dict):
        out = out[sorted(out)[0]]
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out


def load_model(spec: str | Path, *, weights: str | Path | None = None, input_shape=None) -> LoadedModel:
    """Load ``spec`` (see the module docstring); raise ModelError naming what was wrong.

    ``input_shape``: dims for the only input (a tuple), or ``{name: dims}`` (``None`` as a name =
    the only input), as ``--input-shape [NAME=]DIMS`` gives them (:func:`parse_shapes`).
    """
    spec = str(spec)
    shapes = _shape_dict(input_shape)
    path = Path(spec)
    if not path.exists() and ":" in spec and not spec.endswith(":"):
        return _apply_shapes(_load_factory(spec, weights, shapes), shapes)
    if weights is not None:
        raise ModelError(f"--weights is only for a file.py:factory model, not for {spec}")
    if not path.exists():
        raise ModelError(f"{spec}: model not found; MODEL is one of: {VALID_SPECS}")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _apply_shapes(_load_saved_model(path, shapes), shapes)
        raise ModelError(f"{spec}: is a folder without saved_model.pb; MODEL is one of: {VALID_SPECS}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _apply_shapes(_load_onnx(path), shapes)
    if suffix in (".keras", ".h5", ".hdf5"):
        return _apply_shapes(_load_keras(path, shapes), shapes)
    if suffix in (".pt", ".pth", ".torchscript"):
        return _apply_shapes(_load_torchscript(path, shapes), shapes)
    raise ModelError(f"{spec}: unknown model file type {suffix or '(no suffix)'!r}; MODEL is one of: {VALID_SPECS}")


def _shape_dict(input_shape) -> dict:
    if input_shape is None:
        return {}
    if isinstance(input_shape, dict):
        return {k: _check_shape(v) for k, v in input_shape.items()}
    return {None: _check_shape(input_shape)}


def parse_shapes(texts) -> dict:
    """``["1,3,224,224"]`` or ``["ids=1,128", "mask=1,128"]`` -> ``{None|name: dims}``; ModelError otherwise."""
    out: dict = {}
    for text in texts or []:
        name, _, dims = str(text).rpartition("=")
        key = name.strip() or None
        if key in out:
            raise ModelError(f"--input-shape {text!r}: {'the unnamed input' if key is None else repr(key)} "
                             f"is given twice")
        out[key] = parse_shape(dims, text)
    if None in out and len(out) > 1:
        raise ModelError("--input-shape: an unnamed shape is only for a single-input model; name every input "
                         "(NAME=DIMS) when there are several")
    return out


def _apply_shapes(model: LoadedModel, shapes: dict) -> LoadedModel:
    names = [t.name for t in model.inputs]
    for key, dims in shapes.items():
        if key is None:
            if len(names) != 1:
                raise ModelError(f"{model.source}: --input-shape {','.join(map(str, dims))} has no name, but the "
                                 f"model has {len(names)} inputs ({', '.join(names)}); write NAME=DIMS, e.g. "
                                 f"--input-shape {names[0]}={','.join(map(str, dims))}")
            key = names[0]
        if key not in names:
            from .registry import suggest

            raise ModelError(f"{model.source}: --input-shape {key}=...: no input {key!r}{suggest(key, names)}; "
                             f"inputs: {', '.join(names)}")
        spec = next(t for t in model.inputs if t.name == key)
        if len(dims) != len(spec.shape) or any(isinstance(d, int) and d != s for d, s in zip(spec.shape, dims)):
            raise ModelError(f"{model.source}: --input-shape {key}={','.join(map(str, dims))} does not fit input "
                             f"{key!r} of shape {spec.shape} (rank {len(spec.shape)}; fixed dims must match)")
        model.shapes[key] = tuple(dims)
        model.shape_source[key] = "--input-shape"
    return model


def parse_shape(text: str, flag: str | None = None) -> tuple:
    """``"1,3,224,224"`` -> ``(1, 3, 224, 224)``; ModelError for anything else."""
    try:
        return _check_shape(tuple(int(p) for p in str(text).split(",")))
    except (ValueError, ModelError):
        raise ModelError(f"--input-shape {flag or text!r}: expected [NAME=]positive integers separated by commas, "
                         f"e.g. 1,3,224,224 or ids=1,128") from None


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

def _load_onnx(path: Path) -> LoadedModel:
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
    inputs = [onnx_spec(vi) for vi in graph_inputs]
    outputs = [onnx_spec(vi) for vi in model.graph.output]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    first = next((t for t in inputs if t.dtype.startswith("float") and len(t.shape) == 4), inputs[0])
    m = LoadedModel("onnx", model, inputs, outputs, _guess_layout(first.shape), str(path), sha256_file(path))
    m.opset = opset
    return m


def onnx_spec(vi) -> TensorSpec:
    """name, dtype, shape of an ONNX value; symbolic dims by their name (None where unnamed)."""
    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return TensorSpec(vi.name, dims, _ONNX_DTYPES.get(t.elem_type, str(t.elem_type)))


# --- Keras ----------------------------------------------------------------------------------------

def _keras_specs(model):
    """Inputs and outputs by the names the model's call takes and gives: the keys where its inputs or
    outputs are a dict, else the input tensors' names and ``output_names``."""
    def dtype(t):
        return str(getattr(t.dtype, "name", t.dtype))

    def named(struct, tensors, names):
        if isinstance(struct, dict):
            by_id = {id(v): k for k, v in struct.items()}
            names = [by_id.get(id(t), n) for t, n in zip(tensors, names)]
        return names

    in_names = named(getattr(model, "_inputs_struct", None), model.inputs,
                     [str(getattr(t, "name", None) or f"input_{k}").split(":")[0] for k, t in enumerate(model.inputs)])
    out_names = list(getattr(model, "output_names", None) or [])
    out_names = named(getattr(model, "_outputs_struct", None), model.outputs,
                      [out_names[k] if k < len(out_names) else str(getattr(t, "name", f"output_{k}")).split(":")[0]
                       for k, t in enumerate(model.outputs)])
    ins = [TensorSpec(n, [None if s is None else int(s) for s in t.shape], dtype(t)) for n, t in zip(in_names,
                                                                                                   model.inputs)]
    outs = [TensorSpec(n, [None if s is None else int(s) for s in t.shape], dtype(t)) for n, t in zip(out_names,
                                                                                                    model.outputs)]
    return ins, outs


def keras_args(model, feeds: dict, names: list):
    """What a Keras model's call takes for ``feeds`` {input name: tensor}: a dict where its inputs are
    a dict, else a list (one tensor for a single input)."""
    if isinstance(getattr(model, "_inputs_struct", None), dict):
        return {n: feeds[n] for n in names}
    xs = [feeds[n] for n in names]
    return xs if len(xs) > 1 else xs[0]


def _load_keras(path: Path, shapes) -> LoadedModel:
    try:
        keras = import_quietly("keras")       # TensorFlow's start-up lines (edgecompress.quiet)
        model = keras.models.load_model(str(path), compile=False)
    except Exception as e:
        raise ModelError(f"{path}: cannot load as a Keras model ({type(e).__name__}: {str(e)[:300]})") from e
    if not getattr(model, "inputs", None):
        raise ModelError(f"{path}: the Keras model has no defined inputs (build it with keras.Input)")
    ins, outs = _keras_specs(model)
    m = LoadedModel("keras", model, ins, outs, "NHWC" if len(ins[0].shape) == 4 else "NCHW",
                    str(path), sha256_file(path))
    _apply_shapes(m, shapes)
    try:     # an .h5 model must be called once
        m.call({t.name: np.zeros(m.concrete_shape(t.name), t.dtype) for t in ins})
    except ModelError:
        pass
    return m


def _load_saved_model(path: Path, shapes) -> LoadedModel:
    """A TensorFlow SavedModel folder, wrapped as a Keras model around its serving signature."""
    try:
        keras = import_quietly("keras")
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        specs = loaded.signatures["serving_default"].structured_input_signature[1]
        if len(specs) == 1:
            (spec,) = specs.values()
            shape = [None if s is None else int(s) for s in spec.shape]
            inp = keras.Input(shape=shape[1:], name=spec.name or "x")
            out = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
            model = keras.Model(inp, _first(out))
        else:                # by the signature's names, in and out (a dict model: models._keras_specs)
            class Signature(keras.layers.TFSMLayer):
                def call(self, inputs, training=False, **kwargs):
                    return self.call_endpoint_fn(**inputs)

            inputs = {name: keras.Input(shape=[None if s is None else int(s) for s in spec.shape][1:],
                                        dtype=spec.dtype.name, name=name) for name, spec in specs.items()}
            model = keras.Model(inputs, Signature(str(path), call_endpoint="serving_default")(inputs))
    except Exception as e:
        raise ModelError(f"{path}: cannot load as a SavedModel with a 'serving_default' signature "
                         f"({type(e).__name__}: {str(e)[:300]})") from e
    ins, outs = _keras_specs(model)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + sha256_file(f).encode())
    return LoadedModel("keras", model, ins, outs, _guess_layout(ins[0].shape), str(path), h.hexdigest())


# --- PyTorch --------------------------------------------------------------------------------------

def _torch_specs(model, shapes: dict, where, dtypes=None) -> tuple[list, list]:
    import torch

    dtypes = dtypes or {}
    if None in shapes:
        shapes = {"x": shapes[None], **{k: v for k, v in shapes.items() if k is not None}}
    feeds = [torch.zeros(tuple(d), dtype=getattr(torch, dtypes.get(n, "float32"))) for n, d in shapes.items()]
    try:
        with torch.no_grad():
            out = _as_list(model(*feeds))
    except Exception as e:
        what = (f"an input of shape {list(next(iter(shapes.values())))}" if len(shapes) == 1 else
                f"inputs {dict((k, list(v)) for k, v in shapes.items())}")
        raise ModelError(f"{where}: running the model on {what} "
                         f"failed ({type(e).__name__}: {str(e)[:300]}); check --input-shape") from e
    ins = [TensorSpec(n, list(d), dtypes.get(n, "float32")) for n, d in shapes.items()]
    names = ["output"] if len(out) == 1 else [f"output_{k}" for k in range(len(out))]
    return ins, [TensorSpec(n, list(o.shape), str(o.dtype).replace("torch.", "")) for n, o in zip(names, out)]


def _need_shape(where: str):
    raise ModelError(f"{where}: a PyTorch model does not record its input shape; "
                     f"give it with --input-shape, e.g. --input-shape 1,3,224,224 (NAME=DIMS for each of "
                     f"several inputs, in the order forward() takes them)")


def _load_torchscript(path: Path, shapes) -> LoadedModel:
    import torch

    try:
        model = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise ModelError(f"{path}: not a TorchScript model ({type(e).__name__}: {str(e)[:200]}); a plain "
                         f"state_dict needs its code: use file.py:factory --weights {path}") from e
    if not shapes:
        _need_shape(str(path))
    ins, outs = _torch_specs(model, shapes, path)
    return LoadedModel("torch", model, ins, outs, _guess_layout(ins[0].shape), str(path), sha256_file(path))


def _load_factory(spec: str, weights, shapes) -> LoadedModel:
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
    if not shapes:
        declared = getattr(module, "INPUT_SHAPES", None)
        if declared:
            shapes = {k: _check_shape(v) for k, v in dict(declared).items()}
        elif getattr(module, "INPUT_SHAPE", None):
            shapes = {None: _check_shape(module.INPUT_SHAPE)}
        else:
            _need_shape(spec)
    ins, outs = _torch_specs(model, shapes, spec, getattr(module, "INPUT_DTYPES", None))
    return LoadedModel("torch", model, ins, outs, _guess_layout(ins[0].shape), spec, h.hexdigest())


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
