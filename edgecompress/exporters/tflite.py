"""TFLite artifacts: FP32, FP16, dynamic-range INT8 and full-integer INT8 (int8 in and out).

* ``onnx2tf`` (PyTorch and ONNX sources): ONE run of onnx2tf on a copy of the FP32 ONNX, in
  its own temporary working directory and in a child process (it overwrites its input, may
  crash, and imports TensorFlow), writes all four precisions at once; the run is cached as a
  whole, so every TFLite precision for every profile costs one conversion. Fixed batch 1
  (``-b 1``); calibration samples are handed over NHWC float32 (``-cind``), and the same
  samples are put where onnx2tf first looks for its sample file, so it never tries to
  download one (it does for 3-channel 4-D inputs). The files take NHWC input.
* ``keras-tflite`` (Keras sources): ``tf.lite.TFLiteConverter.from_keras_model`` per precision;
  full INT8 uses the calibration samples as representative dataset and int8 input/output.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..cache import tool_versions
from ..errors import ExportError
from .base import Built, ExportContext, Exporter
from .onnx import _quiet, export_fp32, fp32_tools

#: onnx2tf output suffix -> our precision name
ONNX2TF_FILES = {"fp32": "float32", "fp16": "float16", "dynamic": "dynamic_range_quant",
                 "int8": "full_integer_quant"}
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_TIMEOUT_S = 1800


def _nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 and layout == "NCHW" else x,
                                dtype=np.float32)


class Onnx2TfExporter(Exporter):
    name = "onnx2tf"

    def export(self, ctx: ExportContext, spec) -> Built:
        fp32 = export_fp32(ctx)
        tools = {**fp32_tools(ctx.model.kind), **tool_versions("onnx2tf", "tensorflow")}
        parts = {**ctx.model_key(), "tools": tools, "data": ctx.calib_key(),
                 "opts": {"batch": 1, "quant_type": "per-channel", "io": "int8", "keep_nhwc": True}}
        folder = ctx.cache.step("onnx2tf", parts, lambda d: run_onnx2tf(ctx, fp32, d),
                                label="(ONNX -> TFLite fp32, fp16, dynamic, int8)")
        path = folder / f"model.{spec.precision}.tflite"
        if not path.exists():
            raise ExportError(f"onnx2tf wrote no {ONNX2TF_FILES[spec.precision]} TFLite file")
        return Built(path, "NHWC", tools, "minmax (onnx2tf)" if spec.precision == "int8" else None)


def run_onnx2tf(ctx: ExportContext, fp32: Path, dest: Path) -> None:
    """Run onnx2tf once and put ``model.{fp32,fp16,dynamic,int8}.tflite`` into ``dest``."""
    spec = ctx.model.inputs[0]
    calib = _nhwc(ctx.calib_x(), ctx.model.layout)
    ones = "[" * calib.ndim + "{}" + "]" * calib.ndim
    with tempfile.TemporaryDirectory(prefix="edgecompress-onnx2tf-") as work:
        work = Path(work)
        shutil.copyfile(fp32, work / "model.onnx")          # onnx2tf overwrites its input
        np.save(work / "calib.npy", calib)
        np.save(work / ONNX2TF_SAMPLE, calib[:20])           # looked for here before any download
        cmd = [sys.executable, "-c", "import sys; from onnx2tf.onnx2tf import main; sys.exit(main())",
               "-i", "model.onnx", "-o", "tf", "-b", "1", "-oiqt", "-qt", "per-channel",
               "-cind", spec.name, "calib.npy", ones.format(0.0), ones.format(1.0),
               "-iqd", "int8", "-oqd", "int8", "-n"]
        if ctx.model.layout == "NHWC":          # already channels-last: onnx2tf must not transpose it again
            cmd += ["-kat", spec.name]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=ONNX2TF_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise ExportError(f"onnx2tf did not finish within {ONNX2TF_TIMEOUT_S} s") from e
        produced = {p: work / "tf" / f"model_{suffix}.tflite" for p, suffix in ONNX2TF_FILES.items()}
        if proc.returncode != 0 or not produced["fp32"].exists():
            raise ExportError(f"onnx2tf failed (exit {proc.returncode}): {_last_error(proc.stdout + proc.stderr)}")
        for precision, f in produced.items():
            if f.exists():
                shutil.copyfile(f, dest / f"model.{precision}.tflite")


def _last_error(text: str) -> str:
    """The telling lines of a converter's output: its ERROR lines and the final exception."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not re.match(r"^[IWE]\d{4} ", ln.strip())]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    exceptions = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]
    picked = list(dict.fromkeys(errors[:2] + exceptions[-1:])) or lines[-3:]
    return " | ".join(picked)[:800] or "(no output)"


class KerasTfliteExporter(Exporter):
    name = "keras-tflite"

    def export(self, ctx: ExportContext, spec) -> Built:
        tools = tool_versions("tensorflow", "keras")
        parts = {**ctx.model_key(), "tools": tools, "precision": spec.precision}
        if spec.precision == "int8":
            parts["data"] = ctx.calib_key()
        name = f"model.{spec.precision}.tflite"
        folder = ctx.cache.step(f"keras-tflite-{spec.precision}", parts,
                                lambda d: (d / name).write_bytes(keras_to_tflite(ctx, spec.precision)))
        return Built(folder / name, ctx.model.layout, tools, "minmax (TFLiteConverter)" if spec.precision == "int8" else None)


def keras_to_tflite(ctx: ExportContext, precision: str) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(ctx.model.obj)
    if precision != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        x = ctx.calib_x()

        def representative():
            for i in range(len(x)):
                yield [x[i:i + 1]]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    try:
        with _quiet("tensorflow"):
            return conv.convert()
    except Exception as e:
        raise ExportError(f"TFLiteConverter ({precision}) failed: {type(e).__name__}: {str(e)[:500]}") from e
