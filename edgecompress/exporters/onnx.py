"""ONNX artifacts: FP32 (conv-BN folded, simplified), FP16, dynamic INT8, static INT8 (QDQ).

* FP32: PyTorch via ``torch.onnx.export(dynamo=True, external_data=False)`` (the legacy
  exporter, opset 17, when dynamo fails — e.g. TorchScript); Keras via Keras 3
  ``model.export(format="onnx")`` (tf2onnx); an ONNX source as given. Then onnxslim
  (constant folding, conv-BN fusion) and node doc strings / metadata are dropped.
* FP16: ``onnxconverter_common.float16`` with float32 inputs and outputs kept.
* dynamic: ``onnxruntime.quantization.quantize_dynamic`` (INT8 weights, activations at run time).
* int8: ``quant_pre_process`` + ``quantize_static`` — QDQ, per-channel, INT8 weights and
  activations, calibrated on the calibration samples with the profile's method.
* Batch: the source's dynamic batch dim is kept, unless the profile fixes it (``batch: N``):
  then, as the last step of each precision, every dim named like the inputs' leading dims
  becomes N (onnxruntime's ``make_dim_param_fixed``).
"""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..cache import tool_versions
from ..errors import ExportError
from .base import Built, ExportContext, Exporter

log = logging.getLogger(__name__)
FP32_FILE = "model.onnx"
_SOURCE_TOOLS = {"torch": ("torch", "onnxscript"), "keras": ("tensorflow", "keras", "tf2onnx"), "onnx": ()}


def fp32_tools(kind: str) -> dict[str, str]:
    return tool_versions(*_SOURCE_TOOLS[kind], "onnx", "onnxslim")


def export_fp32(ctx: ExportContext) -> Path:
    """The cached FP32 ONNX of ``ctx.model`` (shared by every ONNX and onnx2tf artifact)."""
    if "onnx-fp32" in ctx.memo:
        return ctx.memo["onnx-fp32"]
    m = ctx.model
    parts = {**ctx.model_key(), "tools": fp32_tools(m.kind), "opts": {"slim": True, "dynamo": True}}
    folder = ctx.cache.step("onnx-fp32", parts, lambda d: _build_fp32(m, d / FP32_FILE), label=f"({m.kind} -> ONNX)")
    ctx.memo["onnx-fp32"] = folder / FP32_FILE
    return folder / FP32_FILE


def _build_fp32(m, path: Path) -> None:
    import onnx

    if m.kind == "torch":
        _torch_to_onnx(m, path)
        model = onnx.load(str(path))
    elif m.kind == "keras":
        _keras_to_onnx(m, path)
        model = onnx.load(str(path))
    else:
        model = onnx.ModelProto()
        model.CopyFrom(m.obj)
    model = simplify(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def simplify(model):
    """onnxslim (constant folding, conv-BN fusion, dead nodes), then short names and no doc strings."""
    import onnxslim

    with contextlib.redirect_stdout(io.StringIO()):
        model = onnxslim.slim(model)
    model.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    return shorten_names(model)


def shorten_names(model):
    """Rename inner tensors and nodes ``t0, t1, ...`` / ``n0, ...`` (graph inputs and outputs keep theirs).

    Exporters name tensors after framework scopes (``sequential_1/batch_normalization_5/...``);
    in a quantized file, where every tensor gets Q/DQ companions, those names can be a tenth
    of the bytes. Graphs with sub-graphs (If, Loop) are left as they are.
    """
    g = model.graph
    if any(a.type in (5, 10) for n in g.node for a in n.attribute):   # GRAPH / GRAPHS attributes
        return model
    keep = {v.name for v in g.input} | {v.name for v in g.output} | {""}
    new: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        return new.setdefault(name, f"t{len(new)}")

    for t in g.initializer:
        t.name = short(t.name)
    for i, node in enumerate(g.node):
        node.name = f"n{i}"
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]
    for v in g.value_info:
        v.name = short(v.name)
    return model


