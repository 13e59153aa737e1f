"""Exporters: a loaded model -> one artifact file per (format, precision).

``CAPABILITIES`` is the one table of what can be built from which source kind, and by which
exporter; ``check_supported`` checks a profile against it before any work starts. Exporters
are registered lazily in ``EXPORTERS`` (``"module:Class"``), so TensorFlow / onnx2tf load
only when a TFLite artifact is built.

Every source kind gets both formats: PyTorch and Keras models are exported to ONNX first
(FP32, conv-BN folded, simplified); TFLite comes from TFLiteConverter for Keras models and
from onnx2tf (via that FP32 ONNX) for PyTorch and ONNX models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Type

from ..errors import EdgeCompressError, ProfileError
from ..registry import Registry


@dataclass(frozen=True)
class Capability:
    source: str       # torch | onnx | keras
    format: str       # onnx | tflite
    precision: str    # fp32 | fp16 | dynamic | int8
    exporter: str     # name in EXPORTERS
    layout: str       # "source" (the model's own input layout) or a fixed one


_ALL_PRECISIONS = ("fp32", "fp16", "dynamic", "int8")

CAPABILITIES: tuple[Capability, ...] = tuple(
    [Capability(src, "onnx", p, "onnx", "source") for src in ("torch", "onnx", "keras") for p in _ALL_PRECISIONS]
    + [Capability(src, "tflite", p, "onnx2tf", "NHWC") for src in ("torch", "onnx") for p in _ALL_PRECISIONS]
    + [Capability("keras", "tflite", p, "keras-tflite", "source") for p in _ALL_PRECISIONS]
)

EXPORTERS: Registry = Registry("exporter")
EXPORTERS.register("onnx", "edgecompress.exporters.onnx:OnnxExporter")
EXPORTERS.register("onnx2tf", "edgecompress.exporters.tflite:Onnx2TfExporter")
EXPORTERS.register("keras-tflite", "edgecompress.exporters.tflite:KerasTfliteExporter")


def get_exporter(name: str):
    """A fresh instance of the exporter registered as ``name``."""
    return EXPORTERS.get(name)()


def find_capability(source: str, fmt: str, precision: str) -> Capability | None:
    for cap in CAPABILITIES:
        if (cap.source, cap.format, cap.precision) == (source, fmt, precision):
            return cap
    return None


def check_supported(source: str, specs: Iterable, where: str,
                    error: Type[EdgeCompressError] = ProfileError) -> list[Capability]:
    """The capability for each artifact spec; ``error`` listing what IS supported if one is not."""
    caps, bad = [], []
    for spec in specs:
        cap = find_capability(source, spec.format, spec.precision)
        (caps if cap else bad).append(cap or spec)
    if bad:
        valid = sorted(f"{c.precision}.{c.format}" for c in CAPABILITIES if c.source == source)
        names = ", ".join(f"{s.precision}.{s.format}" for s in bad)
        raise error(f"{where}: cannot build {names} from a {source} model; "
                    f"supported for {source}: {', '.join(valid)}")
    return caps
