"""TFLite artifacts: FP32, FP16, dynamic-range INT8 and full-integer INT8 (int8 in and out).

* ``onnx2tf`` (PyTorch and ONNX sources): ONE run of onnx2tf on a copy of the FP32 ONNX, in
  its own temporary working directory and in a child process (it overwrites its input, may
  crash, and imports TensorFlow), writes FP32, FP16, dynamic-range and its SavedModel; full
  INT8 comes from that SavedModel (``tflite_int8.py``, a child process) calibrated on the
  samples by input name in their own dtypes. The run is cached as a whole. Every dim fixed
  (batch 1, ``-ois``); 4-D float image inputs become NHWC, other inputs keep their shape.
  onnx2tf is never asked to calibrate, so it never tries to download its sample file.
* ``keras-tflite`` (Keras sources): a SavedModel whose signature takes the inputs and gives the
  outputs by the model's names, then ``tf.lite.TFLiteConverter.from_saved_model`` per precision
  (``from_keras_model`` for tf_keras models); full INT8 calibrates on the samples by input name
  (in their own dtypes) and makes float inputs and outputs int8.
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
                 "opts": {"batch": 1, "int8": "saved-model converter by name", "io": "int8", "keep": "non-image"}}
        folder = ctx.cache.step("onnx2tf", parts, lambda d: run_onnx2tf(ctx, fp32, d),
                                label="(ONNX -> TFLite fp32, fp16, dynamic, int8)")
        path = folder / f"model.{spec.precision}.tflite"
        if not path.exists():
            err = folder / "int8-error.txt"
            raise ExportError(f"INT8 TFLite conversion failed: {err.read_text()}" if err.exists() and
                              spec.precision == "int8" else f"onnx2tf wrote no {ONNX2TF_FILES[spec.precision]} TFLite file")
        import json

        notes = json.loads((folder / "notes.json").read_text()) if (folder / "notes.json").exists() else []
        built = Built(path, "NHWC", tools, "minmax (TFLiteConverter)" if spec.precision == "int8" else None)
        built.notes = [n for n in notes if not n.startswith("int8:") or spec.precision == "int8"]
        return built


def run_onnx2tf(ctx: ExportContext, fp32: Path, dest: Path) -> None:
    """Run onnx2tf once and put ``model.{fp32,fp16,dynamic,int8}.tflite`` (+ ``notes.json``) into ``dest``.

    onnx2tf writes FP32, FP16 and dynamic-range files and its SavedModel; full INT8 is made from
    that SavedModel by ``tflite_int8.py`` (in a child process) with the calibration samples by
    input name in their own dtypes. Every input's dims are fixed (``-ois``; batch 1); inputs
    that are not 4-D float images keep their shape (``-kat``), so only images become NHWC.
    """
    import json

    m = ctx.model
    samples = ctx.calib_samples()
    shapes = {t.name: [1 if not isinstance(d, int) else d for d in m.concrete_shape(t.name, "TFLite (onnx2tf)")]
              for t in m.inputs}
    images = [t.name for t in m.inputs if len(shapes[t.name]) == 4 and t.dtype.startswith("float")
              and m.layout == "NCHW"]
    keep = [t.name for t in m.inputs if t.name not in images]
    notes = ["TFLite fixes every dim (batch 1): "
             + ", ".join(f"{n} {shapes[n]}" for n in shapes if any(not isinstance(d, int) for d in
                                                                   next(t for t in m.inputs if t.name == n).shape))]
    with tempfile.TemporaryDirectory(prefix="edgecompress-onnx2tf-") as work:
        work = Path(work)
        shutil.copyfile(fp32, work / "model.onnx")          # onnx2tf overwrites its input
        np.savez(work / "calib.npz", **{k: np.ascontiguousarray(v) for k, v in samples.items()})
        # onnx2tf loads a sample-image file for 3-channel 4-D inputs (a dummy inference) and downloads
        # it when missing from its working directory: put one there so it never goes online
        img = next((samples[n] for n in images), None)
        sample = _nhwc(img[:20, 0], m.layout) if img is not None and img.shape[2] == 3 else \
            np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
        np.save(work / ONNX2TF_SAMPLE, sample)
        cmd = [sys.executable, "-c", "import sys; from onnx2tf.onnx2tf import main; sys.exit(main())",
               "-i", "model.onnx", "-o", "tf", "-osd", "-odrqt", "-n",
               "-ois", *[f"{n}:{','.join(map(str, d))}" for n, d in shapes.items()]]
        if keep:
            cmd += ["-kat", *keep]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = _child(cmd, work, env, "onnx2tf")
        produced = {p: work / "tf" / f"model_{suffix}.tflite" for p, suffix in ONNX2TF_FILES.items()}
        if proc.returncode != 0 or not produced["fp32"].exists():
            raise ExportError(f"onnx2tf failed (exit {proc.returncode}): {_last_error(proc.stdout + proc.stderr)}")
        int8 = _child([sys.executable, str(Path(__file__).with_name("tflite_int8.py")), "tf", "calib.npz",
                       str(produced["int8"])], work, env, "INT8 TFLite")
        if int8.returncode != 0:
            (dest / "int8-error.txt").write_text(_last_error(int8.stdout + int8.stderr))
        elif "FLOAT_FALLBACK" in int8.stdout:
            notes.append("int8: some ops have no INT8 kernel and stay float (TFLITE_BUILTINS fallback)")
        for precision, f in produced.items():
            if f.exists():
                shutil.copyfile(f, dest / f"model.{precision}.tflite")
        dynamic = _dynamic_dims(produced["fp32"])
        if dynamic:
            notes[0] = (f"TFLite batch 1; dims left dynamic by onnx2tf (resized per input at run time): "
                        + ", ".join(f"{n} {d}" for n, d in dynamic.items()))
        (dest / "notes.json").write_text(json.dumps(notes))


def _dynamic_dims(path: Path) -> dict:
    from ..device.runtimes import TFLiteModel
    from ..quiet import native_stderr

    try:
        with native_stderr():          # LiteRT's XNNPACK line (edgecompress.quiet)
            m = TFLiteModel(str(path), 1)
    except Exception:  # noqa: BLE001 - only for the note
        return {}
    return {t.name: t.resizable for t in m.inputs if None in (getattr(t, "resizable", None) or [0])[1:]}


def _child(cmd, cwd, env, what):
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=ONNX2TF_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise ExportError(f"{what} did not finish within {ONNX2TF_TIMEOUT_S} s") from e


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
        m = ctx.model
        tools = tool_versions("tensorflow", "keras")
        parts = {**ctx.model_key(), "tools": tools, "precision": spec.precision, "opts": {"signature": "by name"}}
        if spec.precision == "int8":
            parts["data"] = ctx.calib_key()
        name = f"model.{spec.precision}.tflite"
        folder = ctx.cache.step(f"keras-tflite-{spec.precision}", parts,
                                lambda d: (d / name).write_bytes(keras_to_tflite(ctx, spec.precision)))
        built = Built(folder / name, m.layout, tools, "minmax (TFLiteConverter)" if spec.precision == "int8" else None)
        dynamic = [f"{t.name} {t.shape}" for t in m.inputs if any(not isinstance(d, int) for d in t.shape)]
        if dynamic:
            built.notes.append("TFLite batch 1 (one sample a call): " + ", ".join(dynamic))
        ints = [t.name for t in m.inputs if not t.dtype.startswith("float")]
        if ints and spec.precision in ("int8", "dynamic"):
            built.notes.append(f"integer input(s) {', '.join(ints)} are not quantized")
        return built


def keras_to_tflite(ctx: ExportContext, precision: str) -> bytes:
    """One TFLite file of the Keras model; its signature carries the model's input and output names."""
    import tensorflow as tf

    m = ctx.model
    with tempfile.TemporaryDirectory(prefix="edgecompress-keras-") as work:
        saved = keras_saved_model(m, Path(work) / "saved")
        conv = (tf.lite.TFLiteConverter.from_saved_model(str(saved)) if saved is not None
                else tf.lite.TFLiteConverter.from_keras_model(m.obj))
        if precision != "fp32":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            conv.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            samples = ctx.calib_samples()
            names = [t.name for t in m.inputs]
            n = max(len(v) for v in samples.values())

            def representative():      # by signature input name (a list goes by the converter's own order)
                for i in range(n):
                    yield {k: samples[k][i if len(samples[k]) > 1 else 0] for k in names}

            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8       # float inputs and outputs; integer inputs stay as they are
            conv.inference_output_type = tf.int8
        try:
            with _quiet("tensorflow"):
                return conv.convert()
        except Exception as e:
            raise ExportError(f"TFLiteConverter ({precision}) failed: {type(e).__name__}: {str(e)[:500]}") from e


def keras_saved_model(m, folder: Path):
    """A SavedModel of a Keras 3 model whose serving signature takes the inputs by their names and
    gives ``{output name: tensor}`` (so every TFLite file names its tensors as the model does);
    None for a tf_keras model (the converter's own from_keras_model path)."""
    import keras
    import tensorflow as tf

    from ..models import keras_args

    model = m.obj
    if not isinstance(model, keras.Model):
        return None
    specs = [tf.TensorSpec([d if isinstance(d, int) else None for d in t.shape], getattr(tf, t.dtype), name=t.name)
             for t in m.inputs]
    in_names, out_names = [t.name for t in m.inputs], [t.name for t in m.outputs]

    def serve(*xs):
        out = model(keras_args(model, dict(zip(in_names, xs)), in_names), training=False)
        if isinstance(out, dict):           # a dict model's outputs are named by its keys (models._keras_specs)
            return {n: out[n] for n in out_names}
        return dict(zip(out_names, list(out) if isinstance(out, (list, tuple)) else [out]))

    archive = keras.export.ExportArchive()
    archive.track(model)
    with _quiet("tensorflow"):
        archive.add_endpoint("serve", serve, specs)
        archive.write_out(str(folder), verbose=False)
    return folder
