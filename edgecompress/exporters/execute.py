"""Host-side use of THE executor (:mod:`edgecompress.device.execute`): load an artifact file and run it.

``ArtifactRunner(path, layout=..., source_layout=..., model_inputs=..., model_outputs=...,
output_map=...)`` wraps ``device.runtimes.load`` + ``device.execute.Executor`` so the host runs
artifacts with exactly the code the device runner uses. ``run(x)`` keeps the old single-input,
first-output convenience; ``run_named(samples)`` is the real thing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..device import execute as ex
from ..device import runtimes


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * scale


class ArtifactRunner:
    def __init__(self, path: str | Path, *, layout: str = "NCHW", source_layout: str = "NCHW", threads: int = 1,
                 model_inputs=None, model_outputs=None, input_map=None, output_map=None, shapes=None):
        self.path = Path(path)
        if self.path.suffix not in (".onnx", ".tflite"):
            raise ValueError(f"{path}: unknown artifact type (expected .onnx or .tflite)")
        from ..quiet import native_stderr

        with native_stderr():          # LiteRT's "Created TensorFlow Lite XNNPACK delegate" (edgecompress.quiet)
            self.model, _ = runtimes.load(str(self.path), threads, layout)
        for name, dims in (shapes or {}).items():
            if any(t.name == name for t in self.model.inputs):
                self.model.set_shape(name, dims)
        self.executor = ex.Executor(self.model, model_inputs=model_inputs, model_outputs=model_outputs,
                                    input_map=input_map, output_map=output_map, source_layout=source_layout)

    def run_named(self, samples: dict, feedback: Optional[dict] = None) -> dict:
        return self.executor.run(samples, feedback)

    def run_raw(self, samples: dict, feedback: Optional[dict] = None) -> dict:
        return self.executor.run_raw(samples, feedback)

    def run(self, x: np.ndarray, expect_shape: Optional[tuple] = None) -> np.ndarray:
        """First output for ``x`` (N, ...) samples of the only input (batch axis as the model's)."""
        t = self.model.inputs[0]
        key = self.executor.model_inputs[0]["name"] if self.executor.model_inputs else t.name
        raw = self.executor.run_raw({key: np.asarray(x)[:, None]})
        out = np.asarray(raw[self.model.outputs[0].name])
        if expect_shape is not None and out.ndim == 4 and tuple(out.shape) != tuple(expect_shape):
            for perm in (ex.TO_NCHW, ex.TO_NHWC):
                if tuple(out.transpose(perm).shape) == tuple(expect_shape):
                    return out.transpose(perm).astype(np.float32)
        return out.astype(np.float32) if out.dtype.kind == "f" else out


def run_artifact(path: str | Path, x: np.ndarray, *, layout: str = "NCHW", source_layout: str = "NCHW",
                 expect_shape: Optional[tuple] = None) -> np.ndarray:
    return ArtifactRunner(path, layout=layout, source_layout=source_layout).run(x, expect_shape)


def run_mapped(path: str | Path, *, layout: str, model, samples: dict, reference: dict,
               feedback: Optional[dict] = None) -> tuple[dict, list, list, list]:
    """Run an artifact of ``model`` (a ``models.LoadedModel``) on named samples:
    (outputs by model output name, artifact inputs, artifact outputs -- ``TensorSpec`` lists with
    their ``model_name`` --, the executor's notes). Outputs that neither name nor shape tells apart
    are paired by closeness to ``reference`` (the source's outputs on the same samples)."""
    from dataclasses import asdict

    runner = ArtifactRunner(path, layout=layout, source_layout=model.layout,
                            model_inputs=[asdict(t) for t in model.inputs],
                            model_outputs=[asdict(t) for t in model.outputs])
    raw = runner.run_raw(samples, feedback)
    out_map = ex.resolve_by_values(raw, reference, runner.executor.map_outputs())
    ins, outs = describe(runner, out_map, runner.executor.input_map_used)
    return {out_map[k]: v for k, v in raw.items() if k in out_map}, ins, outs, list(runner.executor.notes)


def describe(runner: ArtifactRunner, output_map: Optional[dict] = None, input_map: Optional[dict] = None):
    """(inputs, outputs) of the artifact as ``manifest.TensorSpec`` lists, each with its ``model_name``."""
    from ..manifest import TensorSpec

    def spec(t, mapping):
        d = t.to_dict()
        return TensorSpec(d["name"], [s if s != "?" else None for s in d["shape"]], d["dtype"],
                          model_name=(mapping or {}).get(t.name), scale=d.get("scale"),
                          zero_point=d.get("zero_point"))

    return ([spec(t, input_map) for t in runner.model.inputs], [spec(t, output_map) for t in runner.model.outputs])
