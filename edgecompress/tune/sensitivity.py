"""Per-layer quantization sensitivity: quantize one layer at a time, rank by output SQNR.

For the static INT8 ONNX artifact: every Conv / Gemm / MatMul node of the pre-processed FP32
model (the one ``quantize_static`` sees, with the calibration step's ranges) is quantized
alone (``nodes_to_quantize=[node]``: its weights and the activations around it), run with
ONNX Runtime on held-out samples, and its output compared with the FP32 output:
``SQNR = 10 log10(sum(y^2) / sum((y - y_q)^2))`` over all samples. The lowest SQNR is the
most sensitive layer; ``tune`` keeps the k most sensitive ones in float (``keep_float``).
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

QUANTIZABLE = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def _run(path: Path, samples: dict, model) -> np.ndarray:
    """Every output of the ONNX file at ``path`` on the named samples, flattened into one vector
    (the executor the device uses; one thread)."""
    from ..exporters.execute import ArtifactRunner

    runner = ArtifactRunner(path, layout=model.layout, source_layout=model.layout,
                            model_inputs=[asdict(t) for t in model.inputs])
    raw = runner.run_raw(samples)
    return np.concatenate([np.asarray(raw[k], np.float64).ravel() for k in sorted(raw)])


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((ref - test) ** 2))
    signal = float(np.sum(ref ** 2))
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


def layer_sensitivity(calibrated: Path, samples: dict, model, *, method: str = "minmax",
                      per_channel: bool = True) -> list[dict]:
    """[{node, op_type, sqnr_db}] sorted most sensitive first; ``calibrated``: the calibration step's
    folder; ``samples``: {input name: (N, *tensor)} of ``model`` (a ``models.LoadedModel``)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from ..exporters.onnx import CALIBRATION, _quiet

    pre = Path(calibrated) / "preprocessed.onnx"
    nodes = [(n.name, n.op_type) for n in onnx.load(str(pre), load_external_data=False).graph.node
             if n.op_type in QUANTIZABLE]
    ref = _run(pre, samples, model)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, op in nodes:
            dst = Path(tmp) / "one.onnx"
            with _quiet():
                quantize_static(str(pre), str(dst), None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                nodes_to_quantize=[name],
                                calibrate_method=getattr(CalibrationMethod, CALIBRATION[method][0]),
                                calibration_cache_path=str(Path(calibrated) / "ranges.json"))
            out.append({"node": name, "op_type": op, "sqnr_db": sqnr_db(ref, _run(dst, samples, model))})
    out.sort(key=lambda d: d["sqnr_db"])
    return out