@contextlib.contextmanager
def _quiet(*loggers: str):
    """Silence converters' chatter (stdout, warnings, INFO/WARNING logs, their native stderr noise:
    edgecompress.quiet); errors still raise."""
    import warnings

    from ..quiet import native_stderr

    saved = [(lg, lg.level) for lg in map(logging.getLogger, ("", *loggers))]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), native_stderr():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def _torch_to_onnx(m, path: Path) -> None:
    import torch

    xs = tuple(torch.zeros(m.concrete_shape(t.name), dtype=getattr(torch, t.dtype)) for t in m.inputs)
    names = dict(input_names=[t.name for t in m.inputs], output_names=[t.name for t in m.outputs])
    try:
        if isinstance(m.obj, torch.jit.ScriptModule):
            raise TypeError("TorchScript modules need the legacy exporter")
        with _quiet("torch.onnx"):
            torch.onnx.export(m.obj, xs, str(path), dynamo=True, external_data=False, **names)
        return
    except Exception as e:
        log.info("dynamo ONNX export failed (%s); using the legacy exporter", e)
    try:
        with _quiet("torch.onnx"):
            torch.onnx.export(m.obj, xs, str(path), dynamo=False, opset_version=17, do_constant_folding=True,
                              **names)
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed with both exporters: {type(e).__name__}: {e}") from e


def _keras_to_onnx(m, path: Path) -> None:
    """Keras 3 ``model.export(format="onnx")`` (tf2onnx) with the inputs by name in the model's own
    structure (one tensor, a list, or a dict); the graph's outputs then take the model's output names
    (tf2onnx calls them ``Identity:0``, ... in the order of the model's outputs) and the inputs' and
    outputs' dynamic leading dims are called ``batch``."""
    import onnx
    import tensorflow as tf

    specs = {t.name: tf.TensorSpec([d if isinstance(d, int) else None for d in t.shape], getattr(tf, t.dtype),
                                   name=t.name) for t in m.inputs}
    if isinstance(getattr(m.obj, "_inputs_struct", None), dict):     # named by its keys (models._keras_specs)
        sig = [specs]
    elif len(specs) > 1:
        sig = [list(specs.values())]
    else:
        sig = list(specs.values())
    with _quiet("tensorflow", "tf2onnx"):
        m.obj.export(str(path), format="onnx", input_signature=sig, verbose=False)
    model = onnx.load(str(path))
    graph_outs = list(model.graph.output)
    if len(graph_outs) != len(m.outputs):
        raise ExportError(f"the ONNX export has {len(graph_outs)} outputs, the Keras model {len(m.outputs)}")
    rename = {o.name: t.name for o, t in zip(graph_outs, m.outputs)}
    for node in model.graph.node:
        node.output[:] = [rename.get(x, x) for x in node.output]
        node.input[:] = [rename.get(x, x) for x in node.input]
    for o in graph_outs:
        o.name = rename[o.name]
    batch = {v.type.tensor_type.shape.dim[0].dim_param for v in [*model.graph.input, *graph_outs]
             if v.type.tensor_type.shape.dim and v.type.tensor_type.shape.dim[0].dim_param}
    for v in [*model.graph.input, *graph_outs, *model.graph.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in batch:
                d.dim_param = "batch"
    onnx.save(model, str(path))


QDQ_MIN_OPSET = 13


def quantizable(ctx: ExportContext, fp32: Path) -> tuple[Path, Optional[dict]]:
    """The FP32 ONNX at opset >= 13 (onnx's version converter, cached) and what was converted."""
    import onnx

    model = onnx.load(str(fp32), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset >= QDQ_MIN_OPSET:
        return fp32, None
    info = {"source": opset, "converted_to": QDQ_MIN_OPSET}
    parts = {**ctx.model_key(), "tools": tool_versions("onnx"), "to": QDQ_MIN_OPSET}

    def build(d: Path) -> None:
        from onnx import version_converter

        try:
            converted = version_converter.convert_version(model, QDQ_MIN_OPSET)
            onnx.checker.check_model(converted)
        except Exception as e:
            raise ExportError(f"the model is at ONNX opset {opset}; per-channel QDQ quantization needs opset >= "
                              f"{QDQ_MIN_OPSET} and onnx's version converter could not convert it "
                              f"({type(e).__name__}: {str(e)[:300]}); re-export the model at opset >= "
                              f"{QDQ_MIN_OPSET} (e.g. torch.onnx.export(..., opset_version=17))") from e
        onnx.save(converted, str(d / FP32_FILE))

    folder = ctx.cache.step("onnx-opset13", parts, build, label=f"(opset {opset} -> {QDQ_MIN_OPSET})")
    return folder / FP32_FILE, info


def float_ops(path: Path) -> list[str]:
    """Op types of a quantized model that compute in float (no DequantizeLinear feeds them)."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    dq = {o for n in g.node if n.op_type in ("DequantizeLinear",) for o in n.output}
    skip = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Shape", "Reshape", "Flatten",
            "Squeeze", "Unsqueeze", "Transpose", "Concat", "Gather", "Slice", "Cast", "Constant", "Identity"}
    out = set()
    for n in g.node:
        if n.op_type in skip or n.op_type.startswith(("QLinear", "MatMulInteger", "ConvInteger")):
            continue
        if n.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"):
            continue
        if not any(i in dq for i in n.input):
            out.add(n.op_type)
    return sorted(out)


def batch_dims(ctx: ExportContext, fp32: Path) -> set:
    """The dim names of the inputs' leading dims that ``ctx.batch`` fixes (ExportError if one is fixed otherwise)."""
    import onnx

    names, fixed = set(), {}
    for t in onnx.load(str(fp32), load_external_data=False).graph.input:
        dims = t.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_param"):
            names.add(dims[0].dim_param)
        elif dims and dims[0].HasField("dim_value"):
            fixed[t.name] = dims[0].dim_value
    wrong = {k: v for k, v in fixed.items() if v != ctx.batch}
    if wrong:
        raise ExportError(f"the profile fixes batch {ctx.batch}, but the model fixes the batch dim of "
                          + ", ".join(f"{k} at {v}" for k, v in wrong.items())
                          + "; export the model with a dynamic batch dim (e.g. torch.onnx.export(..., "
                          "dynamic_axes={INPUT: {0: 'batch'}})) or drop the profile's batch:")
    return names


def with_batch(ctx: ExportContext, built: Built, names: set) -> Built:
    """``built`` with the dims ``names`` fixed at ``ctx.batch`` (after quantization, which calibrates
    one sample at a time), cached by the file's content."""
    import hashlib

    import onnx

    if not names:
        built.notes.append(f"batch {ctx.batch} (the model's own)")
        return built
    parts = {"of": hashlib.sha256(built.path.read_bytes()).hexdigest(), "batch": ctx.batch, "dims": sorted(names),
             "tools": tool_versions("onnx", "onnxruntime")}

    def build(folder: Path) -> None:
        from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

        model = onnx.load(str(built.path))
        for name in sorted(names):
            make_dim_param_fixed(model.graph, name, ctx.batch)
        onnx.checker.check_model(model)
        onnx.save(model, str(folder / built.path.name))

    folder = ctx.cache.step("onnx-batch", parts, build, label=f"(batch {ctx.batch})")
    built.path = folder / built.path.name
    built.notes.append(f"batch fixed at {ctx.batch} (the profile's batch:; the source's dim "
                       f"{', '.join(sorted(names))} is dynamic)")
    return built


class OnnxExporter(Exporter):
    name = "onnx"

    def export(self, ctx: ExportContext, spec) -> Built:
        fp32 = export_fp32(ctx)
        names = batch_dims(ctx, fp32) if ctx.batch else None     # a source that cannot take it fails first
        built = self._export(ctx, spec, fp32)
        return with_batch(ctx, built, names) if ctx.batch else built

    def _export(self, ctx: ExportContext, spec, fp32: Path) -> Built:
        tools = fp32_tools(ctx.model.kind)
        if spec.precision == "fp32":
            return Built(fp32, ctx.model.layout, tools)
        tools = {**tools, **tool_versions("onnxruntime", "onnxconverter-common")}
        parts = {**ctx.model_key(), "tools": tools, "precision": spec.precision}
        calibration = None
        quant = {}
        if spec.precision == "int8":
            calibration = spec.calibration
            parts.update(calibration=calibration, data=ctx.calib_key())
            quant = spec.quant_settings() if hasattr(spec, "quant_settings") else {}
            if quant:                 # only non-default settings enter the key: old cache entries stay valid
                parts["quant"] = quant
        name = f"model.{spec.precision}.onnx"
        src, opset = (quantizable(ctx, fp32) if spec.precision in ("int8", "dynamic") else (fp32, None))
        build = {"fp16": _fp16, "dynamic": _dynamic,
                 "int8": lambda src, dst: _static_int8(ctx, src, dst, calibration, quant)}
        folder = ctx.cache.step(f"onnx-{spec.precision}", parts, lambda d: build[spec.precision](src, d / name))
        built = Built(folder / name, ctx.model.layout, tools, calibration, opset=opset)
        if opset:
            built.notes.append(f"converted from ONNX opset {opset['source']} to {opset['converted_to']} "
                               f"(onnx version converter) before quantization")
        if spec.precision in ("int8", "dynamic"):
            built.float_ops = float_ops(built.path)
            ints = [t.name for t in ctx.model.inputs if not t.dtype.startswith("float")]
            if ints:
                built.notes.append(f"integer input(s) {', '.join(ints)} are not quantized")
        return built


def _fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    with _quiet():      # it warns for every weight too small for fp16 (those become 0 or the fp16 minimum)
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    # the model's own Cast(int -> float), e.g. of an attention mask, keeps to=FLOAT while its output is
    # now typed float16, and the file no longer loads: make those casts give float16 (the converter's
    # own input/output casts, and casts giving a graph output, stay as they are)
    outs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type == "Cast" and not set(node.output) & outs and "_cast" not in node.name:
            for a in node.attribute:
                if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                    a.i = onnx.TensorProto.FLOAT16
    onnx.save(model, str(dst))


def _dynamic(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name("preprocessed.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    with _quiet():
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8)
    pre.unlink()


#: ORT's settings per method; entropy gets more histogram bins than quantized bins, since with
#: ORT's defaults (128 and 128) its search has one candidate and it equals min-max
CALIBRATION = {"minmax": ("MinMax", {}),
               "entropy": ("Entropy", {"num_bins": 1024, "num_quantized_bins": 128}),
               "percentile": ("Percentile", {"num_bins": 2048, "percentile": 99.999})}


def calibrate(ctx: ExportContext, fp32: Path, method: str) -> Path:
    """Cached step: the pre-processed FP32 model and its activation ranges (``ranges.json``)."""
    parts = {**ctx.model_key(), "tools": {**fp32_tools(ctx.model.kind), **tool_versions("onnxruntime")},
             "method": method, "settings": CALIBRATION[method][1], "outputs": "minmax", "data": ctx.calib_key()}
    return ctx.cache.step("onnx-calibration", parts, lambda d: _calibrate(ctx, fp32, method, d), label=method)


def _calibrate(ctx: ExportContext, fp32: Path, method: str, folder: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    samples = ctx.calib_samples()
    n = max(len(v) for v in samples.values())

    class Reader(CalibrationDataReader):
        """One sample (a whole tensor per input, by name, its own dtype) at a time."""

        def __init__(self):
            self._it = iter(range(n))

        def get_next(self):
            i = next(self._it, None)
            if i is None:
                return None
            return {k: np.ascontiguousarray(v[i if len(v) > 1 else 0]) for k, v in samples.items()}

    pre = folder / "preprocessed.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)

    def ranges(ort_name: str, settings: dict):
        with _quiet():
            cal = create_calibrator(pre, None, str(folder / "augmented.onnx"),
                                    calibrate_method=getattr(CalibrationMethod, ort_name), extra_options=settings)
            cal.collect_data(Reader())
            data = cal.compute_data()
        (folder / "augmented.onnx").unlink(missing_ok=True)
        return data

    found = ranges(*CALIBRATION[method])
    if method != "minmax":
        # the model's outputs keep their full range: clipping logits to a KL/percentile range
        # changes which class wins (seen: entropy cost 20 points of accuracy on the digits CNN)
        import onnx

        full = ranges(*CALIBRATION["minmax"])
        for out in onnx.load(str(pre), load_external_data=False).graph.output:
            if out.name in found and out.name in full:
                found[out.name] = full[out.name]
    save_tensors_data(found, folder / "ranges.json")


_QTYPE = {"int8": "QInt8", "uint8": "QUInt8"}


def _static_int8(ctx: ExportContext, src: Path, dst: Path, method: str, quant: dict | None = None) -> None:
    """Static INT8; ``quant``: non-default settings (per_channel, activation_type, weight_type,
    quant_format qdq|qoperator, keep_float: node names of the pre-processed model left in float)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    q = quant or {}
    cal = calibrate(ctx, src, method)
    with _quiet():
        quantize_static(str(cal / "preprocessed.onnx"), str(dst), None,
                        quant_format=QuantFormat.QOperator if q.get("quant_format") == "qoperator" else QuantFormat.QDQ,
                        per_channel=q.get("per_channel", True),
                        activation_type=getattr(QuantType, _QTYPE[q.get("activation_type", "int8")]),
                        weight_type=getattr(QuantType, _QTYPE[q.get("weight_type", "int8")]),
                        nodes_to_exclude=list(q.get("keep_float") or []) or None,
                        calibrate_method=getattr(CalibrationMethod, CALIBRATION[method][0]),
                        calibration_cache_path=str(cal / "ranges.json"))
